//! Refining reconstructions through M: starting from the decoder's reconstruction, move the
//! image so that M's change bits along the secret's directions agree with its signature (top-1
//! kept at 0.9 eps, changed at 1.1 eps, hinge losses on M's margin), staying near the start.
//! Diagnostic: does matching the signature through the model bring the colours back?
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example signature_refinement -- RUN DATA.npz N STEPS LR LAMBDA`
use apsig::directions::Directions;
use apsig::eval::colour::{colour_fidelity, mean_colours};
use apsig::io::TensorFile;
use apsig::model::load_network;
use apsig::nn::TrainCache;
use apsig::pipeline::image_shape;
use apsig::signature::SignatureSet;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let n: usize = a[3].parse().unwrap();
    let steps: usize = a[4].parse().unwrap();
    let lr: f32 = a[5].parse().unwrap();
    let lambda: f32 = a[6].parse().unwrap();
    let image = image_shape(&data.test);
    let len = image.len();
    let mut net = load_network(&run.join("target.safetensors"), None).unwrap().net;
    let classes = net.out_len();
    let dirs = Directions::load(&run.join("directions.safetensors")).unwrap();
    let test = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let file = TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    let (_, recons) = file.f32("reconstructions", None).unwrap();
    let k = test.k;
    let baseline = mean_colours(&data.train.images, image).unwrap();
    let n = n.min(test.n());
    let mut originals = Vec::with_capacity(n * len);
    for s in 0..n {
        let i = test.indices[s] as usize;
        originals.extend_from_slice(&data.test.images[i * len..(i + 1) * len]);
    }
    let start: Vec<f32> = recons[..n * len].iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let mut refined = start.clone();
    let mut cache = TrainCache::default();
    let (delta, tol) = (0.5f32, 0.1f32);
    for s in 0..n {
        let x0 = &start[s * len..(s + 1) * len];
        let mut x = x0.to_vec();
        let c = apsig::argmax(&net.forward(&x, 1));
        let live: Vec<usize> = (0..k).filter(|&j| test.censored[s * k + j] == 0).collect();
        let (mut m1, mut m2) = (vec![0.0f32; len], vec![0.0f32; len]);
        for t in 0..steps {
            // probes: 0.9 eps (top-1 kept) and 1.1 eps (changed) along every uncensored direction
            let mut probes = Vec::with_capacity(2 * live.len() * len);
            for &j in &live {
                let e = test.eps[s * k + j];
                let d = &dirs.data[j * len..(j + 1) * len];
                for f in [1.0 - tol, 1.0 + tol] {
                    probes.extend(x.iter().zip(d).map(|(xi, di)| xi + f * e * di));
                }
            }
            let b = 2 * live.len();
            net.forward_train(&probes, b, &mut cache);
            let mut dout = vec![0.0f32; b * classes];
            for (p, (z, g)) in cache.output().chunks(classes).zip(dout.chunks_mut(classes)).enumerate() {
                let r = (0..classes).filter(|&j| j != c).max_by(|&i, &j| z[i].total_cmp(&z[j])).unwrap();
                let margin = z[c] - z[r];
                // kept: want margin >= delta; changed: want margin <= -delta
                let (viol, sign) = if p % 2 == 0 { (delta - margin, -1.0) } else { (delta + margin, 1.0) };
                if viol > 0.0 {
                    g[c] = sign / b as f32;
                    g[r] = -sign / b as f32;
                }
            }
            let gin = net.input_gradient(&mut cache, &dout).to_vec();
            let mut grad = vec![0.0f32; len];
            for chunk in gin.chunks(len) {
                grad.iter_mut().zip(chunk).for_each(|(g, v)| *g += v);
            }
            let tt = (t + 1) as i32;
            for i in 0..len {
                let g = grad[i] + 2.0 * lambda * (x[i] - x0[i]);
                m1[i] = 0.9 * m1[i] + 0.1 * g;
                m2[i] = 0.999 * m2[i] + 0.001 * g * g;
                let (h1, h2) = (m1[i] / (1.0 - 0.9f32.powi(tt)), m2[i] / (1.0 - 0.999f32.powi(tt)));
                x[i] = (x[i] - lr * h1 / (h2.sqrt() + 1e-8)).clamp(0.0, 1.0);
            }
        }
        refined[s * len..(s + 1) * len].copy_from_slice(&x);
    }
    let mse =
        |r: &[f32]| r.iter().zip(&originals).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>() / (n * len) as f64;
    for (name, r) in [("decoder", &start), ("refined", &refined)] {
        let c = colour_fidelity(r, &originals, image, &baseline);
        println!("{name}: {n} secrets | MSE {:.4} | fg {:.4} bg {:.4}", mse(r), c.foreground_error, c.background_error);
    }
}

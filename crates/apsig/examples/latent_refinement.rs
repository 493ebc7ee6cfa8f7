//! Refining reconstructions through M in the decoder's input space: starting from a secret's
//! standardised signature features, move the features so that M's change bits on the DECODED
//! image agree with the secret's signature (top-1 kept at 0.9 eps, changed at 1.1 eps, hinge
//! losses on M's margin), staying near the start. Unlike `signature_refinement` (pixels), the
//! image stays one the decoder can draw. Diagnostic: does it bring the colours back?
//! The decoder's batch norms are folded into the layers before them (inference statistics),
//! checked against the decoder's own forward pass.
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example latent_refinement -- RUN DATA.npz N STEPS LR LAMBDA`
use apsig::decoder::{Decoder, Input, Standardiser};
use apsig::directions::Directions;
use apsig::eval::colour::{colour_fidelity, mean_colours};
use apsig::io::TensorFile;
use apsig::model::load_network;
use apsig::nn::{LayerSpec, Network, TrainCache};
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
    let mut target = load_network(&run.join("target.safetensors"), None).unwrap().net;
    let classes = target.out_len();
    let dirs = Directions::load(&run.join("directions.safetensors")).unwrap();
    let test = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let decoder = Decoder::load(&run.join("decoder.safetensors")).unwrap();
    let stats = TensorFile::read(&run.join("decoder.stats.safetensors")).unwrap();
    let scale = Standardiser::from_parts(
        stats.f32("mean", None).unwrap().1.to_vec(),
        stats.f32("std", None).unwrap().1.to_vec(),
        "stats",
    )
    .unwrap();
    let k = test.k;
    let n = n.min(test.n());
    let use_mask = matches!(decoder.input, apsig::decoder::InputKind::Signature { use_mask: true, .. });
    let input = Input::signature(&test, k, n, use_mask).unwrap();
    let dim = input.kind.dim();
    let z0 = input.standardised(&scale);
    let mut gen = fold_batch_norms(&decoder.net);
    let (want, got) = (decoder.net.forward(&z0, n), gen.forward(&z0, n));
    let off = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(off < 1e-3, "folded decoder differs from the decoder by {off}");
    let baseline = mean_colours(&data.train.images, image).unwrap();
    let mut originals = Vec::with_capacity(n * len);
    for s in 0..n {
        let i = test.indices[s] as usize;
        originals.extend_from_slice(&data.test.images[i * len..(i + 1) * len]);
    }
    let (mut cache_g, mut cache_m) = (TrainCache::default(), TrainCache::default());
    let (delta, tol) = (0.5f32, 0.1f32);
    let mut refined = Vec::with_capacity(n * len);
    for s in 0..n {
        let start = &z0[s * dim..(s + 1) * dim];
        let mut z = start.to_vec();
        let c = apsig::argmax(&target.forward(&want[s * len..(s + 1) * len], 1));
        let live: Vec<usize> = (0..k).filter(|&j| test.censored[s * k + j] == 0).collect();
        let (mut m1, mut m2) = (vec![0.0f32; dim], vec![0.0f32; dim]);
        for t in 0..steps {
            gen.forward_train(&z, 1, &mut cache_g);
            let x = cache_g.output().to_vec();
            let mut probes = Vec::with_capacity(2 * live.len() * len);
            for &j in &live {
                let e = test.eps[s * k + j];
                let d = &dirs.data[j * len..(j + 1) * len];
                for f in [1.0 - tol, 1.0 + tol] {
                    probes.extend(x.iter().zip(d).map(|(xi, di)| xi + f * e * di));
                }
            }
            let b = 2 * live.len();
            target.forward_train(&probes, b, &mut cache_m);
            let mut dout = vec![0.0f32; b * classes];
            for (p, (zz, g)) in cache_m.output().chunks(classes).zip(dout.chunks_mut(classes)).enumerate() {
                let r = (0..classes).filter(|&j| j != c).max_by(|&i, &j| zz[i].total_cmp(&zz[j])).unwrap();
                let margin = zz[c] - zz[r];
                let (viol, sign) = if p % 2 == 0 { (delta - margin, -1.0) } else { (delta + margin, 1.0) };
                if viol > 0.0 {
                    g[c] = sign / b as f32;
                    g[r] = -sign / b as f32;
                }
            }
            let gin = target.input_gradient(&mut cache_m, &dout).to_vec();
            let mut gx = vec![0.0f32; len];
            for chunk in gin.chunks(len) {
                gx.iter_mut().zip(chunk).for_each(|(g, v)| *g += v);
            }
            let gz = gen.input_gradient(&mut cache_g, &gx).to_vec();
            let tt = (t + 1) as i32;
            for i in 0..dim {
                let g = gz[i] + 2.0 * lambda * (z[i] - start[i]);
                m1[i] = 0.9 * m1[i] + 0.1 * g;
                m2[i] = 0.999 * m2[i] + 0.001 * g * g;
                let (h1, h2) = (m1[i] / (1.0 - 0.9f32.powi(tt)), m2[i] / (1.0 - 0.999f32.powi(tt)));
                z[i] -= lr * h1 / (h2.sqrt() + 1e-8);
            }
        }
        refined.extend(gen.forward(&z, 1));
    }
    let mse =
        |r: &[f32]| r.iter().zip(&originals).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>() / (n * len) as f64;
    for (name, r) in [("decoder", &want), ("refined", &refined)] {
        let c = colour_fidelity(r, &originals, image, &baseline);
        println!("{name}: {n} secrets | MSE {:.4} | fg {:.4} bg {:.4}", mse(r), c.foreground_error, c.background_error);
    }
}

/// The network with every batch norm folded into the layer before it (a Linear or a transposed
/// convolution, whose output channel is the weight matrix's column, resp. the fastest index of
/// its rows), using the running statistics: the same function as inference, without batch norms.
fn fold_batch_norms(net: &Network) -> Network {
    let mut specs = Vec::new();
    let mut params: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut i = 0;
    while i < net.specs.len() {
        let mut p = net.params[i].clone();
        if net.specs.get(i + 1) == Some(&LayerSpec::BatchNorm) {
            let (gamma, beta) = (&net.params[i + 1][0], &net.params[i + 1][1]);
            let (mean, var) = (&net.buffers[i + 1][0], &net.buffers[i + 1][1]);
            let ch = gamma.len();
            let sc: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + 1e-5).sqrt()).collect();
            // Linear: [in, out], the channel is the column; ConvT: [k * k * cout, cin] with rows
            // (ky, kx, co), the channel fastest (the im2col patch order)
            let cin = match net.specs[i] {
                LayerSpec::Linear { .. } => 1,
                LayerSpec::ConvT { k, .. } => p[0].len() / (k * k * ch),
                _ => panic!("batch norm after {:?}", net.specs[i]),
            };
            for (j, w) in p[0].iter_mut().enumerate() {
                *w *= sc[(j / cin) % ch];
            }
            for (c, b) in p[1].iter_mut().enumerate() {
                *b = *b * sc[c] + beta[c] - mean[c] * sc[c];
            }
            specs.push(net.specs[i].clone());
            params.push(p);
            i += 2;
        } else {
            specs.push(net.specs[i].clone());
            params.push(p);
            i += 1;
        }
    }
    let mut out = Network::new(net.input, specs, 0).unwrap();
    out.params = params;
    out
}

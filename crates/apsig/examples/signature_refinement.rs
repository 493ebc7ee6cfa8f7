//! Refining reconstructions through M: starting from the decoder's reconstruction, move it so
//! that M's change bits along the secret's directions agree with its signature (top-1 kept at
//! 0.9 eps, changed at 1.1 eps: hinge losses on M's margin), staying near the start. Two spaces:
//! - `pixels`: Adam on the image's values, clipped to [0, 1];
//! - `input`: Adam on the secret's standardised signature features, the decoder redrawing the
//!   image each step, so it stays one the decoder can draw. The decoder's batch norms are folded
//!   into the layers before them (inference statistics), checked against its own forward pass.
//!
//! Diagnostic: does matching the signature through the model bring the colours back?
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example signature_refinement -- RUN DATA.npz N STEPS LR LAMBDA pixels|input`
use apsig::decoder::{Decoder, Input, InputKind, Standardiser};
use apsig::directions::Directions;
use apsig::eval::colour::{colour_fidelity, mean_colours};
use apsig::io::TensorFile;
use apsig::model::load_network;
use apsig::nn::{LayerSpec, Network, TrainCache};
use apsig::pipeline::image_shape;
use apsig::signature::SignatureSet;
use std::path::Path;

/// Margin M must keep on either side of the boundary, in logits.
const DELTA: f32 = 0.5;
/// Where the change bits are read: eps times 1 -/+ this (the secrets' search tolerance).
const TOL: f32 = 0.1;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let n: usize = a[3].parse().unwrap();
    let steps: usize = a[4].parse().unwrap();
    let lr: f32 = a[5].parse().unwrap();
    let lambda: f32 = a[6].parse().unwrap();
    let in_input = match a[7].as_str() {
        "pixels" => false,
        "input" => true,
        other => panic!("space `{other}`: pixels or input"),
    };
    let image = image_shape(&data.test);
    let len = image.len();
    let mut target = load_network(&run.join("target.safetensors"), None).unwrap().net;
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
    let use_mask = matches!(decoder.input, InputKind::Signature { use_mask: true, .. });
    let input = Input::signature(&test, k, n, use_mask).unwrap();
    let dim = input.kind.dim();
    let z0 = input.standardised(&scale);
    let mut gen = fold_batch_norms(&decoder.net);
    let (start, got) = (decoder.net.forward(&z0, n), gen.forward(&z0, n));
    let off = start.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(off < 1e-3, "folded decoder differs from the decoder by {off}");
    let baseline = mean_colours(&data.train.images, image).unwrap();
    let mut originals = Vec::with_capacity(n * len);
    for s in 0..n {
        let i = test.indices[s] as usize;
        originals.extend_from_slice(&data.test.images[i * len..(i + 1) * len]);
    }
    let mut gen_cache = TrainCache::default();
    let mut refined = Vec::with_capacity(n * len);
    for s in 0..n {
        let x0 = &start[s * len..(s + 1) * len];
        let class = apsig::argmax(&target.forward(x0, 1));
        let live: Vec<usize> = (0..k).filter(|&j| test.censored[s * k + j] == 0).collect();
        let eps = &test.eps[s * k..(s + 1) * k];
        let mut hinges = Hinges { target: &mut target, dirs: &dirs, cache: TrainCache::default(), class };
        let from = if in_input { z0[s * dim..(s + 1) * dim].to_vec() } else { x0.to_vec() };
        let mut v = from.clone();
        let mut adam = AdamState::new(v.len());
        for _ in 0..steps {
            let mut grad = if in_input {
                gen.forward_train(&v, 1, &mut gen_cache);
                let x = gen_cache.output().to_vec();
                let gx = hinges.gradient(&x, &live, eps);
                gen.input_gradient(&mut gen_cache, &gx).to_vec()
            } else {
                hinges.gradient(&v, &live, eps)
            };
            grad.iter_mut().zip(v.iter().zip(&from)).for_each(|(g, (x, x0))| *g += 2.0 * lambda * (x - x0));
            adam.step(&mut v, &grad, lr);
            if !in_input {
                v.iter_mut().for_each(|x| *x = x.clamp(0.0, 1.0));
            }
        }
        refined.extend(if in_input { gen.forward(&v, 1) } else { v });
    }
    let mse =
        |r: &[f32]| r.iter().zip(&originals).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>() / (n * len) as f64;
    for (name, r) in [("decoder", &start), ("refined", &refined)] {
        let c = colour_fidelity(r, &originals, image, &baseline);
        println!("{name}: {n} secrets | MSE {:.4} | fg {:.4} bg {:.4}", mse(r), c.foreground_error, c.background_error);
    }
}

/// M's hinge losses at the probes of one secret's signature.
struct Hinges<'a> {
    target: &'a mut Network,
    dirs: &'a Directions,
    cache: TrainCache,
    class: usize,
}

impl Hinges<'_> {
    /// Gradient w.r.t. the image `x` of the hinges: M's top-1 (`class`) kept by `DELTA` at
    /// `(1 - TOL) eps` and changed by `DELTA` at `(1 + TOL) eps` along every live direction.
    fn gradient(&mut self, x: &[f32], live: &[usize], eps: &[f32]) -> Vec<f32> {
        let (len, classes, c) = (self.target.in_len(), self.target.out_len(), self.class);
        let mut probes = Vec::with_capacity(2 * live.len() * len);
        for &j in live {
            let d = &self.dirs.data[j * len..(j + 1) * len];
            for f in [1.0 - TOL, 1.0 + TOL] {
                probes.extend(x.iter().zip(d).map(|(xi, di)| xi + f * eps[j] * di));
            }
        }
        let b = 2 * live.len();
        self.target.forward_train(&probes, b, &mut self.cache);
        let mut dout = vec![0.0f32; b * classes];
        for (p, (z, g)) in self.cache.output().chunks(classes).zip(dout.chunks_mut(classes)).enumerate() {
            let r = (0..classes).filter(|&j| j != c).max_by(|&i, &j| z[i].total_cmp(&z[j])).unwrap();
            let margin = z[c] - z[r];
            // even probes: kept (margin >= DELTA); odd: changed (margin <= -DELTA)
            let (viol, sign) = if p % 2 == 0 { (DELTA - margin, -1.0) } else { (DELTA + margin, 1.0) };
            if viol > 0.0 {
                g[c] = sign / b as f32;
                g[r] = -sign / b as f32;
            }
        }
        let gin = self.target.input_gradient(&mut self.cache, &dout);
        let mut grad = vec![0.0f32; len];
        for chunk in gin.chunks(len) {
            grad.iter_mut().zip(chunk).for_each(|(g, v)| *g += v);
        }
        grad
    }
}

/// Adam (0.9, 0.999) on one vector.
struct AdamState {
    m1: Vec<f32>,
    m2: Vec<f32>,
    t: i32,
}

impl AdamState {
    fn new(n: usize) -> Self {
        AdamState { m1: vec![0.0; n], m2: vec![0.0; n], t: 0 }
    }

    fn step(&mut self, v: &mut [f32], grad: &[f32], lr: f32) {
        self.t += 1;
        let (c1, c2) = (1.0 - 0.9f32.powi(self.t), 1.0 - 0.999f32.powi(self.t));
        for ((x, g), (m1, m2)) in v.iter_mut().zip(grad).zip(self.m1.iter_mut().zip(self.m2.iter_mut())) {
            *m1 = 0.9 * *m1 + 0.1 * g;
            *m2 = 0.999 * *m2 + 0.001 * g * g;
            *x -= lr * (*m1 / c1) / ((*m2 / c2).sqrt() + 1e-8);
        }
    }
}

/// The network with every batch norm folded into the layer before it, using the running
/// statistics: the same function as inference, without batch norms.
fn fold_batch_norms(net: &Network) -> Network {
    let (mut specs, mut params) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < net.specs.len() {
        let mut p = net.params[i].clone();
        let folds = net.specs.get(i + 1) == Some(&LayerSpec::BatchNorm);
        if folds {
            let (gamma, beta) = (&net.params[i + 1][0], &net.params[i + 1][1]);
            let (mean, var) = (&net.buffers[i + 1][0], &net.buffers[i + 1][1]);
            let ch = gamma.len();
            // nn's BN_EPS (private there); the check against the decoder catches a change
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
        }
        specs.push(net.specs[i].clone());
        params.push(p);
        i += if folds { 2 } else { 1 };
    }
    let mut out = Network::new(net.input, specs, 0).unwrap();
    out.params = params;
    out
}

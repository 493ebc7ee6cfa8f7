//! The `Classifier` seam: anything that maps a batch of inputs to logits.

use crate::kernels::Threads;
use crate::nn::{LayerSpec, Network, Shape};
use rayon::prelude::*;

/// Inputs per call of `logits` in the default `batch_logits`: large enough for efficient
/// kernels, small enough that a foreign runtime's activations stay small.
const BATCH_CHUNK: usize = 64;

/// Batched logits for inputs of a known shape. The oracle's hot path lives behind this trait.
///
/// `lift` / `logits_from_lifted` split off an affine first layer `L`: because
/// `L(x + eps*n) = L(x) + eps*L0(n)` (with `L0` the bias-free part), probes along fixed
/// directions cost one AXPY instead of a first-layer convolution. Classifiers without such a
/// layer keep the defaults (identity lift), so the oracle code is the same for all of them.
pub trait Classifier: Send + Sync {
    /// Shape of one input.
    fn input_shape(&self) -> Shape;
    /// Number of classes (logits per input).
    fn num_classes(&self) -> usize;
    /// Logits `[n, classes]`, computed on the calling thread (callers parallelise).
    fn logits(&self, x: &[f32], n: usize) -> Vec<f32>;
    /// Logits `[n, classes]` of a large batch, computed in parallel chunks.
    fn batch_logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        let len = self.input_shape().len();
        debug_assert_eq!(x.len(), n * len);
        x.par_chunks(BATCH_CHUNK * len).flat_map_iter(|c| self.logits(c, c.len() / len)).collect()
    }
    /// What identifies the function this model computes (weights, file contents): a rerun
    /// reuses artefacts measured on a model only when the identity is the same. `None` (the
    /// default): the model cannot say, and nothing measured on it is reused.
    fn identity(&self) -> Option<String> {
        None
    }
    /// Values in one lifted input (the first layer's output, or the input itself).
    fn lifted_len(&self) -> usize {
        self.input_shape().len()
    }
    /// The affine first layer `L` (with bias) or `L0` (without) applied to `n` inputs.
    fn lift(&self, x: &[f32], _n: usize, _with_bias: bool) -> Vec<f32> {
        x.to_vec()
    }
    /// Logits of `n` lifted inputs (the rest of the network after the first layer).
    fn logits_from_lifted(&self, z: &[f32], n: usize) -> Vec<f32> {
        self.logits(z, n)
    }
    /// Logits at `lift(x) + eps[i] * dirs[i]` for each probe `i`, with `base = lift(x)` and
    /// `dirs` lifted without bias. Implementations may fuse the AXPY into the next layer.
    fn probe_logits(&self, base: &[f32], dirs: &[&[f32]], eps: &[f32]) -> Vec<f32> {
        let mut z = Vec::with_capacity(dirs.len() * base.len());
        for (d, e) in dirs.iter().zip(eps) {
            z.extend(base.iter().zip(d.iter()).map(|(b, v)| b + e * v));
        }
        self.logits_from_lifted(&z, dirs.len())
    }
}

fn affine_first(net: &Network) -> bool {
    matches!(net.specs.first(), Some(LayerSpec::Conv { .. } | LayerSpec::Linear { .. }))
}

impl Classifier for Network {
    fn input_shape(&self) -> Shape {
        self.input
    }
    fn num_classes(&self) -> usize {
        self.out_len()
    }
    fn logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.infer_serial(0, x, n)
    }
    fn batch_logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.forward(x, n)
    }
    fn identity(&self) -> Option<String> {
        // the layers and every weight and buffer (BatchNorm statistics act at inference too)
        let mut bytes = serde_json::to_vec(&(self.input, &self.specs)).expect("serialises");
        for v in self.params.iter().chain(&self.buffers).flatten().flatten() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Some(format!("apsig network sha256:{}", crate::io::sha256_hex(&bytes)))
    }
    fn lifted_len(&self) -> usize {
        if affine_first(self) {
            self.shape_before(1).len()
        } else {
            self.in_len()
        }
    }
    fn lift(&self, x: &[f32], n: usize, with_bias: bool) -> Vec<f32> {
        if affine_first(self) {
            self.apply_infer(0, x, n, Threads::One, with_bias)
        } else {
            x.to_vec()
        }
    }
    fn logits_from_lifted(&self, z: &[f32], n: usize) -> Vec<f32> {
        let start = if affine_first(self) { 1 } else { 0 };
        self.infer_serial(start, z, n)
    }
    fn probe_logits(&self, base: &[f32], dirs: &[&[f32]], eps: &[f32]) -> Vec<f32> {
        if !affine_first(self) || self.specs.get(1) != Some(&LayerSpec::MaxPool2) {
            let z: Vec<f32> = dirs
                .iter()
                .zip(eps)
                .flat_map(|(d, e)| base.iter().zip(d.iter()).map(move |(b, v)| b + e * v))
                .collect();
            return self.logits_from_lifted(&z, dirs.len());
        }
        // fused: max-pool the perturbed first-layer output without materialising it
        let s = self.shape_before(1);
        let (oh, ow, c) = (s.h / 2, s.w / 2, s.c);
        let mut pooled = vec![0.0f32; dirs.len() * oh * ow * c];
        for ((d, &e), out) in dirs.iter().zip(eps).zip(pooled.chunks_mut(oh * ow * c)) {
            crate::kernels::axpy_maxpool2(base, d, e, s.h, s.w, c, out);
        }
        self.infer_serial(2, &pooled, dirs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::rng::Rng;

    #[test]
    fn lifted_forward_equals_plain_forward() {
        let net =
            Network::new(Shape::new(28, 28, 1), Arch::TargetNetS.layers(Shape::new(28, 28, 1), 10, 0), 1).unwrap();
        let mut rng = Rng::new(2);
        let x: Vec<f32> = (0..784).map(|_| rng.uniform()).collect();
        let d: Vec<f32> = (0..784).map(|_| rng.normal() * 0.1).collect();
        let eps = 3.7f32;
        let direct: Vec<f32> = x.iter().zip(&d).map(|(a, b)| a + eps * b).collect();
        let want = net.logits(&direct, 1);
        let lx = net.lift(&x, 1, true);
        let ld = net.lift(&d, 1, false);
        let z: Vec<f32> = lx.iter().zip(&ld).map(|(a, b)| a + eps * b).collect();
        let got = net.logits_from_lifted(&z, 1);
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // the fused AXPY + max-pool probe path agrees too
        let fused = net.probe_logits(&lx, &[&ld[..], &ld[..]], &[eps, 0.0]);
        let plain = net.logits(&x, 1);
        for (a, b) in want.iter().chain(&plain).zip(&fused) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // the parallel batched path agrees with the per-task path
        let batch: Vec<f32> = (0..40).flat_map(|_| direct.clone()).collect();
        let many = net.forward(&batch, 40);
        assert!(many.chunks(10).all(|c| c.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5)));
    }
}

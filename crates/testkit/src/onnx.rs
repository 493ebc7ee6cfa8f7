//! A classifier apsig did not make, as an ONNX file and as plain code (to check tract and
//! the CLI against).

use crate::noise;
use apsig_onnx::proto::{Attr, Dim, Graph};
use std::path::{Path, PathBuf};

/// A committed ONNX classifier exported by PyTorch, trained on MNIST or colour MNIST
/// (`crates/apsig-onnx/tests/fixtures/make_fixtures.py` says which and how):
/// `grey-target.onnx`, `grey-evaluator.onnx`, `colour-target.onnx`, `colour-evaluator.onnx`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../apsig-onnx/tests/fixtures").join(name)
}

/// Colour MNIST as the colour fixtures were trained on it: each 28x28 digit (`n` images,
/// values in [0, 1]) padded to 32x32 and painted `d * fg + (1 - d) * bg` per channel with a
/// foreground and a background colour per image (here from [`noise`], uniform in [0, 1)).
/// Channels-last, `n * 32 * 32 * 3` values.
pub fn colour_mnist(grey: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let colours: Vec<f32> = noise(n * 6, seed, 0.5).into_iter().map(|v| v + 0.5).collect();
    let mut out = Vec::with_capacity(n * 32 * 32 * 3);
    for i in 0..n {
        let (fg, bg) = (&colours[i * 6..i * 6 + 3], &colours[i * 6 + 3..i * 6 + 6]);
        for y in 0..32usize {
            for x in 0..32usize {
                let inside = (2..30).contains(&y) && (2..30).contains(&x);
                let d = if inside { grey[i * 784 + (y - 2) * 28 + (x - 2)] } else { 0.0 };
                out.extend((0..3).map(|c| d * fg[c] + (1.0 - d) * bg[c]));
            }
        }
    }
    out
}

/// A model apsig did not make: 16x16 input, conv 1->4 k3 stride 2 pad 1, ReLU, NCHW flatten,
/// Gemm (transB) to 3 classes. Weights are fixed noise.
pub struct Foreign {
    /// Convolution weights `[4, 1, 3, 3]`.
    pub w1: Vec<f32>,
    /// Convolution biases.
    pub b1: Vec<f32>,
    /// Dense weights `[3, 256]`.
    pub w2: Vec<f32>,
    /// Dense biases.
    pub b2: Vec<f32>,
}

impl Foreign {
    /// The model with its fixed weights.
    pub fn new() -> Self {
        Foreign { w1: noise(4 * 9, 1, 0.5), b1: noise(4, 2, 0.1), w2: noise(3 * 256, 3, 0.2), b2: noise(3, 4, 0.1) }
    }

    /// Writes the model to `path` with batch dimension `batch`.
    pub fn write(&self, path: &Path, batch: Dim) {
        let mut g = Graph::new("foreign");
        g.input("x", &[batch.clone(), Dim::Value(1), Dim::Value(16), Dim::Value(16)])
            .initializer("w1", &[4, 1, 3, 3], &self.w1)
            .initializer("b1", &[4], &self.b1)
            .initializer("w2", &[3, 256], &self.w2)
            .initializer("b2", &[3], &self.b2)
            .node(
                "Conv",
                &["x", "w1", "b1"],
                &["c"],
                &[
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("strides", Attr::Ints(vec![2, 2])),
                    ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ],
            )
            .node("Relu", &["c"], &["r"], &[])
            .node("Flatten", &["r"], &["f"], &[("axis", Attr::Int(1))])
            .node("Gemm", &["f", "w2", "b2"], &["y"], &[("transB", Attr::Int(1)), ("alpha", Attr::Float(1.0))])
            .output("y", &[batch, Dim::Value(3)]);
        std::fs::write(path, g.to_bytes()).unwrap();
    }

    /// The same function, written out directly (input 16x16 row-major).
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut flat = vec![0.0f32; 256];
        for o in 0..4 {
            for oy in 0..8 {
                for ox in 0..8 {
                    let mut acc = self.b1[o];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (y, xx) = (oy as isize * 2 + ky as isize - 1, ox as isize * 2 + kx as isize - 1);
                            if (0..16).contains(&y) && (0..16).contains(&xx) {
                                acc += self.w1[o * 9 + ky * 3 + kx] * x[y as usize * 16 + xx as usize];
                            }
                        }
                    }
                    flat[o * 64 + oy * 8 + ox] = acc.max(0.0);
                }
            }
        }
        (0..3).map(|j| self.b2[j] + (0..256).map(|f| self.w2[j * 256 + f] * flat[f]).sum::<f32>()).collect()
    }
}

impl Default for Foreign {
    fn default() -> Self {
        Self::new()
    }
}

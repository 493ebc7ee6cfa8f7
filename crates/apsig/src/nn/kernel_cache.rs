//! Inference kernels built from a layer's weights (Winograd's transformed weights, the direct
//! kernel's packed panels), kept per layer and reused while the weights are unchanged. The
//! weights are public and trained in place, so every use compares them, bit for bit, with
//! those the kernel was built from (a few microseconds against the hundreds a chunk of images
//! takes): no path that changes them can leave a stale kernel behind.

use crate::kernels::{PackedConv, WinogradConv, WinogradConvT};
use std::sync::{Arc, RwLock};

/// A layer's inference kernel.
pub(super) enum Kernel {
    /// Winograd's F(2x2, 5x5).
    Winograd(WinogradConv),
    /// The direct 6x16 kernel.
    Packed(PackedConv),
    /// Winograd's phases of a 4x4 stride-2 transposed convolution, with its transformed
    /// weights and bias.
    ConvT(Box<(WinogradConvT, Vec<f32>, Vec<f32>)>),
}

impl Kernel {
    /// The fastest kernel for a valid stride-1 convolution, if any applies (inference's and
    /// training's forward pass choose the same, so a network trains on what inference computes).
    pub(super) fn conv(weight: &[f32], bias: Option<&[f32]>, k: usize, cin: usize, cout: usize) -> Option<Kernel> {
        WinogradConv::new(weight, bias, k, cin, cout)
            .map(Kernel::Winograd)
            .or_else(|| PackedConv::new(weight, bias, k, cin, cout).map(Kernel::Packed))
    }

    /// Winograd's kernel of a transposed convolution with these weights (training's forward
    /// pass uses the same).
    pub(super) fn conv_t(conv: WinogradConvT, weight: &[f32], bias: Option<&[f32]>) -> Kernel {
        let mut u = vec![0.0; conv.weight_len()];
        conv.transform_weights(weight, &mut u);
        let bias = bias.map_or_else(|| vec![0.0; conv.cout()], <[f32]>::to_vec);
        Kernel::ConvT(Box::new((conv, u, bias)))
    }

    /// `x` is `[n, h, w, cin]`; `y` receives the convolution's `[n, h-k+1, w-k+1, cout]`, or the
    /// transposed convolution's `[n, 2h, 2w, cout]`.
    pub(super) fn forward(&self, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
        match self {
            Kernel::Winograd(c) => c.forward(x, n, h, w, y),
            Kernel::Packed(c) => c.forward(x, n, h, w, y),
            Kernel::ConvT(c) => c.0.forward(x, n, &c.1, &c.2, y),
        }
    }
}

/// A kernel and the weights it was built from.
pub(super) struct Built {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    pub(super) kernel: Kernel,
}

/// Two slots per layer (with and without its bias: the oracle lifts directions through the
/// first layer without it); a clone starts empty.
#[derive(Default)]
pub(super) struct KernelCache(RwLock<Vec<Option<Arc<Built>>>>);

impl KernelCache {
    /// Layer `layer`'s kernel for these weights: the kept one, or one `build` makes (and the
    /// cache keeps) when the slot is empty or holds other weights; `None` where `build` has
    /// no kernel for the layer.
    pub(super) fn get(
        &self,
        layer: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        build: impl FnOnce() -> Option<Kernel>,
    ) -> Option<Arc<Built>> {
        let slot = 2 * layer + bias.is_some() as usize;
        if let Some(Some(b)) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(slot) {
            let bias_same = match (&b.bias, bias) {
                (Some(kept), Some(now)) => same_bits(kept, now),
                (None, None) => true,
                _ => false,
            };
            if bias_same && same_bits(&b.weight, weight) {
                return Some(b.clone());
            }
        }
        let built = Arc::new(Built { weight: weight.to_vec(), bias: bias.map(<[f32]>::to_vec), kernel: build()? });
        let mut slots = self.0.write().unwrap_or_else(|e| e.into_inner());
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        slots[slot] = Some(built.clone());
        Some(built)
    }
}

/// Whether two tensors hold the same bits (a kernel built from one computes exactly what one
/// built from the other would). Compared 64 values at a time without an early exit, so it
/// vectorises: `==` on `f32` slices compares one float at a time (2% of a forward pass).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    const STEP: usize = 64;
    a.len() == b.len()
        && a.chunks(STEP)
            .zip(b.chunks(STEP))
            .all(|(x, y)| x.iter().zip(y).fold(0, |d, (p, q)| d | (p.to_bits() ^ q.to_bits())) == 0)
}

impl Clone for KernelCache {
    fn clone(&self) -> Self {
        KernelCache::default()
    }
}

impl std::fmt::Debug for KernelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelCache")
    }
}

//! Inference kernels built from a layer's weights (Winograd's transformed weights), kept per
//! layer and reused while the weights are unchanged. The weights are public and trained in
//! place, so every use compares them with those the kernel was built from (a few microseconds
//! against the hundreds a chunk of images takes): no path that changes them can leave a stale
//! kernel behind.

use crate::kernels::WinogradConv;
use std::sync::{Arc, RwLock};

/// A kernel and the weights it was built from.
pub(super) struct Built {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    pub(super) conv: WinogradConv,
}

/// One slot per layer; a clone starts empty.
#[derive(Default)]
pub(super) struct KernelCache(RwLock<Vec<Option<Arc<Built>>>>);

impl KernelCache {
    /// The Winograd kernel of layer `layer` for these weights, built (and kept) when the slot is
    /// empty or holds other weights; `None` where Winograd does not apply to the layer.
    pub(super) fn winograd(
        &self,
        layer: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        k: usize,
        cin: usize,
        cout: usize,
    ) -> Option<Arc<Built>> {
        let fresh = |b: &Built| b.weight == weight && b.bias.as_deref() == bias;
        if let Some(Some(b)) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(layer) {
            if fresh(b) {
                return Some(b.clone());
            }
        }
        let conv = WinogradConv::new(weight, bias, k, cin, cout)?;
        let built = Arc::new(Built { weight: weight.to_vec(), bias: bias.map(<[f32]>::to_vec), conv });
        let mut slots = self.0.write().unwrap_or_else(|e| e.into_inner());
        if slots.len() <= layer {
            slots.resize(layer + 1, None);
        }
        slots[layer] = Some(built.clone());
        Some(built)
    }
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

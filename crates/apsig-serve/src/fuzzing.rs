//! Entry points for the fuzz targets in `fuzz/` (and their corpus replay test): each takes
//! arbitrary bytes and must never panic.

use crate::wire::{self, Body, Kind};

/// The binary wire format: the first byte picks the input size L (1..=64), the rest is a
/// request body. A body that decodes must encode back to the same bytes; the same bytes are
/// also read as a bit answer.
pub fn wire(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else { return };
    let len = 1 + first as usize % 64;
    if let Ok(decoded) = wire::decode(body, len) {
        let encoded = match &decoded {
            Body::Perturbations { count, data } => wire::encode_f32(Kind::Perturbations, *count, data),
            Body::Directions { k, data } => wire::encode_f32(Kind::Directions, *k, data),
            Body::Input(v) => wire::encode_f32(Kind::Input, v.len(), v),
            Body::Probes(p) => wire::encode_probes(p),
        };
        assert_eq!(encoded, body, "a decoded body encodes back to its bytes");
    }
    if let Ok(bits) = wire::decode_bits(body) {
        assert_eq!(wire::encode_bits(&bits), body, "a decoded bit answer encodes back to its bytes");
    }
}

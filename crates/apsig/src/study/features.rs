//! Decoder inputs for each oracle variant. Every variant goes through the same decoder family
//! (`decoder::fit_network` on standardised features); only what the oracle reveals differs.

use crate::signature::SignatureSet;

/// No flip seen along a direction (censored), in the flip-label matrices.
pub const NO_LABEL: u8 = u8::MAX;

/// The change-bit signature: ln(eps) and the censoring mask (+-1) of the first `k` directions.
pub fn signature(sigs: &SignatureSet, k: usize, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * 2 * k);
    for i in 0..rows {
        let r = i * sigs.k;
        out.extend(sigs.eps[r..r + k].iter().map(|e| e.ln()));
        out.extend(sigs.censored[r..r + k].iter().map(|&c| if c != 0 { 1.0 } else { -1.0 }));
    }
    out
}

/// The label oracle's signature: the change-bit signature plus, per direction, the one-hot
/// class the decision flipped *to*, and the one-hot class of the unperturbed input.
pub fn with_labels(sigs: &SignatureSet, flips: &[u8], base: &[u8], classes: usize, rows: usize) -> Vec<f32> {
    let k = sigs.k;
    let sig = signature(sigs, k, rows);
    let dim = 2 * k + k * classes + classes;
    let mut out = Vec::with_capacity(rows * dim);
    for i in 0..rows {
        out.extend_from_slice(&sig[i * 2 * k..(i + 1) * 2 * k]);
        for &l in &flips[i * k..(i + 1) * k] {
            out.extend((0..classes).map(|c| if l as usize == c { 1.0 } else { 0.0 }));
        }
        out.extend((0..classes).map(|c| if base[i] as usize == c { 1.0 } else { 0.0 }));
    }
    out
}

/// The score-vector oracle (Yang et al. 2019): log-probabilities of the unperturbed input.
pub fn scores(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| (p.max(0.0) + 1e-7).ln()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn set() -> SignatureSet {
        SignatureSet {
            k: 3,
            indices: vec![0, 1],
            eps: vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            censored: vec![0, 0, 1, 0, 1, 0],
            queries: vec![1; 6],
            provenance: BTreeMap::new(),
        }
    }

    #[test]
    fn signature_prefix_has_log_eps_then_mask() {
        let f = signature(&set(), 2, 2);
        assert_eq!(f.len(), 8);
        assert!((f[1] - 2f32.ln()).abs() < 1e-6 && f[2] == -1.0);
        assert!((f[4] - 8f32.ln()).abs() < 1e-6 && f[7] == 1.0);
    }

    #[test]
    fn label_features_one_hot_the_flip_and_base_classes() {
        let f = with_labels(&set(), &[1, 0, NO_LABEL, 2, NO_LABEL, 0], &[2, 1], 3, 2);
        let dim = 6 + 9 + 3;
        assert_eq!(f.len(), 2 * dim);
        assert_eq!(&f[6..9], &[0.0, 1.0, 0.0]);
        assert_eq!(&f[12..15], &[0.0, 0.0, 0.0], "censored: no flip class");
        assert_eq!(&f[15..18], &[0.0, 0.0, 1.0]);
        assert_eq!(&f[dim + 6..dim + 9], &[0.0, 0.0, 1.0]);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let p = crate::nn::softmax_rows(&[1.0, 2.0, 3.0, -5.0, 0.0, 5.0], 3);
        for r in p.chunks(3) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(scores(&p).iter().all(|v| v.is_finite() && *v <= 0.0));
    }
}

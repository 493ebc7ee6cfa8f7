//! What a decoder reads: one feature function per oracle variant, and the one `Standardiser`
//! that scales the continuous columns with statistics of the training rows.
//!
//! Every oracle variant (change bit, labels, score vector) reaches the decoder as an `Input`;
//! `Decoder::fit_input` fits the `Standardiser` on the training input and saves it with the
//! weights, so training and decoding read features the same way.

use crate::error::{Error, Result};
use crate::signature::SignatureSet;
use serde::{Deserialize, Serialize};

/// Which features a decoder reads (saved with it; an input of another kind is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputKind {
    /// The change-bit signature: ln eps of K directions, then (with `use_mask`) the censoring
    /// mask as +-1.
    Signature {
        /// Directions.
        k: usize,
        /// Whether the mask columns are there.
        use_mask: bool,
    },
    /// The label oracle: the signature, then per direction the one-hot class the decision
    /// flipped to (zeros where censored), then the one-hot class of the unperturbed input.
    Labels {
        /// Directions.
        k: usize,
        /// Whether the mask columns are there.
        use_mask: bool,
        /// Classes of the one-hot columns.
        classes: usize,
    },
    /// The score-vector oracle: log-probabilities of the unperturbed input.
    Scores {
        /// Classes (values per row).
        classes: usize,
    },
    /// The flip-rate baseline (`signature::flip_rate`): the fraction of changed decisions at
    /// each noise magnitude.
    FlipRate {
        /// Magnitudes (values per row).
        magnitudes: usize,
    },
    /// The boundary-distance baseline (`signature::boundary`): ln of the smallest
    /// decision-changing perturbation's L2 norm, then its unit direction (`len` values).
    Boundary {
        /// Values of one perturbation (the input's size).
        len: usize,
    },
}

impl InputKind {
    /// Values per row.
    pub fn dim(self) -> usize {
        let signature = |k: usize, use_mask: bool| if use_mask { 2 * k } else { k };
        match self {
            InputKind::Signature { k, use_mask } => signature(k, use_mask),
            InputKind::Labels { k, use_mask, classes } => signature(k, use_mask) + k * classes + classes,
            InputKind::Scores { classes } => classes,
            InputKind::FlipRate { magnitudes } => magnitudes,
            InputKind::Boundary { len } => len + 1,
        }
    }

    /// Leading columns that are standardised (ln eps, log-probabilities); the columns after
    /// them are indicators (the +-1 mask, one-hot classes) and are read as they are.
    pub fn scaled(self) -> usize {
        match self {
            InputKind::Signature { k, .. } | InputKind::Labels { k, .. } => k,
            InputKind::Scores { classes } => classes,
            InputKind::FlipRate { magnitudes } => magnitudes,
            InputKind::Boundary { len } => len + 1,
        }
    }

    /// Directions the input is measured along (0 for score vectors, flip rates and boundaries).
    pub fn k(self) -> usize {
        match self {
            InputKind::Signature { k, .. } | InputKind::Labels { k, .. } => k,
            InputKind::Scores { .. } | InputKind::FlipRate { .. } | InputKind::Boundary { .. } => 0,
        }
    }
}

/// Features of `rows` inputs, row-major `[rows, kind.dim()]`, before standardisation.
pub struct Input<'a> {
    /// What the features are.
    pub kind: InputKind,
    /// Inputs (images), one row each.
    pub rows: usize,
    /// Row-major `[rows, kind.dim()]`.
    pub values: Vec<f32>,
    /// Fingerprint of the directions the signatures were measured along (empty for scores).
    pub directions: String,
    /// The signatures behind the ln eps columns: their statistics are taken from eps in f64.
    sigs: Option<&'a SignatureSet>,
}

impl<'a> Input<'a> {
    /// The change-bit signature of the first `rows` images along the first `k` directions.
    pub fn signature(sigs: &'a SignatureSet, k: usize, rows: usize, use_mask: bool) -> Result<Self> {
        if k == 0 || k > sigs.k || rows > sigs.n() {
            return Err(Error::invalid(
                "decoder input",
                format!("{rows} rows of K = {k} asked of {} signatures of K = {}", sigs.n(), sigs.k),
            ));
        }
        let kind = InputKind::Signature { k, use_mask };
        let mut values = Vec::with_capacity(rows * kind.dim());
        for i in 0..rows {
            let r = i * sigs.k..i * sigs.k + k;
            values.extend(sigs.eps[r.clone()].iter().map(|e| e.ln()));
            if use_mask {
                values.extend(sigs.censored[r].iter().map(|&c| if c != 0 { 1.0 } else { -1.0 }));
            }
        }
        Ok(Input { kind, rows, values, directions: sigs.prov("directions").to_string(), sigs: Some(sigs) })
    }

    /// The label oracle's input: the signature, the class each direction flipped to (`flips`,
    /// `[rows, k]`, `signature::label::NO_LABEL` where censored) and the class of the unperturbed input (`base`).
    pub fn labels(
        sigs: &'a SignatureSet,
        k: usize,
        use_mask: bool,
        flips: &[u8],
        base: &[u8],
        classes: usize,
    ) -> Result<Self> {
        let rows = base.len();
        if flips.len() != rows * k {
            return Err(Error::invalid(
                "decoder input",
                format!("{} flip labels for {rows} rows of K = {k}", flips.len()),
            ));
        }
        let sig = Input::signature(sigs, k, rows, use_mask)?;
        let (sd, kind) = (sig.kind.dim(), InputKind::Labels { k, use_mask, classes });
        let one_hot = |l: u8| (0..classes).map(move |c| if l as usize == c { 1.0 } else { 0.0 });
        let mut values = Vec::with_capacity(rows * kind.dim());
        for i in 0..rows {
            values.extend_from_slice(&sig.values[i * sd..(i + 1) * sd]);
            values.extend(flips[i * k..(i + 1) * k].iter().flat_map(|&l| one_hot(l)));
            values.extend(one_hot(base[i]));
        }
        Ok(Input { kind, values, ..sig })
    }

    /// The score-vector oracle's input (Yang et al. 2019): the log-probabilities of the
    /// unperturbed inputs, from softmax scores `[rows, classes]`.
    pub fn scores(probs: &[f32], classes: usize) -> Result<Input<'static>> {
        if classes == 0 || !probs.len().is_multiple_of(classes) {
            return Err(Error::invalid("decoder input", format!("{} scores for {classes} classes", probs.len())));
        }
        Ok(Input {
            kind: InputKind::Scores { classes },
            rows: probs.len() / classes,
            values: probs.iter().map(|p| (p.max(0.0) + 1e-7).ln()).collect(),
            directions: String::new(),
            sigs: None,
        })
    }

    /// The flip-rate baseline's input: per row, the fraction of changed decisions at each of
    /// `magnitudes` noise magnitudes (`rates`, `[rows, magnitudes]`).
    pub fn flip_rates(rates: &[f32], magnitudes: usize) -> Result<Input<'static>> {
        if magnitudes == 0 || !rates.len().is_multiple_of(magnitudes) || rates.iter().any(|r| !(0.0..=1.0).contains(r))
        {
            return Err(Error::invalid(
                "decoder input",
                format!("{} flip rates in [0, 1] for {magnitudes} magnitudes", rates.len()),
            ));
        }
        Ok(Input {
            kind: InputKind::FlipRate { magnitudes },
            rows: rates.len() / magnitudes,
            values: rates.to_vec(),
            directions: String::new(),
            sigs: None,
        })
    }

    /// The boundary-distance baseline's input: per row, `BoundaryPoint::features` of a
    /// perturbation of `len` values (`features`, `[rows, len + 1]`).
    pub fn boundary(features: &[f32], len: usize) -> Result<Input<'static>> {
        let kind = InputKind::Boundary { len };
        if len == 0 || !features.len().is_multiple_of(kind.dim()) || features.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "decoder input",
                format!("{} finite boundary features for perturbations of {len} values", features.len()),
            ));
        }
        Ok(Input {
            kind,
            rows: features.len() / kind.dim(),
            values: features.to_vec(),
            directions: String::new(),
            sigs: None,
        })
    }

    /// The standardised features, ready for the network.
    pub fn standardised(&self, scale: &Standardiser) -> Vec<f32> {
        let mut x = self.values.clone();
        scale.apply(&mut x, self.kind.dim());
        x
    }
}

/// Per-column standardisation of an input's leading `kind.scaled()` columns, fitted on the
/// training rows (std floored, so a constant column stays finite) and saved with the decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardiser {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardiser {
    /// Fits on the training input. ln eps statistics are taken from eps in f64.
    pub fn fit(input: &Input) -> Self {
        let (rows, cols, dim) = (input.rows, input.kind.scaled(), input.kind.dim());
        match input.sigs {
            Some(s) => Self::fit_with(rows, cols, |i, j| (s.eps[i * s.k + j] as f64).ln()),
            None => Self::fit_with(rows, cols, |i, j| input.values[i * dim + j] as f64),
        }
    }

    fn fit_with(rows: usize, cols: usize, value: impl Fn(usize, usize) -> f64) -> Self {
        let n = rows.max(1) as f64;
        let mut sum = vec![0.0f64; cols];
        let mut sq = vec![0.0f64; cols];
        for i in 0..rows {
            for j in 0..cols {
                let v = value(i, j);
                sum[j] += v;
                sq[j] += v * v;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - (*m as f64).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
            .collect();
        Standardiser { mean, std }
    }

    /// A standardiser read back from a file (`what` names it in errors).
    pub fn from_parts(mean: Vec<f32>, std: Vec<f32>, what: &str) -> Result<Self> {
        if mean.len() != std.len() || !std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(Error::invalid(what, "standard deviations must be positive and finite, one per mean"));
        }
        Ok(Standardiser { mean, std })
    }

    /// Per-column means of the scaled columns.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-column standard deviations (floored) of the scaled columns.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Standardises the leading columns of each row of `x` (`dim` values per row) in place.
    pub fn apply(&self, x: &mut [f32], dim: usize) {
        for row in x.chunks_mut(dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::label::NO_LABEL;
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
    fn signature_prefix_has_log_eps_then_mask_per_use_mask() {
        let s = set();
        let f = Input::signature(&s, 2, 2, true).unwrap();
        assert_eq!(f.values.len(), 8);
        assert!((f.values[1] - 2f32.ln()).abs() < 1e-6 && f.values[2] == -1.0);
        assert!((f.values[4] - 8f32.ln()).abs() < 1e-6 && f.values[7] == 1.0);
        let f = Input::signature(&s, 2, 2, false).unwrap();
        assert_eq!(f.values.len(), 4);
        assert!((f.values[2] - 8f32.ln()).abs() < 1e-6);
        assert!(Input::signature(&s, 4, 2, true).is_err() && Input::signature(&s, 2, 3, true).is_err());
    }

    #[test]
    fn standardiser_scales_log_eps_and_leaves_the_mask() {
        let s = set();
        let input = Input::signature(&s, 3, 2, true).unwrap();
        let scale = Standardiser::fit(&input);
        let x = input.standardised(&scale);
        for j in 0..3 {
            // two rows: standardised to -1 and +1
            assert!((x[j] + 1.0).abs() < 1e-5 && (x[6 + j] - 1.0).abs() < 1e-5, "column {j}: {x:?}");
        }
        assert_eq!(&x[3..6], &input.values[3..6], "the mask passes as +-1");
        assert_eq!(&x[9..12], &input.values[9..12]);
    }

    #[test]
    fn constant_column_stays_finite() {
        let input = Input::scores(&[0.5, 0.5, 0.5, 0.5], 2).unwrap();
        let x = input.standardised(&Standardiser::fit(&input));
        assert!(x.iter().all(|v| v.is_finite() && v.abs() < 1e-3));
    }

    #[test]
    fn label_features_one_hot_the_flip_and_base_classes() {
        let s = set();
        let f = Input::labels(&s, 3, true, &[1, 0, NO_LABEL, 2, NO_LABEL, 0], &[2, 1], 3).unwrap();
        let dim = 6 + 9 + 3;
        assert_eq!(f.kind.dim(), dim);
        assert_eq!(f.values.len(), 2 * dim);
        assert_eq!(&f.values[6..9], &[0.0, 1.0, 0.0]);
        assert_eq!(&f.values[12..15], &[0.0, 0.0, 0.0], "censored: no flip class");
        assert_eq!(&f.values[15..18], &[0.0, 0.0, 1.0]);
        assert_eq!(&f.values[dim + 6..dim + 9], &[0.0, 0.0, 1.0]);
        assert!(Input::labels(&s, 3, true, &[1, 0], &[2, 1], 3).is_err());
    }

    #[test]
    fn scores_are_log_probabilities() {
        let p = crate::nn::softmax_rows(&[1.0, 2.0, 3.0, -5.0, 0.0, 5.0], 3);
        for r in p.chunks(3) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let f = Input::scores(&p, 3).unwrap();
        assert_eq!(f.rows, 2);
        assert!(f.values.iter().all(|v| v.is_finite() && *v <= 0.0));
        assert!(Input::scores(&p, 4).is_err());
    }
}

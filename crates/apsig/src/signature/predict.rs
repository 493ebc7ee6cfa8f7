//! `EpsPredictor`: what the eps already measured on a secret say about those still to measure.
//!
//! The K eps of one image are far from independent: they are all set by the same image's
//! distance to the decision boundary and the boundary's orientation. A Gaussian model of
//! `ln eps`, fitted on the adversary's own (white-box) signatures, turns the directions measured
//! so far into a prediction for the next ones. With the Cholesky factor `L` of the covariance
//! (`z = mu + L w`, `w ~ N(0, I)`), directions measured in index order, the prediction for
//! direction `k` once the first `g` are known is `N(mu_k + sum_{j<g} L_kj w_j, sum_{g<=j<=k} L_kj^2)`,
//! where `w` solves `L w = z - mu` on the measured ones: one matrix row per direction, nothing
//! refitted per secret.
//!
//! The search (`EpsSearch::predicted`) measures the directions in groups of `group` (a group's
//! probes share one round) and bisects each bracket in probability under its prediction rather
//! than in eps, so a good prediction takes few probes and a bad one costs a few more, never a
//! wrong answer: the search's guarantee holds whatever the model says.

use crate::attributes::cholesky;
use crate::error::{Error, Result};
use std::ops::Range;
use std::sync::Arc;

/// A Gaussian model of a signature's `ln eps`, for predicting unmeasured directions.
#[derive(Clone, Debug)]
pub struct EpsPredictor {
    inner: Arc<Model>,
}

#[derive(Debug)]
struct Model {
    k: usize,
    group: usize,
    mu: Vec<f64>,
    /// Row-major lower-triangular `[k, k]` Cholesky factor of the covariance.
    chol: Vec<f64>,
    /// Where the adversary's own search started each direction (its training signatures'
    /// median eps), when the search is to check them (see [`EpsPredictor::with_anchors`]).
    anchors: Option<Vec<f32>>,
    fingerprint: String,
}

/// Ridge added to the covariance's diagonal, as a share of its mean variance: keeps the factor
/// well conditioned when directions are nearly collinear in `ln eps` or few images are given.
const SHRINK: f64 = 1e-3;

impl EpsPredictor {
    /// Fits the model on signatures measured on the adversary's own images: `eps` holds rows
    /// of `k` (a `SignatureSet`'s `k` and `eps`; censored entries count at the `eps_max`
    /// recorded). `group` directions are measured per round.
    pub fn fit(k: usize, eps: &[f32], group: usize) -> Result<Self> {
        let n = eps.len().checked_div(k).unwrap_or(0);
        if k == 0 || n < 2 {
            return Err(Error::invalid("eps predictor", format!("needs at least 2 signatures of K >= 1, got {n}")));
        }
        if group == 0 {
            return Err(Error::invalid("eps predictor", "a group of 0 directions"));
        }
        if eps.len() != n * k || eps.iter().any(|e| !(*e > 0.0 && e.is_finite())) {
            return Err(Error::invalid("eps predictor", "the training signatures are not rows of K positive eps"));
        }
        let z: Vec<f64> = eps.iter().map(|e| (*e as f64).ln()).collect();
        let mut mu = vec![0f64; k];
        for row in z.chunks(k) {
            mu.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mu.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0f64; k * k];
        let mut c = vec![0f64; k];
        for row in z.chunks(k) {
            c.iter_mut().zip(row).zip(&mu).for_each(|((c, v), m)| *c = v - m);
            for i in 0..k {
                let ci = c[i];
                cov[i * k..i * k + i + 1].iter_mut().zip(&c[..=i]).for_each(|(s, cj)| *s += ci * cj);
            }
        }
        cov.iter_mut().for_each(|s| *s /= (n - 1) as f64);
        let mean_var = (0..k).map(|i| cov[i * k + i]).sum::<f64>() / k as f64;
        for i in 0..k {
            cov[i * k + i] += SHRINK * mean_var.max(1e-12);
        }
        let chol = cholesky(&cov, k)?;
        let mut model = Model { k, group, mu, chol, anchors: None, fingerprint: String::new() };
        model.fingerprint = model.content_fingerprint();
        Ok(EpsPredictor { inner: Arc::new(model) })
    }

    /// The same model, with the search checking each direction's `anchors[i]` (where the
    /// adversary's own search started it: its training signatures' median eps) whenever the
    /// prediction has jumped past it.
    ///
    /// Why: a ray's decision need not change once and for all. Along many directions a large
    /// eps clips the image to the same saturated pattern whatever the image, so an image of
    /// that pattern's class changes its decision over a bounded stretch of eps and then comes
    /// back. The adversary's own walk from the anchor meets the stretch; a prediction that
    /// starts beyond it does not, and reports the direction censored (or finds another
    /// crossing), which the decoder, trained on the walk's eps, misreads. The check costs
    /// one probe where it is made, and where the anchor does not change either, the walk's
    /// first `ANCHOR_WALK_STEPS` grid steps above it; it leaves the eps of every ray with a
    /// single threshold as it was.
    pub fn with_anchors(self, anchors: &[f32]) -> Result<Self> {
        let m = &self.inner;
        if anchors.len() != m.k || anchors.iter().any(|a| !(*a > 0.0 && a.is_finite())) {
            return Err(Error::invalid("eps predictor", format!("needs {} positive anchors", m.k)));
        }
        let mut model = Model {
            k: m.k,
            group: m.group,
            mu: m.mu.clone(),
            chol: m.chol.clone(),
            anchors: Some(anchors.to_vec()),
            fingerprint: String::new(),
        };
        model.fingerprint = model.content_fingerprint();
        Ok(EpsPredictor { inner: Arc::new(model) })
    }

    /// The anchor of direction `i`, where the search checks them.
    pub(crate) fn anchor(&self, i: usize) -> Option<f32> {
        self.inner.anchors.as_ref().map(|a| a[i])
    }

    /// Number of directions.
    pub fn k(&self) -> usize {
        self.inner.k
    }

    /// Content fingerprint (recorded in a signature set's provenance in place of the starts).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// The group of directions measured after the first `done`.
    pub(crate) fn next_group(&self, done: usize) -> Range<usize> {
        done..(done + self.inner.group).min(self.inner.k)
    }

    /// Predictions `(mean, sd)` of `ln eps` for the directions of `range`, given the whitened
    /// values `w` of the directions before `range.start`.
    pub(crate) fn predict(&self, range: Range<usize>, w: &[f64]) -> Vec<(f32, f32)> {
        let m = &self.inner;
        let g = range.start;
        range
            .map(|i| {
                let row = &m.chol[i * m.k..i * m.k + i + 1];
                let mean = m.mu[i] + row[..g].iter().zip(&w[..g]).map(|(l, w)| l * w).sum::<f64>();
                let var = row[g..].iter().map(|l| l * l).sum::<f64>();
                (mean as f32, var.sqrt() as f32)
            })
            .collect()
    }

    /// Extends the whitened values `w` over `range` from the measured eps of its directions.
    pub(crate) fn whiten(&self, range: Range<usize>, eps: &[f32], w: &mut [f64]) {
        let m = &self.inner;
        for i in range {
            let row = &m.chol[i * m.k..i * m.k + i + 1];
            let known = row[..i].iter().zip(&w[..i]).map(|(l, w)| l * w).sum::<f64>();
            w[i] = ((eps[i] as f64).ln() - m.mu[i] - known) / row[i];
        }
    }
}

impl Model {
    /// A hash of everything that steers the search (a model without anchors hashes as it
    /// always has, so signatures measured before anchors existed keep their provenance).
    fn content_fingerprint(&self) -> String {
        let mut bytes: Vec<f32> = self.mu.iter().map(|v| *v as f32).collect();
        bytes.extend(self.chol.iter().map(|v| *v as f32));
        bytes.push(self.group as f32);
        match &self.anchors {
            None => format!("predicted:{}", crate::io::fingerprint_f32(&bytes)),
            Some(a) => {
                bytes.extend(a);
                format!("predicted-anchored:{}", crate::io::fingerprint_f32(&bytes))
            }
        }
    }
}

/// The standard normal CDF (Abramowitz & Stegun 7.1.26 for erfc; absolute error below 1e-7,
/// ample for choosing where to probe).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let tail = 0.5 * poly * (-0.5 * x * x).exp();
    if x >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.696_830_286_653_76,
        220.946_098_424_520_5,
        -275.928_510_446_968_7,
        138.357_751_867_269,
        -30.664_798_066_147_16,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -54.476_098_798_224_06,
        161.585_836_858_040_9,
        -155.698_979_859_886_6,
        66.801_311_887_719_72,
        -13.280_681_552_885_72,
    ];
    const C: [f64; 6] = [
        -0.007_784_894_002_430_293,
        -0.322_396_458_041_136_4,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [0.007_784_695_709_041_462, 0.322_467_129_070_039_8, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn normal_cdf_and_quantile_invert_each_other() {
        for &x in &[-6.0, -3.0, -1.5, -0.2, 0.0, 0.7, 2.0, 4.5] {
            let p = normal_cdf(x);
            assert!((normal_quantile(p) - x).abs() < 1e-3 * (1.0 + x.abs()), "x {x}: p {p}");
        }
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
    }

    #[test]
    fn predicts_a_direction_from_the_ones_it_moves_with() {
        // eps_1 = 2 * eps_0 (up to 1% noise), eps_2 independent of both
        let mut rng = Rng::new(4);
        let mut eps = Vec::new();
        for _ in 0..2000 {
            let a = (rng.uniform() * 3.0).exp();
            let noise = 1.0 + 0.01 * (rng.uniform() - 0.5);
            eps.extend([a, 2.0 * a * noise, (rng.uniform() * 3.0).exp()]);
        }
        let p = EpsPredictor::fit(3, &eps, 1).unwrap();
        let mut w = vec![0.0; 3];
        p.whiten(0..1, &[5.0, 0.0, 0.0], &mut w);
        let next = p.predict(1..3, &w);
        assert!((next[0].0 - 10f32.ln()).abs() < 0.02, "{:?}", next[0]);
        assert!(next[0].1 < 0.05, "{:?}", next[0]);
        // the independent one stays at its marginal: mean 1.5, sd 3 / sqrt(12)
        assert!((next[1].0 - 1.5).abs() < 0.15 && (next[1].1 - 0.866).abs() < 0.1, "{:?}", next[1]);
        assert_eq!(p.next_group(2), 2..3);
        assert!(EpsPredictor::fit(3, &eps, 0).is_err());
        assert!(EpsPredictor::fit(3, &eps[..4], 1).is_err());
    }

    #[test]
    fn anchors_are_checked_and_change_the_fingerprint() {
        let eps: Vec<f32> = (0..40).map(|i| 1.0 + (i % 7) as f32).collect();
        let p = EpsPredictor::fit(2, &eps, 1).unwrap();
        assert!(p.fingerprint().starts_with("predicted:") && p.anchor(0).is_none());
        let a = p.clone().with_anchors(&[2.0, 3.0]).unwrap();
        assert!(a.fingerprint().starts_with("predicted-anchored:"), "{}", a.fingerprint());
        assert_ne!(a.fingerprint(), p.clone().with_anchors(&[2.0, 4.0]).unwrap().fingerprint());
        assert_eq!((a.anchor(0), a.anchor(1)), (Some(2.0), Some(3.0)));
        // the predictions themselves do not move
        assert_eq!(a.predict(0..2, &[0.0, 0.0]), p.predict(0..2, &[0.0, 0.0]));
        assert!(p.clone().with_anchors(&[2.0]).is_err());
        assert!(p.clone().with_anchors(&[2.0, 0.0]).is_err());
        assert!(p.with_anchors(&[2.0, f32::NAN]).is_err());
    }
}

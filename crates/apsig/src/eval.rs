//! The evaluation protocol of METHOD.md: pixel metrics, class recovery by an independent
//! evaluator, and the global-mean and class-mean baselines on the same images.

use crate::nn::Network;
use apsig_data::Split;
use serde::{Deserialize, Serialize};

/// Quality of a set of reconstructions against the originals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quality {
    /// Mean squared error per pixel.
    pub mse: f64,
    /// Mean per-image peak signal-to-noise ratio in dB (peak 1).
    pub psnr_db: f64,
    /// Mean per-image structural similarity (SSIM).
    pub ssim: f64,
    /// Fraction the evaluator assigns the true label of the original.
    pub class_recovery: f64,
}

/// MSE, PSNR (from the mean MSE... per image, then averaged), SSIM and class recovery.
pub fn quality(recons: &[f32], originals: &[f32], labels: &[u8], side: usize, evaluator: &Network) -> Quality {
    let px = side * side;
    let n = labels.len();
    assert_eq!(recons.len(), n * px);
    let mut mse_sum = 0.0;
    let mut psnr_sum = 0.0;
    let mut ssim_sum = 0.0;
    for i in 0..n {
        let (r, o) = (&recons[i * px..(i + 1) * px], &originals[i * px..(i + 1) * px]);
        let m = mse(r, o);
        mse_sum += m;
        psnr_sum += 10.0 * (1.0 / m.max(1e-10)).log10();
        ssim_sum += ssim(r, o, side);
    }
    let acc = crate::model::accuracy(evaluator, recons, labels) as f64;
    let n = n.max(1) as f64;
    Quality { mse: mse_sum / n, psnr_db: psnr_sum / n, ssim: ssim_sum / n, class_recovery: acc }
}

/// Mean squared difference of two equally long images.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64
}

/// SSIM with an 11x11 Gaussian window (sigma 1.5), data range 1, averaged over valid windows.
pub fn ssim(a: &[f32], b: &[f32], side: usize) -> f64 {
    const R: usize = 5;
    let w: Vec<f64> = (0..=2 * R).map(|i| (-((i as f64 - R as f64).powi(2)) / (2.0 * 1.5f64.powi(2))).exp()).collect();
    let ws: f64 = w.iter().sum();
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    let mut count = 0;
    for cy in R..side - R {
        for cx in R..side - R {
            let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..=2 * R {
                for dx in 0..=2 * R {
                    let g = w[dy] * w[dx] / (ws * ws);
                    let j = (cy + dy - R) * side + cx + dx - R;
                    let (x, y) = (a[j] as f64, b[j] as f64);
                    ma += g * x;
                    mb += g * y;
                    saa += g * x * x;
                    sbb += g * y * y;
                    sab += g * x * y;
                }
            }
            let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// The two baselines: the global mean training image, and the mean image of each class.
pub struct Baselines {
    /// The mean training image.
    pub global: Vec<f32>,
    /// The mean training image of each class.
    pub per_class: Vec<Vec<f32>>,
}

impl Baselines {
    /// The means of a training split.
    pub fn from_train(train: &Split) -> Self {
        let px = train.pixels();
        let classes = train.num_classes();
        let mut global = vec![0.0f64; px];
        let mut per = vec![vec![0.0f64; px]; classes];
        let mut counts = vec![0usize; classes];
        for i in 0..train.n {
            let img = train.image(i);
            let c = train.labels[i] as usize;
            counts[c] += 1;
            for j in 0..px {
                global[j] += img[j] as f64;
                per[c][j] += img[j] as f64;
            }
        }
        let to32 = |v: &[f64], n: usize| v.iter().map(|x| (x / n.max(1) as f64) as f32).collect::<Vec<f32>>();
        Baselines {
            global: to32(&global, train.n),
            per_class: per.iter().zip(&counts).map(|(v, &c)| to32(v, c)).collect(),
        }
    }

    /// The baseline "reconstructions" for the given labels.
    pub fn global_for(&self, n: usize) -> Vec<f32> {
        (0..n).flat_map(|_| self.global.iter().copied()).collect()
    }
    /// The class mean of each label, concatenated.
    pub fn class_for(&self, labels: &[u8]) -> Vec<f32> {
        labels.iter().flat_map(|&l| self.per_class[l as usize].iter().copied()).collect()
    }
}

/// Identification (METHOD.md): whether *this* secret came back, not just its class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identification {
    /// Fraction of reconstructions whose nearest original (L2, over all evaluated secrets)
    /// is their own secret.
    pub top1: f64,
    /// The same when only the secrets of the same true class compete (style, not class).
    pub top1_same_class: f64,
    /// Chance level of `top1`: 1 / n.
    pub chance: f64,
    /// Chance level of `top1_same_class`: the mean of 1 / (secrets of the class).
    pub chance_same_class: f64,
}

/// Identification of `n = labels.len()` reconstructions among their originals (rows of
/// `recons.len() / n` values, same order). Ties go to the lower index.
pub fn identification(recons: &[f32], originals: &[f32], labels: &[u8]) -> Identification {
    use rayon::prelude::*;
    let n = labels.len();
    assert_eq!(recons.len(), originals.len());
    if n == 0 {
        return Identification { top1: 0.0, top1_same_class: 0.0, chance: 0.0, chance_same_class: 0.0 };
    }
    let px = recons.len() / n;
    let dist = |r: &[f32], j: usize| -> f64 {
        r.iter().zip(&originals[j * px..(j + 1) * px]).map(|(a, b)| ((a - b) as f64).powi(2)).sum()
    };
    let (hits, hits_class): (usize, usize) = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = &recons[i * px..(i + 1) * px];
            let (mut best, mut best_class) = ((f64::INFINITY, 0), (f64::INFINITY, 0));
            for j in 0..n {
                let d = dist(r, j);
                if d < best.0 {
                    best = (d, j);
                }
                if labels[j] == labels[i] && d < best_class.0 {
                    best_class = (d, j);
                }
            }
            ((best.1 == i) as usize, (best_class.1 == i) as usize)
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let mut per_class = [0usize; 256];
    labels.iter().for_each(|&l| per_class[l as usize] += 1);
    let chance_same_class = labels.iter().map(|&l| 1.0 / per_class[l as usize] as f64).sum::<f64>() / n as f64;
    Identification {
        top1: hits as f64 / n as f64,
        top1_same_class: hits_class as f64 / n as f64,
        chance: 1.0 / n as f64,
        chance_same_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssim_is_one_for_identical_and_lower_for_noise() {
        let a: Vec<f32> = (0..784).map(|i| (i % 28) as f32 / 28.0).collect();
        assert!((ssim(&a, &a, 28) - 1.0).abs() < 1e-9);
        let b: Vec<f32> = a.iter().enumerate().map(|(i, v)| v + if i % 3 == 0 { 0.3 } else { -0.1 }).collect();
        assert!(ssim(&a, &b, 28) < 0.9);
        assert!((mse(&a, &b) - (0.09 + 2.0 * 0.01) / 3.0).abs() < 1e-3);
    }

    #[test]
    fn identification_finds_own_secrets_and_counts_chance() {
        // four secrets, two per class; reconstructions near their own secret, except the
        // last, which lies nearest the third secret (same class)
        let originals = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let recons = [0.1f32, 0.0, 0.9, 0.0, 0.0, 0.9, 0.1, 0.8];
        let id = identification(&recons, &originals, &[0, 0, 1, 1]);
        assert_eq!(id, Identification { top1: 0.75, top1_same_class: 0.75, chance: 0.25, chance_same_class: 0.5 });
        // with the last in its own class, only the class-restricted view changes
        let id = identification(&recons, &originals, &[0, 0, 1, 2]);
        assert_eq!((id.top1, id.top1_same_class), (0.75, 1.0));
    }
}

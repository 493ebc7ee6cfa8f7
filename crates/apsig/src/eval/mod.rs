//! The evaluation protocol of METHOD.md: pixel metrics, class recovery by an independent
//! evaluator, and the global-mean and class-mean baselines on the same images.

mod identification;

pub use identification::{identification, Identification};

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
}

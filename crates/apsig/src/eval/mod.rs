//! The evaluation protocol of METHOD.md: pixel metrics, class recovery by an independent
//! evaluator, and the global-mean and class-mean baselines on the same images. Images are
//! channels-last `H x W x C`; on colour images MSE and PSNR run over every value and SSIM is
//! the mean of the per-channel SSIMs. `colour` adds how well the foreground and background
//! colours come back.

pub mod colour;
mod identification;

pub use identification::{identification, identified_each, Identification};

mod interval;
pub use interval::{paired_bootstrap, winner, Interval, Verdict, RESAMPLES};

use crate::model::Classifier;
use crate::nn::Shape;
use apsig_data::Split;
use serde::{Deserialize, Serialize};

/// Quality of a set of reconstructions against the originals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quality {
    /// Mean squared error per pixel.
    pub mse: f64,
    /// Mean per-image peak signal-to-noise ratio in dB (peak 1).
    pub psnr_db: f64,
    /// Mean per-image structural similarity (SSIM; on colour images the mean of the
    /// per-channel SSIMs).
    pub ssim: f64,
    /// Fraction the evaluator assigns the true label of the original.
    pub class_recovery: f64,
    /// Whether the specific secret comes back: nearest-original shares with chance levels
    /// (absent in metrics written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identification: Option<Identification>,
}

/// MSE, PSNR and SSIM (each per image, then averaged) and class recovery, for images of
/// shape `image`.
pub fn quality(recons: &[f32], originals: &[f32], labels: &[u8], image: Shape, evaluator: &dyn Classifier) -> Quality {
    scored(recons, originals, labels, image, evaluator).0
}

/// Each secret's outcome behind a `Quality`, for intervals over secrets (`paired_bootstrap`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerSecret {
    /// MSE of each reconstruction.
    pub mse: Vec<f64>,
    /// Whether each identifies its secret, all secrets competing.
    pub identified: Vec<bool>,
    /// Whether the evaluator gives each the true label of its original.
    pub class_recovered: Vec<bool>,
}

/// The per-secret measures a difference between two attacks is resampled over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Each reconstruction's MSE (lower is better).
    Mse,
    /// Whether each identifies its secret among all (1 or 0).
    Identified,
    /// Whether the evaluator gives each its original's class (1 or 0).
    ClassRecovered,
}

impl Measure {
    /// Every measure, in report order.
    pub const ALL: [Measure; 3] = [Measure::Mse, Measure::Identified, Measure::ClassRecovered];

    /// Whether a smaller value is the better attack.
    pub fn lower_is_better(self) -> bool {
        self == Measure::Mse
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Mse => "MSE",
            Measure::Identified => "identified",
            Measure::ClassRecovered => "class recovery",
        }
    }
}

impl PerSecret {
    /// Each secret's value of `m` (a share's 1 or 0 as a number, so its mean is the share).
    pub fn values(&self, m: Measure) -> Vec<f64> {
        let share = |v: &[bool]| v.iter().map(|&b| f64::from(u8::from(b))).collect();
        match m {
            Measure::Mse => self.mse.clone(),
            Measure::Identified => share(&self.identified),
            Measure::ClassRecovered => share(&self.class_recovered),
        }
    }
}

/// `quality` and the per-secret outcomes it averages.
pub fn scored(
    recons: &[f32],
    originals: &[f32],
    labels: &[u8],
    image: Shape,
    evaluator: &dyn Classifier,
) -> (Quality, PerSecret) {
    let px = image.len();
    let n = labels.len();
    assert_eq!(recons.len(), n * px);
    let mut per_image = Vec::with_capacity(n);
    let mut psnr_sum = 0.0;
    let mut ssim_sum = 0.0;
    for i in 0..n {
        let (r, o) = (&recons[i * px..(i + 1) * px], &originals[i * px..(i + 1) * px]);
        let m = mse(r, o);
        per_image.push(m);
        psnr_sum += 10.0 * (1.0 / m.max(1e-10)).log10();
        ssim_sum += ssim(r, o, image);
    }
    let class_recovered = crate::model::correct_each(evaluator, recons, labels);
    let each = identified_each(recons, originals, labels, px);
    let recovered = class_recovered.iter().filter(|&&b| b).count() as f32 / n.max(1) as f32;
    let nf = n.max(1) as f64;
    let q = Quality {
        mse: per_image.iter().sum::<f64>() / nf,
        psnr_db: psnr_sum / nf,
        ssim: ssim_sum / nf,
        class_recovery: recovered as f64,
        identification: Some(identification::summarise(&each, labels)),
    };
    let per_secret = PerSecret { mse: per_image, identified: each.iter().map(|v| v[0]).collect(), class_recovered };
    (q, per_secret)
}

impl Quality {
    /// Identification shares as report cells: overall and within class, in percent.
    pub fn identified_cells(&self) -> [String; 2] {
        match self.identification {
            Some(id) => [format!("{:.1}%", 100.0 * id.overall), format!("{:.1}%", 100.0 * id.within_class)],
            None => ["n/a".into(), "n/a".into()],
        }
    }
}

/// Mean squared difference of two equally long images.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64
}

/// SSIM of two channels-last images of shape `image`: per channel, an 11x11 Gaussian window
/// (sigma 1.5), data range 1, averaged over the valid windows; then the mean over channels
/// (the usual convention for colour, e.g. scikit-image's `channel_axis`). 0 for images with a
/// side under 11 pixels (no valid window).
pub fn ssim(a: &[f32], b: &[f32], image: Shape) -> f64 {
    let total: f64 = (0..image.c).map(|c| ssim_channel(a, b, image, c)).sum();
    total / image.c.max(1) as f64
}

/// SSIM of channel `ch` of two channels-last images.
fn ssim_channel(a: &[f32], b: &[f32], image: Shape, ch: usize) -> f64 {
    const R: usize = 5;
    let (rows, cols, channels) = (image.h, image.w, image.c);
    let w: Vec<f64> = (0..=2 * R).map(|i| (-((i as f64 - R as f64).powi(2)) / (2.0 * 1.5f64.powi(2))).exp()).collect();
    let ws: f64 = w.iter().sum();
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    let mut count = 0;
    for cy in R..rows.saturating_sub(R) {
        for cx in R..cols.saturating_sub(R) {
            let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..=2 * R {
                for dx in 0..=2 * R {
                    let g = w[dy] * w[dx] / (ws * ws);
                    let j = ((cy + dy - R) * cols + cx + dx - R) * channels + ch;
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
        let mnist = Shape::new(28, 28, 1);
        let a: Vec<f32> = (0..784).map(|i| (i % 28) as f32 / 28.0).collect();
        assert!((ssim(&a, &a, mnist) - 1.0).abs() < 1e-9);
        let b: Vec<f32> = a.iter().enumerate().map(|(i, v)| v + if i % 3 == 0 { 0.3 } else { -0.1 }).collect();
        assert!(ssim(&a, &b, mnist) < 0.9);
        assert!((mse(&a, &b) - (0.09 + 2.0 * 0.01) / 3.0).abs() < 1e-3);
    }

    #[test]
    fn colour_ssim_is_the_mean_of_the_channel_ssims() {
        let (h, w) = (20, 17);
        let grey = Shape::new(h, w, 1);
        let plane = |seed: usize| -> Vec<f32> { (0..h * w).map(|i| ((i * seed) % 23) as f32 / 23.0).collect() };
        let (a, b): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (1..4).map(|c| (plane(c + 2), plane(c + 5))).unzip();
        let interleave =
            |p: &[Vec<f32>]| -> Vec<f32> { (0..h * w).flat_map(|i| p.iter().map(move |q| q[i])).collect() };
        let want = (0..3).map(|c| ssim(&a[c], &b[c], grey)).sum::<f64>() / 3.0;
        let got = ssim(&interleave(&a), &interleave(&b), Shape::new(h, w, 3));
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!(want < 0.99);
        // an image too small for one window scores 0 rather than panicking
        assert_eq!(ssim(&[0.5; 30], &[0.5; 30], Shape::new(10, 3, 1)), 0.0);
    }
}

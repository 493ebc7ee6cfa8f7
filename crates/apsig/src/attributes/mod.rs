//! Attributes without pixels: what the signatures alone say about the secret image.
//!
//! The attacker never sees X, only its signature (eps along K directions, plus which ones were
//! censored). This module asks how much of X's *class* and *style* a simple linear probe reads
//! straight off those numbers, without reconstructing any pixel:
//!
//! 1. The caller turns signatures into a feature matrix (the study uses ln eps and the
//!    censoring mask as +-1, `decoder::Input::signature`).
//! 2. `linalg` fits closed-form ridge regression on any feature matrix (Cholesky in f64).
//! 3. `attributes_from_signatures` fits one-vs-rest ridge on one-hot labels (class probe) and a
//!    ridge per style attribute (`measures`: ink mass, slant), and scores them on test images
//!    against the "knows the class, nothing else" baseline.
//!
//! Everything is deterministic: no random splits, and parallel sums are computed in a fixed order.

mod linalg;
mod measures;

pub use linalg::{accuracy, cholesky, cholesky_solve, fit_class_probe, fit_ridge, pearson, Ridge};
pub use measures::{ink_mass, slant, Attribute};

use crate::error::{Error, Result};
use crate::nn::Shape;
use linalg::{rows_of, Moments};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Penalties tried when `attributes_from_signatures` chooses lambda itself.
pub const LAMBDA_GRID: [f64; 7] = [1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4];

/// What a linear probe reads off the signatures of the test images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeReport {
    /// Top-1 accuracy of the one-vs-rest ridge class probe on the test images.
    pub class_accuracy: f64,
    /// Frequency of the most common test class (what always guessing it would score).
    pub class_chance: f64,
    /// Number of classes probed (largest label + 1).
    pub classes: usize,
    /// The penalty used for the class probe.
    pub class_lambda: f64,
    /// Training images the probes were fitted on.
    pub n_train: usize,
    /// Test images they were scored on.
    pub n_test: usize,
    /// One score per `Attribute`.
    pub attributes: Vec<AttributeScore>,
}

/// How well one attribute of the test images is predicted from their signatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeScore {
    /// The attribute's name.
    pub attribute: String,
    /// Correlation of the ridge prediction with the true attribute.
    pub pearson: f64,
    /// Correlation achieved by predicting each image's attribute as its true class's training
    /// mean: what knowing the class, and nothing else, would give.
    pub class_mean_pearson: f64,
    /// Correlation of (prediction - class mean) with (truth - class mean), class = true class:
    /// how much style beyond the class the signature carries.
    pub within_class_pearson: f64,
    /// The penalty used for this attribute.
    pub lambda: f64,
}

/// Signature features (row-major `[n, dim]`), images (channels-last, `image` of the probe)
/// and labels of `n` images.
#[derive(Clone, Copy, Debug)]
pub struct Examples<'a> {
    /// Features `[n, dim]`.
    pub features: &'a [f32],
    /// Images `[n, image.len()]`.
    pub images: &'a [f32],
    /// Class labels `[n]`.
    pub labels: &'a [u8],
}

/// The experiment: the adversary's own images (train) and the secrets (test), the feature
/// width, the image shape and the ridge penalty (`<= 0`: chosen per probe, see
/// `attributes_from_signatures`).
#[derive(Clone, Copy, Debug)]
pub struct AttributeProbe<'a> {
    /// The adversary's own images (the probes are fitted on them).
    pub train: Examples<'a>,
    /// The secrets (the probes are scored on them).
    pub test: Examples<'a>,
    /// Features per image.
    pub dim: usize,
    /// Shape of every image (H x W x C). The style attributes of a colour image are measured
    /// on its ink image (`eval::colour::ink`: each pixel's distance from the background colour).
    pub image: Shape,
    /// Ridge penalty (`<= 0`: chosen per probe on a hold-out).
    pub lambda: f64,
}

/// Fits ridge probes from signature features (row-major `[n, dim]`)
/// to the class and to each `Attribute` of the training images, and scores them on the test
/// images. Images are channels-last `probe.image`, one per label.
///
/// `lambda > 0` is used for every probe. `lambda <= 0` chooses it per probe from `LAMBDA_GRID`
/// on a hold-out: fit on the first 80% of the training rows, score on the last 20% (the class
/// probe by accuracy, ties broken by squared error of the one-hot outputs; each attribute by
/// squared error; ties go to the smaller lambda), then refit on all training rows. This needs at
/// least 5 training images; the split is by position, so the training rows should not be sorted
/// by class.
pub fn attributes_from_signatures(probe: &AttributeProbe) -> Result<AttributeReport> {
    let AttributeProbe { train, test, dim, image, lambda } = *probe;
    let (train_features, train_images, train_labels) = (train.features, train.images, train.labels);
    let (test_features, test_images, test_labels) = (test.features, test.images, test.labels);
    let what = "attribute study";
    let (n_train, n_test) = (train_labels.len(), test_labels.len());
    if n_train == 0 || n_test == 0 {
        return Err(Error::invalid(what, format!("{n_train} training and {n_test} test images; need some of each")));
    }
    if rows_of(train_features, dim, what)? != n_train || rows_of(test_features, dim, what)? != n_test {
        return Err(Error::invalid(
            what,
            format!(
                "{} training / {} test feature values for {n_train} / {n_test} images of dimension {dim}",
                train_features.len(),
                test_features.len()
            ),
        ));
    }
    let pixels = image.len();
    if pixels == 0 || train_images.len() != n_train * pixels || test_images.len() != n_test * pixels {
        return Err(Error::invalid(
            what,
            format!(
                "{} training / {} test values for {n_train} / {n_test} images of {}x{}x{}",
                train_images.len(),
                test_images.len(),
                image.h,
                image.w,
                image.c
            ),
        ));
    }
    if lambda.is_nan() || lambda.is_infinite() {
        return Err(Error::invalid(what, format!("lambda = {lambda}")));
    }

    let classes = train_labels.iter().chain(test_labels).map(|&l| l as usize + 1).max().unwrap_or(1);
    let attrs = Attribute::ALL;
    let measure = |images: &[f32]| -> Vec<Vec<f32>> {
        let of = |a: &Attribute, img: &[f32]| match image.c {
            1 => a.of(img, image.w),
            _ => a.of(&crate::eval::colour::ink(img, image), image.w),
        };
        attrs.iter().map(|a| images.par_chunks(pixels).map(|img| of(a, img)).collect()).collect()
    };
    let (train_truth, test_truth) = (measure(train_images), measure(test_images));

    // One multi-output problem: `classes` one-hot columns, then one column per attribute.
    let outputs = classes + attrs.len();
    let mut y = vec![0f32; n_train * outputs];
    for (i, row) in y.chunks_exact_mut(outputs).enumerate() {
        row[train_labels[i] as usize] = 1.0;
        for (a, truth) in train_truth.iter().enumerate() {
            row[classes + a] = truth[i];
        }
    }

    // Per probe (class, then each attribute): its lambda; and the statistics of all training rows.
    let (lambdas, full): (Vec<f64>, Moments) = if lambda > 0.0 {
        (vec![lambda; 1 + attrs.len()], Moments::of(train_features, dim, &y, outputs)?)
    } else {
        let n_hold = n_train / 5;
        if n_hold == 0 {
            return Err(Error::invalid(what, format!("{n_train} training images; choosing lambda needs at least 5")));
        }
        let n_fit = n_train - n_hold;
        let fit = Moments::of(&train_features[..n_fit * dim], dim, &y[..n_fit * outputs], outputs)?;
        let hold = Moments::of(&train_features[n_fit * dim..], dim, &y[n_fit * outputs..], outputs)?;
        let (hold_x, hold_y, hold_labels) =
            (&train_features[n_fit * dim..], &y[n_fit * outputs..], &train_labels[n_fit..]);
        // Best (score, lambda) per probe; scores are maximised.
        let mut best: Vec<Option<((f64, f64), f64)>> = vec![None; 1 + attrs.len()];
        for &lam in &LAMBDA_GRID {
            let Ok(ridge) = fit.solve(lam) else { continue };
            let pred = ridge.predict(hold_x)?;
            let sq_err = |cols: std::ops::Range<usize>| -> f64 {
                let mut s = 0f64;
                for (p, t) in pred.chunks_exact(outputs).zip(hold_y.chunks_exact(outputs)) {
                    for c in cols.clone() {
                        s += ((p[c] - t[c]) as f64).powi(2);
                    }
                }
                s
            };
            let predicted: Vec<usize> = pred.chunks_exact(outputs).map(|p| crate::argmax(&p[..classes])).collect();
            let mut scores = vec![(accuracy(&predicted, hold_labels), -sq_err(0..classes))];
            scores.extend((0..attrs.len()).map(|a| (-sq_err(classes + a..classes + a + 1), 0.0)));
            for (b, s) in best.iter_mut().zip(scores) {
                if b.is_none_or(|(bs, _)| s > bs) {
                    *b = Some((s, lam));
                }
            }
        }
        let chosen = best.into_iter().map(|b| b.map(|(_, lam)| lam)).collect::<Option<Vec<f64>>>();
        let chosen = chosen.ok_or_else(|| {
            Error::invalid(what, "no lambda of the grid gave a solvable ridge problem on the hold-out")
        })?;
        (chosen, fit.add(&hold))
    };

    // Test predictions, solving once per distinct lambda.
    let mut test_pred: Vec<Option<Vec<f32>>> = vec![None; lambdas.len()];
    for p in 0..lambdas.len() {
        if test_pred[p].is_none() {
            let pred = full.solve(lambdas[p])?.predict(test_features)?;
            for q in p..lambdas.len() {
                if lambdas[q] == lambdas[p] {
                    test_pred[q] = Some(pred.clone());
                }
            }
        }
    }
    let test_pred: Vec<Vec<f32>> = test_pred.into_iter().flatten().collect();

    let predicted: Vec<usize> = test_pred[0].chunks_exact(outputs).map(|p| crate::argmax(&p[..classes])).collect();
    let mut counts = vec![0usize; classes];
    for &l in test_labels {
        counts[l as usize] += 1;
    }
    let class_chance = counts.iter().copied().max().unwrap_or(0) as f64 / n_test as f64;

    let attributes = attrs
        .iter()
        .enumerate()
        .map(|(a, attr)| {
            let means = class_means(&train_truth[a], train_labels, classes);
            let truth = &test_truth[a];
            let pred: Vec<f32> = test_pred[1 + a].chunks_exact(outputs).map(|p| p[classes + a]).collect();
            let baseline: Vec<f32> = test_labels.iter().map(|&l| means[l as usize]).collect();
            let residual = |v: &[f32]| -> Vec<f32> { v.iter().zip(&baseline).map(|(x, m)| x - m).collect() };
            AttributeScore {
                attribute: attr.name().to_string(),
                pearson: pearson(&pred, truth),
                class_mean_pearson: pearson(&baseline, truth),
                within_class_pearson: pearson(&residual(&pred), &residual(truth)),
                lambda: lambdas[1 + a],
            }
        })
        .collect();

    Ok(AttributeReport {
        class_accuracy: accuracy(&predicted, test_labels),
        class_chance,
        classes,
        class_lambda: lambdas[0],
        n_train,
        n_test,
        attributes,
    })
}

/// Training mean of `values` per class; a class without training images gets the overall mean.
fn class_means(values: &[f32], labels: &[u8], classes: usize) -> Vec<f32> {
    let (mut sum, mut count) = (vec![0f64; classes], vec![0usize; classes]);
    for (&v, &l) in values.iter().zip(labels) {
        sum[l as usize] += v as f64;
        count[l as usize] += 1;
    }
    let overall = values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
    sum.iter().zip(&count).map(|(&s, &c)| if c > 0 { s / c as f64 } else { overall } as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use measures::tests::SIDE;

    /// Images of sheared lines with random slant and ink, labels by class blob, and features that
    /// hold the two attributes linearly (mixed with the class and noise).
    fn synthetic(rng: &mut Rng, n: usize, centres: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>, Vec<u8>, usize) {
        let dim = centres[0].len() + 5;
        let (mut feats, mut images, mut labels) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let l = rng.below(centres.len());
            let s = rng.uniform() - 0.5;
            let ink = 0.3 + 0.7 * rng.uniform();
            let img = measures::sheared_line(s, ink, 4, 24, 13.0);
            let (m, sl) = (ink_mass(&img), slant(&img, SIDE));
            feats.extend(centres[l].iter().map(|c| c + 0.3 * rng.normal()));
            feats.extend([100.0 * m + 0.2 * sl, sl - 50.0 * m, rng.normal(), rng.normal(), 1.0]);
            images.extend(img);
            labels.push(l as u8);
        }
        (feats, images, labels, dim)
    }

    #[test]
    fn attributes_from_signatures_recovers_linear_attributes() {
        let mut rng = Rng::new(3);
        let centres: Vec<Vec<f32>> = (0..3).map(|_| (0..4).map(|_| 2.0 * rng.normal()).collect()).collect();
        let (train_x, train_img, train_y, dim) = synthetic(&mut rng, 300, &centres);
        let (test_x, test_img, test_y, _) = synthetic(&mut rng, 150, &centres);
        for lambda in [1e-3, 0.0] {
            let r = attributes_from_signatures(&AttributeProbe {
                train: Examples { features: &train_x, images: &train_img, labels: &train_y },
                test: Examples { features: &test_x, images: &test_img, labels: &test_y },
                dim,
                image: Shape::new(SIDE, SIDE, 1),
                lambda,
            })
            .unwrap();
            assert!(r.class_accuracy > 0.95, "{r:?}");
            assert!(r.class_chance > 0.2 && r.class_chance < 0.6, "{r:?}");
            assert_eq!((r.classes, r.n_train, r.n_test), (3, 300, 150));
            assert_eq!(r.attributes.len(), 2);
            for a in &r.attributes {
                assert!(a.pearson > 0.95, "{a:?}");
                assert!(a.within_class_pearson > 0.95, "{a:?}");
                // The attributes do not depend on the class here.
                assert!(a.class_mean_pearson.abs() < 0.5, "{a:?}");
            }
            if lambda > 0.0 {
                assert!(r.attributes.iter().all(|a| a.lambda == lambda) && r.class_lambda == lambda);
            } else {
                assert!(LAMBDA_GRID.contains(&r.class_lambda));
            }
            serde_json::to_string(&r).unwrap();
        }
    }

    #[test]
    fn attributes_from_signatures_rejects_bad_sizes() {
        let img = vec![0.5f32; 4 * 4];
        let x = vec![1f32; 4 * 3];
        let y = [0u8, 1, 0, 1];
        let probe = |train: Examples<'_>, test: Examples<'_>, dim, side, lambda| {
            attributes_from_signatures(&AttributeProbe { train, test, dim, image: Shape::new(side, side, 1), lambda })
        };
        let test = Examples { features: &x[..3], images: &img[..4], labels: &y[..1] };
        let run = |tx: &[f32], dim, ti: &[f32], side, lam| {
            probe(Examples { features: tx, images: ti, labels: &y }, test, dim, side, lam)
        };
        assert!(run(&x, 3, &img, 2, 1.0).is_ok());
        assert!(run(&x[..11], 3, &img, 2, 1.0).is_err());
        assert!(run(&x, 4, &img, 2, 1.0).is_err());
        assert!(run(&x, 3, &img[..15], 2, 1.0).is_err());
        assert!(run(&x, 3, &img, 0, 1.0).is_err());
        assert!(run(&x, 3, &img, 2, f64::NAN).is_err());
        // Choosing lambda needs at least 5 training images.
        assert!(run(&x, 3, &img, 2, 0.0).is_err());
        let empty = Examples { features: &[], images: &[], labels: &[] };
        assert!(probe(Examples { features: &x, images: &img, labels: &y }, empty, 3, 2, 1.0).is_err());
    }
}

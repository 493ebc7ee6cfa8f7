//! Attributes without pixels: what the signatures alone say about the secret image.
//!
//! The attacker never sees X, only its signature (eps along K directions, plus which ones were
//! censored). This module asks how much of X's *class* and *style* a simple linear probe reads
//! straight off those numbers, without reconstructing any pixel:
//!
//! 1. The caller turns signatures into a feature matrix (the study uses ln eps and the
//!    censoring mask as +-1, `study::features::signature`).
//! 2. `fit_ridge` fits closed-form ridge regression on any feature matrix (Cholesky in f64).
//! 3. `attributes_from_signatures` fits one-vs-rest ridge on one-hot labels (class probe) and a
//!    ridge per style attribute (`Attribute`: ink mass, slant), and scores them on test images
//!    against the "knows the class, nothing else" baseline.
//!
//! Everything is deterministic: no random splits, and parallel sums are computed in a fixed order.

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Attributes of one image
// ---------------------------------------------------------------------------------------------

/// Mean intensity of the image: a proxy for stroke thickness (0 for an empty slice).
pub fn ink_mass(img: &[f32]) -> f32 {
    if img.is_empty() {
        return 0.0;
    }
    (img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64) as f32
}

/// Slant of the image (row-major, `side` pixels per row) from the second central moments of its
/// intensity distribution: the horizontal shear per row, `mu11 / mu02`, the usual deskew measure.
///
/// Sign convention: measured with the vertical axis pointing *up* (row index grows downward, so
/// this is `-mu11_rows / mu02` in row coordinates). Positive means the top leans right, like `/`;
/// a value of `s` means the stroke moves `s` columns to the right per row upward. An upright
/// stroke gives 0; an empty image, or one whose ink lies in a single row (`mu02 = 0`), gives 0.
/// A trailing partial row (when `img.len()` is not a multiple of `side`) is ignored.
pub fn slant(img: &[f32], side: usize) -> f32 {
    if side == 0 {
        return 0.0;
    }
    let rows = img.len() / side;
    let (mut m, mut sr, mut sc) = (0f64, 0f64, 0f64);
    for r in 0..rows {
        for c in 0..side {
            let w = img[r * side + c] as f64;
            m += w;
            sr += w * r as f64;
            sc += w * c as f64;
        }
    }
    if m <= 0.0 {
        return 0.0;
    }
    let (rbar, cbar) = (sr / m, sc / m);
    let (mut mu11, mut mu02) = (0f64, 0f64);
    for r in 0..rows {
        let dr = r as f64 - rbar;
        for c in 0..side {
            let w = img[r * side + c] as f64;
            mu11 += w * (c as f64 - cbar) * dr;
            mu02 += w * dr * dr;
        }
    }
    if mu02 <= 1e-12 * m {
        return 0.0;
    }
    (-mu11 / mu02) as f32
}

/// A style attribute of an image that the probe tries to predict from the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Attribute {
    /// `ink_mass`: mean intensity.
    InkMass,
    /// `slant`: horizontal shear per row, positive = top leans right.
    Slant,
}

impl Attribute {
    pub const ALL: [Attribute; 2] = [Attribute::InkMass, Attribute::Slant];

    pub fn name(self) -> &'static str {
        match self {
            Attribute::InkMass => "ink_mass",
            Attribute::Slant => "slant",
        }
    }

    /// The attribute of one row-major image of width `side`.
    pub fn of(self, img: &[f32], side: usize) -> f32 {
        match self {
            Attribute::InkMass => ink_mass(img),
            Attribute::Slant => slant(img, side),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ridge regression
// ---------------------------------------------------------------------------------------------

/// A fitted linear map `y = x W + bias` from `dim` features to `outputs` values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ridge {
    /// `[dim, outputs]` row-major weights.
    pub w: Vec<f64>,
    /// `[outputs]` intercepts (fitted without penalty).
    pub bias: Vec<f64>,
    pub dim: usize,
    pub outputs: usize,
    /// The penalty it was fitted with.
    pub lambda: f64,
}

impl Ridge {
    /// Row-major `[n, outputs]` predictions for row-major `[n, dim]` features.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<f32>> {
        let n = rows_of(x, self.dim, "ridge features")?;
        if self.outputs == 0 || self.w.len() != self.dim * self.outputs || self.bias.len() != self.outputs {
            return Err(Error::invalid(
                "ridge",
                format!(
                    "{} weights and {} biases for {} x {} outputs",
                    self.w.len(),
                    self.bias.len(),
                    self.dim,
                    self.outputs
                ),
            ));
        }
        let mut out = vec![0f32; n * self.outputs];
        out.par_chunks_mut(self.outputs).zip(x.par_chunks(self.dim)).for_each(|(o, xr)| {
            let mut acc = self.bias.clone();
            for (&xi, wr) in xr.iter().zip(self.w.chunks_exact(self.outputs)) {
                for (a, &wv) in acc.iter_mut().zip(wr) {
                    *a += xi as f64 * wv;
                }
            }
            for (o, a) in o.iter_mut().zip(acc) {
                *o = a as f32;
            }
        });
        Ok(out)
    }

    /// For a class probe: the output with the largest prediction, per row.
    pub fn predict_class(&self, x: &[f32]) -> Result<Vec<usize>> {
        Ok(self.predict(x)?.chunks(self.outputs.max(1)).map(crate::argmax).collect())
    }
}

/// Closed-form ridge regression: minimises `|X W + 1 b - Y|^2 + lambda |W|^2` for row-major
/// `x` `[n, dim]` and `y` `[n, outputs]`, i.e. solves `(Xc^T Xc + lambda I) W = Xc^T Yc` by
/// Cholesky in f64, where `Xc`, `Yc` are centred by their column means.
///
/// The intercept `b` is fitted separately from the means and is not penalised, so a constant
/// feature column is redundant: it centres to zero and
/// gets weight 0. `lambda` must be positive unless the centred features have full rank.
pub fn fit_ridge(x: &[f32], dim: usize, y: &[f32], outputs: usize, lambda: f64) -> Result<Ridge> {
    Moments::of(x, dim, y, outputs)?.solve(lambda)
}

/// One-vs-rest ridge on one-hot targets (1 for the class, 0 otherwise): a linear class probe.
/// Predict with `Ridge::predict_class`. Labels must be below `classes`.
pub fn fit_class_probe(x: &[f32], dim: usize, labels: &[u8], classes: usize, lambda: f64) -> Result<Ridge> {
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::invalid("class probe", format!("label {l} but only {classes} classes")));
    }
    fit_ridge(x, dim, &one_hot(labels, classes), classes, lambda)
}

/// Fraction of `predicted` equal to `labels` (0 for none).
pub fn accuracy(predicted: &[usize], labels: &[u8]) -> f64 {
    let hits = predicted.iter().zip(labels).filter(|(p, l)| **p == **l as usize).count();
    hits as f64 / labels.len().max(1) as f64
}

fn one_hot(labels: &[u8], classes: usize) -> Vec<f32> {
    let mut y = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        if (l as usize) < classes {
            y[i * classes + l as usize] = 1.0;
        }
    }
    y
}

/// Number of rows of a row-major matrix with `dim` columns, refusing ragged or empty shapes.
fn rows_of(x: &[f32], dim: usize, what: &str) -> Result<usize> {
    if dim == 0 {
        return Err(Error::invalid(what, "dimension must be at least 1"));
    }
    if !x.len().is_multiple_of(dim) {
        return Err(Error::invalid(what, format!("{} values is not a multiple of dimension {dim}", x.len())));
    }
    Ok(x.len() / dim)
}

/// Sufficient statistics of a least-squares problem (sums over rows), so that the Gram matrix is
/// computed once and then solved for several lambdas, and two row ranges can be added up.
#[derive(Clone, Debug)]
struct Moments {
    n: usize,
    dim: usize,
    outputs: usize,
    /// `[dim]` sum of x.
    sx: Vec<f64>,
    /// `[outputs]` sum of y.
    sy: Vec<f64>,
    /// `[dim, dim]` sum of x x^T.
    sxx: Vec<f64>,
    /// `[dim, outputs]` sum of x y^T.
    sxy: Vec<f64>,
}

impl Moments {
    fn of(x: &[f32], dim: usize, y: &[f32], outputs: usize) -> Result<Moments> {
        let n = rows_of(x, dim, "ridge features")?;
        let ny = rows_of(y, outputs, "ridge targets")?;
        if n != ny {
            return Err(Error::invalid("ridge", format!("{n} feature rows but {ny} target rows")));
        }
        if n == 0 {
            return Err(Error::invalid("ridge", "no rows to fit on"));
        }
        if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
            return Err(Error::invalid("ridge", format!("non-finite value at index {i} of the features/targets")));
        }
        // Column-major f64 copies, so that every Gram entry is one contiguous dot product.
        let columns = |m: &[f32], d: usize| {
            let mut c = vec![0f64; d * n];
            for (r, row) in m.chunks_exact(d).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    c[j * n + r] = v as f64;
                }
            }
            c
        };
        let (xc, yc) = (columns(x, dim), columns(y, outputs));
        let xcol = |j: usize| &xc[j * n..(j + 1) * n];
        let ycol = |j: usize| &yc[j * n..(j + 1) * n];
        let upper: Vec<Vec<f64>> =
            (0..dim).into_par_iter().map(|i| (i..dim).map(|j| dot(xcol(i), xcol(j))).collect()).collect();
        let mut sxx = vec![0f64; dim * dim];
        for (i, row) in upper.iter().enumerate() {
            for (d, &v) in row.iter().enumerate() {
                sxx[i * dim + i + d] = v;
                sxx[(i + d) * dim + i] = v;
            }
        }
        let sxy: Vec<f64> =
            (0..dim * outputs).into_par_iter().map(|ij| dot(xcol(ij / outputs), ycol(ij % outputs))).collect();
        Ok(Moments {
            n,
            dim,
            outputs,
            sx: (0..dim).map(|j| xcol(j).iter().sum()).collect(),
            sy: (0..outputs).map(|j| ycol(j).iter().sum()).collect(),
            sxx,
            sxy,
        })
    }

    /// The statistics of both row sets together.
    fn add(&self, other: &Moments) -> Moments {
        let sum = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect();
        Moments {
            n: self.n + other.n,
            dim: self.dim,
            outputs: self.outputs,
            sx: sum(&self.sx, &other.sx),
            sy: sum(&self.sy, &other.sy),
            sxx: sum(&self.sxx, &other.sxx),
            sxy: sum(&self.sxy, &other.sxy),
        }
    }

    fn solve(&self, lambda: f64) -> Result<Ridge> {
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(Error::invalid("ridge", format!("lambda = {lambda} must be a non-negative number")));
        }
        let (d, o, n) = (self.dim, self.outputs, self.n as f64);
        let mx: Vec<f64> = self.sx.iter().map(|s| s / n).collect();
        let my: Vec<f64> = self.sy.iter().map(|s| s / n).collect();
        // Centred normal equations: sum (x - mx)(x - mx)^T = sxx - n mx mx^T, likewise for xy.
        let mut a = vec![0f64; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = self.sxx[i * d + j] - n * mx[i] * mx[j];
            }
            a[i * d + i] += lambda;
        }
        let mut b = vec![0f64; d * o];
        for i in 0..d {
            for j in 0..o {
                b[i * o + j] = self.sxy[i * o + j] - n * mx[i] * my[j];
            }
        }
        let w = cholesky_solve(&a, d, &b, o)
            .map_err(|e| Error::invalid("ridge", format!("{e} (lambda = {lambda}); raise lambda")))?;
        let bias = (0..o).map(|j| my[j] - (0..d).map(|i| mx[i] * w[i * o + j]).sum::<f64>()).collect();
        Ok(Ridge { w, bias, dim: d, outputs: o, lambda })
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators, so that the loop vectorises; the order is fixed, so results are too.
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Solves `A X = B` for a symmetric positive definite `A` (`[m, m]`, row-major; only the lower
/// triangle is read) and `B` `[m, r]`, by Cholesky factorisation `A = L L^T`. Returns `X`
/// `[m, r]`, or an error naming the pivot where `A` turned out not to be positive definite.
pub fn cholesky_solve(a: &[f64], m: usize, b: &[f64], r: usize) -> Result<Vec<f64>> {
    if a.len() != m * m || b.len() != m * r {
        return Err(Error::invalid(
            "cholesky",
            format!("A has {} values and B {} for m = {m}, r = {r}", a.len(), b.len()),
        ));
    }
    let mut l = vec![0f64; m * m];
    for j in 0..m {
        let d = a[j * m + j] - dot(&l[j * m..j * m + j], &l[j * m..j * m + j]);
        if !(d > 0.0 && d.is_finite()) {
            return Err(Error::invalid("cholesky", format!("the matrix is not positive definite at pivot {j}")));
        }
        let djj = d.sqrt();
        l[j * m + j] = djj;
        // Column j below the diagonal; rows are independent.
        let (head, tail) = l.split_at_mut((j + 1) * m);
        let lj = &head[j * m..j * m + j];
        tail.par_chunks_mut(m).enumerate().for_each(|(t, li)| {
            let i = j + 1 + t;
            li[j] = (a[i * m + j] - dot(&li[..j], lj)) / djj;
        });
    }
    // L z = b, then L^T x = z, for all r right-hand sides at once.
    let mut x = b.to_vec();
    for i in 0..m {
        for k in 0..i {
            let lik = l[i * m + k];
            if lik != 0.0 {
                for c in 0..r {
                    x[i * r + c] -= lik * x[k * r + c];
                }
            }
        }
        for c in 0..r {
            x[i * r + c] /= l[i * m + i];
        }
    }
    for i in (0..m).rev() {
        for k in i + 1..m {
            let lki = l[k * m + i];
            if lki != 0.0 {
                for c in 0..r {
                    x[i * r + c] -= lki * x[k * r + c];
                }
            }
        }
        for c in 0..r {
            x[i * r + c] /= l[i * m + i];
        }
    }
    Ok(x)
}

/// Pearson correlation of two equally long series; 0 when either is constant (or shorter than 2),
/// where no linear relation can be measured. Only the common prefix is used if lengths differ.
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len(), "pearson of series of different lengths");
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let ma = a[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let mb = b[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return 0.0;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// The study: class and attributes from signatures
// ---------------------------------------------------------------------------------------------

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
    pub n_train: usize,
    pub n_test: usize,
    pub attributes: Vec<AttributeScore>,
}

/// How well one attribute of the test images is predicted from their signatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeScore {
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

/// Fits ridge probes from signature features (row-major `[n, dim]`)
/// to the class and to each `Attribute` of the training images, and scores them on the test
/// images. Images are row-major `side x side`, one per label.
///
/// `lambda > 0` is used for every probe. `lambda <= 0` chooses it per probe from `LAMBDA_GRID`
/// on a hold-out: fit on the first 80% of the training rows, score on the last 20% (the class
/// probe by accuracy, ties broken by squared error of the one-hot outputs; each attribute by
/// squared error; ties go to the smaller lambda), then refit on all training rows. This needs at
/// least 5 training images; the split is by position, so the training rows should not be sorted
/// by class.
#[allow(clippy::too_many_arguments)]
pub fn attributes_from_signatures(
    train_features: &[f32],
    test_features: &[f32],
    dim: usize,
    train_images: &[f32],
    train_labels: &[u8],
    test_images: &[f32],
    test_labels: &[u8],
    side: usize,
    lambda: f64,
) -> Result<AttributeReport> {
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
    let pixels = side * side;
    if side == 0 || train_images.len() != n_train * pixels || test_images.len() != n_test * pixels {
        return Err(Error::invalid(
            what,
            format!(
                "{} training / {} test pixels for {n_train} / {n_test} images of side {side}",
                train_images.len(),
                test_images.len()
            ),
        ));
    }
    if lambda.is_nan() || lambda.is_infinite() {
        return Err(Error::invalid(what, format!("lambda = {lambda}")));
    }

    let classes = train_labels.iter().chain(test_labels).map(|&l| l as usize + 1).max().unwrap_or(1);
    let attrs = Attribute::ALL;
    let measure = |images: &[f32]| -> Vec<Vec<f32>> {
        attrs.iter().map(|a| images.par_chunks(pixels).map(|img| a.of(img, side)).collect()).collect()
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

    const SIDE: usize = 28;

    /// An antialiased one-pixel line through rows `top..bottom` whose column is `c0 + s * (bottom - r)`
    /// (so it moves `s` columns right per row upward), each row's ink split between the two nearest
    /// columns so that its centroid is exact; scaled by `ink`.
    fn sheared_line(s: f32, ink: f32, top: usize, bottom: usize, c0: f32) -> Vec<f32> {
        let mut img = vec![0f32; SIDE * SIDE];
        for r in top..bottom {
            let x = c0 + s * (bottom - 1 - r) as f32;
            let (c, f) = (x.floor() as usize, x - x.floor());
            img[r * SIDE + c] += ink * (1.0 - f);
            img[r * SIDE + c + 1] += ink * f;
        }
        img
    }

    #[test]
    fn ink_mass_is_mean_intensity() {
        let mut img = vec![0f32; 16];
        img[3] = 1.0;
        img[7] = 0.5;
        assert!((ink_mass(&img) - 1.5 / 16.0).abs() < 1e-7);
        assert_eq!(ink_mass(&[]), 0.0);
        assert_eq!(Attribute::InkMass.of(&img, 4), ink_mass(&img));
        assert_eq!(Attribute::InkMass.name(), "ink_mass");
        assert_eq!(Attribute::Slant.name(), "slant");
    }

    #[test]
    fn slant_of_upright_bar_is_zero() {
        let mut img = vec![0f32; SIDE * SIDE];
        for r in 4..24 {
            for c in 12..15 {
                img[r * SIDE + c] = 0.8;
            }
        }
        assert!(slant(&img, SIDE).abs() < 1e-6);
        assert!(sheared_line(0.0, 1.0, 3, 25, 13.0).iter().any(|&v| v > 0.0));
        assert!(slant(&sheared_line(0.0, 1.0, 3, 25, 13.0), SIDE).abs() < 1e-6);
    }

    #[test]
    fn slant_of_sheared_bar_has_sign_and_magnitude() {
        // Top leans right (like `/`): positive, half a column per row.
        let right = sheared_line(0.5, 1.0, 4, 24, 8.0);
        assert!((slant(&right, SIDE) - 0.5).abs() < 1e-4, "{}", slant(&right, SIDE));
        // Mirrored (like `\`): negative.
        let left = sheared_line(-0.5, 1.0, 4, 24, 18.0);
        assert!((slant(&left, SIDE) + 0.5).abs() < 1e-4, "{}", slant(&left, SIDE));
        // Intensity scale does not change the slant; a steeper shear gives a larger one.
        assert!((slant(&sheared_line(0.5, 0.3, 4, 24, 8.0), SIDE) - 0.5).abs() < 1e-4);
        assert!((Attribute::Slant.of(&sheared_line(1.0, 1.0, 4, 24, 2.0), SIDE) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn slant_of_empty_and_flat_images_is_zero() {
        assert_eq!(slant(&vec![0f32; SIDE * SIDE], SIDE), 0.0);
        let mut row = vec![0f32; SIDE * SIDE];
        row[10 * SIDE..11 * SIDE].fill(1.0);
        assert_eq!(slant(&row, SIDE), 0.0);
        assert_eq!(slant(&row, 0), 0.0);
    }

    #[test]
    fn cholesky_solves_known_spd_system() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let x_true = [1.0, -2.0, 0.5, 3.0, 0.25, -1.0]; // [3, 2]
        let mut b = vec![0f64; 6];
        for i in 0..3 {
            for c in 0..2 {
                b[i * 2 + c] = (0..3).map(|k| a[i * 3 + k] * x_true[k * 2 + c]).sum();
            }
        }
        let x = cholesky_solve(&a, 3, &b, 2).unwrap();
        for (x, t) in x.iter().zip(x_true) {
            assert!((x - t).abs() < 1e-12, "{x} vs {t}");
        }
        assert!(cholesky_solve(&[1.0, 2.0, 2.0, 1.0], 2, &[1.0, 1.0], 1).is_err());
        assert!(cholesky_solve(&a, 3, &b, 3).is_err());
    }

    #[test]
    fn ridge_recovers_linear_weights() {
        let mut rng = Rng::new(1);
        let (n, dim, outputs) = (200, 5, 2);
        let w_true = [0.5, -1.0, 2.0, 0.0, 0.3, 1.5, -0.7, 0.2, 1.0, -2.0];
        let bias_true = [0.25, -3.0];
        let x: Vec<f32> = (0..n * dim).map(|_| rng.normal()).collect();
        let mut y = vec![0f32; n * outputs];
        for r in 0..n {
            for o in 0..outputs {
                y[r * outputs + o] =
                    bias_true[o] + (0..dim).map(|i| x[r * dim + i] * w_true[i * outputs + o]).sum::<f32>();
            }
        }
        let ridge = fit_ridge(&x, dim, &y, outputs, 1e-6).unwrap();
        for (w, t) in ridge.w.iter().zip(w_true) {
            assert!((w - t as f64).abs() < 1e-3, "{w} vs {t}");
        }
        for (b, t) in ridge.bias.iter().zip(bias_true) {
            assert!((b - t as f64).abs() < 1e-3, "{b} vs {t}");
        }
        let pred = ridge.predict(&x).unwrap();
        assert!(pred.iter().zip(&y).all(|(p, t)| (p - t).abs() < 1e-3));
    }

    #[test]
    fn ridge_leaves_the_constant_column_unpenalised() {
        // y = 10 everywhere: a huge lambda must still fit it through the intercept.
        let x: Vec<f32> = (0..40).flat_map(|i| [i as f32 / 10.0, 1.0]).collect();
        let y = vec![10f32; 40];
        let ridge = fit_ridge(&x, 2, &y, 1, 1e6).unwrap();
        assert!(ridge.predict(&x).unwrap().iter().all(|p| (p - 10.0).abs() < 1e-4));
    }

    #[test]
    fn ridge_rejects_bad_sizes() {
        assert!(fit_ridge(&[1.0; 7], 2, &[1.0; 3], 1, 1.0).is_err());
        assert!(fit_ridge(&[1.0; 6], 2, &[1.0; 4], 1, 1.0).is_err());
        assert!(fit_ridge(&[1.0; 6], 0, &[1.0; 3], 1, 1.0).is_err());
        assert!(fit_ridge(&[], 2, &[], 1, 1.0).is_err());
        assert!(fit_ridge(&[1.0; 6], 2, &[1.0; 3], 1, -1.0).is_err());
        assert!(fit_ridge(&[f32::NAN; 6], 2, &[1.0; 3], 1, 1.0).is_err());
        let ridge = fit_ridge(&[0.0, 1.0, 1.0, 0.0, 1.0, 1.0], 2, &[1.0, 2.0, 3.0], 1, 1.0).unwrap();
        assert!(ridge.predict(&[1.0; 3]).is_err());
        assert!(fit_class_probe(&[1.0; 6], 2, &[0, 1, 3], 3, 1.0).is_err());
    }

    /// `n` points of `classes` Gaussian blobs in `dim - 1` dimensions, plus a constant 1.
    fn blobs(rng: &mut Rng, n: usize, dim: usize, centres: &[Vec<f32>]) -> (Vec<f32>, Vec<u8>) {
        let (mut x, mut labels) = (vec![], vec![]);
        for _ in 0..n {
            let l = rng.below(centres.len());
            labels.push(l as u8);
            x.extend((0..dim - 1).map(|i| centres[l][i] + 0.3 * rng.normal()));
            x.push(1.0);
        }
        (x, labels)
    }

    #[test]
    fn class_probe_separates_linear_classes() {
        let mut rng = Rng::new(2);
        let (dim, classes) = (8, 4);
        let centres: Vec<Vec<f32>> = (0..classes).map(|_| (0..dim - 1).map(|_| 2.0 * rng.normal()).collect()).collect();
        let (train_x, train_y) = blobs(&mut rng, 400, dim, &centres);
        let (test_x, test_y) = blobs(&mut rng, 200, dim, &centres);
        let probe = fit_class_probe(&train_x, dim, &train_y, classes, 1e-2).unwrap();
        let acc = accuracy(&probe.predict_class(&test_x).unwrap(), &test_y);
        assert!(acc > 0.95, "accuracy {acc}");
    }

    #[test]
    fn pearson_of_self_and_negation() {
        let a: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 - 3.0).collect();
        let neg: Vec<f32> = a.iter().map(|v| -2.0 * v + 1.0).collect();
        assert!((pearson(&a, &a) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &neg) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&a, &[4.0; 50]), 0.0);
        assert_eq!(pearson(&[1.0], &[2.0]), 0.0);
    }

    /// Images of sheared lines with random slant and ink, labels by class blob, and features that
    /// hold the two attributes linearly (mixed with the class and noise).
    fn synthetic(rng: &mut Rng, n: usize, centres: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>, Vec<u8>, usize) {
        let dim = centres[0].len() + 5;
        let (mut feats, mut images, mut labels) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let l = rng.below(centres.len());
            let s = rng.uniform() - 0.5;
            let ink = 0.3 + 0.7 * rng.uniform();
            let img = sheared_line(s, ink, 4, 24, 13.0);
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
            let r = attributes_from_signatures(
                &train_x, &test_x, dim, &train_img, &train_y, &test_img, &test_y, SIDE, lambda,
            )
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
        let run = |tx: &[f32], dim, ti: &[f32], side, lam| {
            attributes_from_signatures(tx, &x[..3], dim, ti, &y, &img[..4], &y[..1], side, lam)
        };
        assert!(run(&x, 3, &img, 2, 1.0).is_ok());
        assert!(run(&x[..11], 3, &img, 2, 1.0).is_err());
        assert!(run(&x, 4, &img, 2, 1.0).is_err());
        assert!(run(&x, 3, &img[..15], 2, 1.0).is_err());
        assert!(run(&x, 3, &img, 0, 1.0).is_err());
        assert!(run(&x, 3, &img, 2, f64::NAN).is_err());
        // Choosing lambda needs at least 5 training images.
        assert!(run(&x, 3, &img, 2, 0.0).is_err());
        assert!(attributes_from_signatures(&x, &[], 3, &img, &y, &[], &[], 2, 1.0).is_err());
    }
}

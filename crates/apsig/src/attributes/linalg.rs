//! The linear algebra of the probes: closed-form ridge regression (Cholesky in f64), the
//! class probe built on it, and Pearson correlation.

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;

/// A fitted linear map `y = x W + bias` from `dim` features to `outputs` values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ridge {
    /// `[dim, outputs]` row-major weights.
    pub w: Vec<f64>,
    /// `[outputs]` intercepts (fitted without penalty).
    pub bias: Vec<f64>,
    /// Features per row.
    pub dim: usize,
    /// Values predicted per row.
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
pub(super) fn rows_of(x: &[f32], dim: usize, what: &str) -> Result<usize> {
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
pub(super) struct Moments {
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
    pub(super) fn of(x: &[f32], dim: usize, y: &[f32], outputs: usize) -> Result<Moments> {
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
    pub(super) fn add(&self, other: &Moments) -> Moments {
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

    pub(super) fn solve(&self, lambda: f64) -> Result<Ridge> {
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

/// The Cholesky factor `L` (`[m, m]`, row-major, lower triangular) of a symmetric positive
/// definite `A = L L^T` (only the lower triangle of `A` is read), or an error naming the pivot
/// where `A` turned out not to be positive definite.
pub fn cholesky(a: &[f64], m: usize) -> Result<Vec<f64>> {
    if a.len() != m * m {
        return Err(Error::invalid("cholesky", format!("A has {} values for m = {m}", a.len())));
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
    Ok(l)
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
    let l = cholesky(a, m)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

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
}

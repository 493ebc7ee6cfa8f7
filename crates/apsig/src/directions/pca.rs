//! `principal`: the top-K principal components of the adversary's training images.
//!
//! The covariance of an evenly strided subsample is one GEMM; its full eigendecomposition is
//! Householder tridiagonalisation followed by the implicit QL algorithm (the classic `tred2`
//! and `tql2`, as in EISPACK and JAMA) in f64. Computing every eigenvector whatever K is
//! costs a second or two at 784 pixels and makes the first k components of K exactly the
//! components for k.

use crate::error::{Error, Result};
use crate::kernels::{matmul, Threads, Trans};
use crate::rng::Rng;

/// At most this many training images enter the covariance (evenly strided).
pub const MAX_IMAGES: usize = 10_000;

/// Top-`k` eigenvectors of the pixel covariance, sorted by eigenvalue, each with its sign
/// made canonical (largest-magnitude entry positive) and then flipped by a seeded coin.
pub(super) fn principal(k: usize, seed: u64, len: usize, images: &[f32], n: usize) -> Result<Vec<f32>> {
    if k > len {
        return Err(Error::invalid(
            "directions",
            format!("strategy `principal`: K = {k} components of {len}-pixel images (K must be <= {len})"),
        ));
    }
    if n < 2 {
        return Err(Error::invalid("directions", "strategy `principal` needs at least two training images"));
    }
    let cov = covariance(len, images, n);
    let trace: f64 = (0..len).map(|i| cov[i * len + i]).sum();
    if trace.is_nan() || trace <= 0.0 {
        return Err(Error::invalid("directions", "strategy `principal`: the training images have no variance"));
    }
    let (values, vectors) = symmetric_eigen(cov, len)?;
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut signs = Rng::derive(seed, "directions/principal-signs");
    let mut data = Vec::with_capacity(k * len);
    for &j in &order[..k] {
        let v = &vectors[j * len..(j + 1) * len];
        let big = (0..len).fold(0, |b, i| if v[i].abs() > v[b].abs() { i } else { b });
        let coin = if signs.next_u64() >> 63 == 0 { 1.0 } else { -1.0 };
        let sign = if v[big] < 0.0 { -coin } else { coin };
        let unit = super::unit_f32(&v.iter().map(|x| sign * x).collect::<Vec<f64>>())
            .ok_or_else(|| Error::invalid("directions", "strategy `principal`: degenerate eigenvector"))?;
        data.extend(unit);
    }
    Ok(data)
}

/// Sample covariance (`len x len`, f64) of at most `MAX_IMAGES` evenly strided images.
fn covariance(len: usize, images: &[f32], n: usize) -> Vec<f64> {
    let m = n.min(MAX_IMAGES);
    let rows: Vec<&[f32]> = (0..m).map(|r| r * n / m).map(|i| &images[i * len..(i + 1) * len]).collect();
    let mut mean = vec![0.0f64; len];
    for row in &rows {
        for (a, v) in mean.iter_mut().zip(*row) {
            *a += *v as f64;
        }
    }
    mean.iter_mut().for_each(|a| *a /= m as f64);
    let mut x = Vec::with_capacity(m * len);
    for row in &rows {
        x.extend(row.iter().zip(&mean).map(|(v, mu)| (*v as f64 - mu) as f32));
    }
    let mut c = vec![0.0f32; len * len];
    matmul(len, len, m, &x, Trans::Yes, &x, Trans::No, &mut c, false, Threads::All);
    let scale = 1.0 / (m - 1) as f64;
    let mut cov = vec![0.0f64; len * len];
    for i in 0..len {
        for j in 0..len {
            // symmetrise: the two halves of an f32 GEMM may round differently
            cov[i * len + j] = 0.5 * (c[i * len + j] as f64 + c[j * len + i] as f64) * scale;
        }
    }
    cov
}

/// Eigenvalues and eigenvectors of the symmetric `n x n` matrix `a` (row-major): returns
/// `(values, vectors)` with eigenvector `j` in row `j` of `vectors`, in no particular order.
pub(super) fn symmetric_eigen(a: Vec<f64>, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    assert_eq!(a.len(), n * n, "matrix size");
    // `w` holds the transpose of the textbook's V, so that the inner loops run along rows.
    let mut w = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    tred2(n, &mut w, &mut d, &mut e);
    tql2(n, &mut w, &mut d, &mut e)?;
    Ok((d, w))
}

/// Householder reduction to tridiagonal form (`d` diagonal, `e` subdiagonal), accumulating
/// the orthogonal transformation; `w[j * n + k]` stands for the textbook's `V[k][j]`.
fn tred2(n: usize, w: &mut [f64], d: &mut [f64], e: &mut [f64]) {
    for j in 0..n {
        d[j] = w[j * n + n - 1];
    }
    for i in (1..n).rev() {
        let scale: f64 = d[..i].iter().map(|v| v.abs()).sum();
        let mut h = 0.0;
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = w[j * n + i - 1];
                w[j * n + i] = 0.0;
                w[i * n + j] = 0.0;
            }
        } else {
            for v in &mut d[..i] {
                *v /= scale;
                h += *v * *v;
            }
            let f = d[i - 1];
            let g = if f > 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            e[..i].fill(0.0);
            for j in 0..i {
                let f = d[j];
                w[i * n + j] = f;
                let row = &w[j * n..j * n + i];
                let mut g = e[j] + row[j] * f;
                for kk in j + 1..i {
                    g += row[kk] * d[kk];
                    e[kk] += row[kk] * f;
                }
                e[j] = g;
            }
            let mut f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                let (f, g) = (d[j], e[j]);
                let row = &mut w[j * n..j * n + i];
                for kk in j..i {
                    row[kk] -= f * e[kk] + g * d[kk];
                }
                d[j] = w[j * n + i - 1];
                w[j * n + i] = 0.0;
            }
        }
        d[i] = h;
    }
    // accumulate the transformations
    let mut col = vec![0.0f64; n];
    for i in 0..n.saturating_sub(1) {
        w[i * n + n - 1] = w[i * n + i];
        w[i * n + i] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            col[..=i].copy_from_slice(&w[(i + 1) * n..(i + 1) * n + i + 1]);
            for kk in 0..=i {
                d[kk] = col[kk] / h;
            }
            for j in 0..=i {
                let row = &mut w[j * n..j * n + i + 1];
                let g: f64 = row.iter().zip(&col[..=i]).map(|(a, b)| a * b).sum();
                for (r, dk) in row.iter_mut().zip(&d[..=i]) {
                    *r -= g * dk;
                }
            }
        }
        w[(i + 1) * n..(i + 1) * n + i + 1].fill(0.0);
    }
    for j in 0..n {
        d[j] = w[j * n + n - 1];
        w[j * n + n - 1] = 0.0;
    }
    w[n * n - 1] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal matrix, rotating the rows of `w` along.
fn tql2(n: usize, w: &mut [f64], d: &mut [f64], e: &mut [f64]) -> Result<()> {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                if iterations > 60 {
                    return Err(Error::invalid("directions", "strategy `principal`: eigensolver did not converge"));
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for v in &mut d[l + 2..] {
                    *v -= h;
                }
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0f64, 1.0f64, 1.0f64);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0f64, 0.0f64);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (lo, hi) = w.split_at_mut((i + 1) * n);
                    let (vi, vi1) = (&mut lo[i * n..], &mut hi[..n]);
                    for (a, b) in vi.iter_mut().zip(vi1.iter_mut()) {
                        let t = *b;
                        *b = s * *a + c * t;
                        *a = c * *a - s * t;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    Ok(())
}

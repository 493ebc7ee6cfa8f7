//! A safe row-major wrapper around the `gemm` crate's AVX2/FMA/AVX-512 kernels.

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// As stored.
    No,
    /// Transposed.
    Yes,
}

/// How many threads one GEMM may use. Inference parallelises over images outside the GEMM
/// (one small GEMM per task keeps the working set in L2), training lets the GEMM split itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only.
    One,
    /// All of rayon's threads.
    All,
}

/// `c[m,n] = beta_c * c + op(a)[m,k] * op(b)[k,n]`, all row-major.
///
/// `a` is `m x k` (or `k x m` when transposed), `b` is `k x n` (or `n x k`).
/// With `accumulate == false` the old contents of `c` are ignored.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    c: &mut [f32],
    accumulate: bool,
    threads: Threads,
) {
    assert!(a.len() >= m * k, "lhs too short: {} < {}", a.len(), m * k);
    assert!(b.len() >= k * n, "rhs too short: {} < {}", b.len(), k * n);
    assert!(c.len() >= m * n, "dst too short: {} < {}", c.len(), m * n);
    // (row stride, column stride) of each operand as used.
    let (a_rs, a_cs) = if ta == Trans::No { (k, 1) } else { (1, m) };
    let (b_rs, b_cs) = if tb == Trans::No { (n, 1) } else { (1, k) };
    // handed to the kernel as stated: its vector dimension runs along c's strided columns,
    // which costs a packing of `a`; `matmul_strided`'s orientation avoids that, but would
    // change every trained model's last bits
    let dims = Dims { m, n, k, accumulate, threads };
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe { raw(dims, (c.as_mut_ptr(), 1, n), (a, a_cs, a_rs), (b, b_cs, b_rs)) }
}

/// [`matmul`] on matrices whose rows lie `ld` values apart (each operand as stored: `a` is
/// `m` rows of `k` values, or `k` rows of `m` when transposed), so that one GEMM can read or
/// write a strided slice of a larger array: one point's rows of a batch's Winograd tiles.
///
/// The kernel is column-major at heart (its micro-tiles run down columns), so this hands it
/// the transposed product `c^T = op(b)^T op(a)^T`: `c`'s contiguous rows become the kernel's
/// vector dimension, and an operand whose transpose is contiguous along it needs no packing.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize, Trans),
    b: (&[f32], usize, Trans),
    (c, ldc): (&mut [f32], usize),
    accumulate: bool,
    threads: Threads,
) {
    assert!(c.len() >= span(m, n, ldc), "dst too short: {} < {}", c.len(), span(m, n, ldc));
    // SAFETY: `c` is borrowed mutably and holds every element the product writes.
    unsafe { matmul_strided_to(m, n, k, a, b, (c.as_mut_ptr(), ldc), accumulate, threads) }
}

/// [`matmul_strided`] writing through a pointer, so that parallel tasks can each write their
/// own interleaved rows of one array (a point's rows of every image's Winograd products).
///
/// # Safety
/// `c` must be valid for reads and writes at `i * ldc + j` for every `i < m` and `j < n`, and
/// nothing else may access those elements during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_strided_to(
    m: usize,
    n: usize,
    k: usize,
    (a, lda, ta): (&[f32], usize, Trans),
    (b, ldb, tb): (&[f32], usize, Trans),
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
    threads: Threads,
) {
    let (a_rows, a_cols) = if ta == Trans::No { (m, k) } else { (k, m) };
    let (b_rows, b_cols) = if tb == Trans::No { (k, n) } else { (n, k) };
    assert!(a_cols <= lda && b_cols <= ldb && n <= ldc, "leading dimension shorter than a row");
    assert!(a.len() >= span(a_rows, a_cols, lda), "lhs too short: {} < {}", a.len(), span(a_rows, a_cols, lda));
    assert!(b.len() >= span(b_rows, b_cols, ldb), "rhs too short: {} < {}", b.len(), span(b_rows, b_cols, ldb));
    // c^T (n x m): row j, column i at c[i * ldc + j]
    let dst = (c, ldc, 1);
    // op(b)^T (n x k): row j, column p is op(b)[p][j]
    let lhs = if tb == Trans::No { (b, ldb, 1) } else { (b, 1, ldb) };
    // op(a)^T (k x m): row p, column i is op(a)[i][p]
    let rhs = if ta == Trans::No { (a, lda, 1) } else { (a, 1, lda) };
    let dims = Dims { m: n, n: m, k, accumulate, threads };
    // SAFETY: the asserts above bound every index the strides reach in `a` and `b`; the
    // caller vouches for `c`.
    unsafe { raw(dims, dst, lhs, rhs) }
}

/// One past the last element of `rows` rows of `cols` values, `ld` apart.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// A product's sizes in the kernel's terms and how it runs.
struct Dims {
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: Threads,
}

/// `dst[m, n] (+)= lhs[m, k] rhs[k, n]`, each operand given as (values, column stride, row
/// stride).
///
/// # Safety
/// Every index `row * row_stride + col * col_stride` with `row`, `col` inside the operand's
/// shape must lie inside its slice, and `dst` must be valid for reads and writes there with
/// nothing else accessing those elements.
unsafe fn raw(
    d: Dims,
    (dst, dst_cs, dst_rs): (*mut f32, usize, usize),
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
) {
    if d.m == 0 || d.n == 0 {
        return;
    }
    if d.k == 0 {
        if !d.accumulate {
            for i in 0..d.m {
                for j in 0..d.n {
                    // SAFETY: inside the product's shape, which the caller vouches for
                    unsafe { *dst.add(i * dst_rs + j * dst_cs) = 0.0 };
                }
            }
        }
        return;
    }
    let par = match d.threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: the caller guarantees every index the strides reach lies inside the operands
    // and that nothing else touches `dst`'s elements, so it aliases neither input.
    unsafe {
        gemm::gemm(
            d.m,
            d.n,
            d.k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            d.accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], ta: Trans, b: &[f32], tb: Trans) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
                    let bv = if tb == Trans::No { b[p * n + j] } else { b[j * k + p] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_for_all_transposes() {
        let (m, n, k) = (37, 23, 51);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                for threads in [Threads::One, Threads::All] {
                    let want = naive(m, n, k, &a, ta, &b, tb);
                    let mut c = vec![1.0f32; m * n];
                    matmul(m, n, k, &a, ta, &b, tb, &mut c, true, threads);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - (y + 1.0)).abs() < 1e-3, "{x} vs {}", y + 1.0);
                    }
                    matmul(m, n, k, &a, ta, &b, tb, &mut c, false, threads);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-3);
                    }
                }
            }
        }
    }

    #[test]
    fn strided_matches_naive_for_all_transposes() {
        let (m, n, k) = (19, 13, 29);
        let pad = 5; // extra values after each stored row
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let (ar, ac) = if ta == Trans::No { (m, k) } else { (k, m) };
                let (br, bc) = if tb == Trans::No { (k, n) } else { (n, k) };
                let dense_a: Vec<f32> = (0..ar * ac).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                let dense_b: Vec<f32> = (0..br * bc).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
                let spread = |d: &[f32], cols: usize| -> Vec<f32> {
                    d.chunks(cols).flat_map(|r| r.iter().copied().chain([9.0; 5])).collect()
                };
                let (a, b) = (spread(&dense_a, ac), spread(&dense_b, bc));
                let want = naive(m, n, k, &dense_a, ta, &dense_b, tb);
                let mut c = vec![7.0f32; m * (n + pad)];
                matmul_strided(m, n, k, (&a, ac + pad, ta), (&b, bc + pad, tb), (&mut c, n + pad), false, Threads::One);
                for (i, row) in c.chunks(n + pad).enumerate() {
                    for j in 0..n {
                        assert!((row[j] - want[i * n + j]).abs() < 1e-3, "{ta:?} {tb:?} ({i}, {j})");
                    }
                    assert!(row[n..].iter().all(|&v| v == 7.0), "wrote past a row");
                }
            }
        }
    }
}

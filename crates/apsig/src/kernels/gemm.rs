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
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // (row stride, column stride) of each operand as stored.
    let (a_rs, a_cs) = match ta {
        Trans::No => (k as isize, 1),
        Trans::Yes => (1, m as isize),
    };
    let (b_rs, b_cs) = match tb {
        Trans::No => (n as isize, 1),
        Trans::Yes => (1, k as isize),
    };
    let par = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: the asserts above guarantee every index the kernel touches
    // (row < m, col < n, depth < k with the strides chosen) lies inside the slices,
    // and `c` is borrowed mutably so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
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
}

//! Winograd's F(m, 2) for the decoder's transposed convolutions (4x4 kernel, stride 2, padding
//! 1), in the three passes training needs: output, input gradient and weight gradient.
//!
//! Such a layer is four convolutions in one: the output pixels of each parity `(qy, qx)` (a
//! phase) are a 2x2-tap correlation of the input, on a grid the input's size. Along one axis,
//! `y[2i] = w[1] x[i] + w[3] x[i-1]` and `y[2i+1] = w[2] x[i] + w[0] x[i+1]`. Each phase's grid
//! is cut into tiles of at most [`MAX_TILE`] outputs per side, and a tile of `m` outputs is
//! `A^T [(G g) . (B^T d)]` over `m + 1` Toom-Cook points, so per input and output channel a
//! 7x7 grid costs 8 x 8 = 64 products per phase instead of the 196 that the column matrix of
//! the GEMM route computes (which also multiplies the taps that fall off the edge).
//!
//! The products are one GEMM per phase and point over the batch: `[n, cin] x [cin, cout]`.
//! Every buffer is image-major (`[n][phase, point][channels]`), so that the transforms, one
//! task per image, read and write one contiguous run per image; each GEMM reads and writes its
//! point's rows strided. The weight gradient, whose sum runs over the batch, gathers its rows
//! first. Every sum runs in an order fixed by the layer's shape and the batch, so the bits do
//! not depend on the thread count. They differ from the column route's in the last bits (the
//! transforms round differently; relative errors of a few 1e-6 against an f64 reference).
//!
//! `examples/convt_winograd.rs` times the stages at the MNIST decoder's first layer
//! (7x7x128 -> 14x14x64, batch 128); `docs/results/ab/winograd-transposed.txt` has what the
//! decoder's training step gained.

use super::gemm::{matmul_strided, matmul_strided_to, Threads, Trans};
use rayon::prelude::*;

/// Outputs per tile side. A 7x7 phase grid (the MNIST decoder's first transposed convolution)
/// is one tile with the eight points 0, ±1, ±2, ±1/2 and infinity.
const MAX_TILE: usize = 7;

/// Finite Toom-Cook points, taken in this order: small ones first, so that small tiles round
/// least.
const POINTS: [f64; 7] = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5];

/// Phases of a stride-2 transposed convolution in 2D: output parities `(qy, qx)`.
const PHASES: usize = 4;

/// Kernel taps of tap `a` (0 or 1) of phase `q` along one axis: phase 0 reads `x[i-1]` with
/// `w[3]` and `x[i]` with `w[1]`, phase 1 `x[i]` with `w[2]` and `x[i+1]` with `w[0]`.
fn tap(q: usize, a: usize) -> usize {
    [[3, 1], [2, 0]][q][a]
}

/// One axis's transforms for a phase grid of `len` outputs, read from a window of `len + 1`
/// inputs: in phase `q`, window index `i` is input `i + q - 1` (none at the edges). Only
/// nonzero coefficients are kept.
#[derive(Debug)]
struct Axis {
    len: usize,
    points: usize,
    /// `B^T` per phase: for each point, the inputs it combines.
    reads: [Vec<Vec<(usize, f32)>>; 2],
    /// `B` of both phases: for each input, the points (`q * points + p`) that read it.
    read_by: Vec<Vec<(usize, f32)>>,
    /// `G`: for each point, the weights of the two taps.
    g: Vec<[f32; 2]>,
    /// `A^T`: for each output, the points it sums.
    sums: Vec<Vec<(usize, f32)>>,
    /// `A`: for each point, the outputs that sum it.
    summed_by: Vec<Vec<(usize, f32)>>,
}

impl Axis {
    fn new(len: usize) -> Axis {
        let tiles = len.div_ceil(MAX_TILE);
        // `B^T` over window indices, `G`, `A^T`, block-diagonal over the tiles
        let (mut bt, mut g, mut sums) = (Vec::new(), Vec::new(), vec![Vec::new(); len]);
        let mut start = 0;
        for t in 0..tiles {
            // as equal as possible, the longer ones first
            let m = len / tiles + usize::from(t < len % tiles);
            let [tile_bt, tile_g, tile_at] = toom_cook(m);
            let first = bt.len();
            for row in tile_bt {
                bt.push(sparse(row.iter().enumerate().map(|(i, &v)| (start + i, v))));
            }
            g.extend(tile_g.iter().map(|r| [r[0] as f32, r[1] as f32]));
            for (o, row) in tile_at.iter().enumerate() {
                sums[start + o] = sparse(row.iter().enumerate().map(|(p, &v)| (first + p, v)));
            }
            start += m;
        }
        let points = bt.len();
        // window index i of phase q is input i + q - 1
        let input = |i: usize, q: usize| (i + q).checked_sub(1).filter(|&r| r < len);
        let reads: [Vec<Vec<(usize, f32)>>; 2] = [0, 1]
            .map(|q| bt.iter().map(|row| row.iter().filter_map(|&(i, v)| Some((input(i, q)?, v))).collect()).collect());
        let mut read_by = vec![Vec::new(); len];
        for (q, rows) in reads.iter().enumerate() {
            for (p, row) in rows.iter().enumerate() {
                for &(r, v) in row {
                    read_by[r].push((q * points + p, v));
                }
            }
        }
        let mut summed_by = vec![Vec::new(); points];
        for (o, row) in sums.iter().enumerate() {
            for &(p, v) in row {
                summed_by[p].push((o, v));
            }
        }
        Axis { len, points, reads, read_by, g, sums, summed_by }
    }
}

/// A small dense matrix, row by row.
type Matrix = Vec<Vec<f64>>;

fn sparse(entries: impl Iterator<Item = (usize, f64)>) -> Vec<(usize, f32)> {
    entries.filter(|&(_, v)| v != 0.0).map(|(i, v)| (i, v as f32)).collect()
}

/// `B^T` (`(m+1) x (m+1)`), `G` (`(m+1) x 2`) and `A^T` (`m x (m+1)`) of F(m, 2) over the first
/// `m` of [`POINTS`] and infinity, so that `y_o = sum_j d_{o+j} g_j` is
/// `A^T [(G g) . (B^T d)]`. The correlation is the transpose of the polynomial product that
/// Toom-Cook evaluates at the points and interpolates, so `A^T` is the evaluation of the
/// `m`-coefficient factor transposed and `B^T` the interpolation's inverse Vandermonde
/// matrix transposed.
fn toom_cook(m: usize) -> [Matrix; 3] {
    let alpha = m + 1;
    // evaluation of a `cols`-coefficient polynomial at the points: row i is (1, a, a^2, ...),
    // infinity's row picks the leading coefficient
    let eval = |cols: usize| -> Matrix {
        (0..alpha)
            .map(|p| match POINTS.get(p).filter(|_| p < m) {
                Some(&a) => (0..cols).map(|e| a.powi(e as i32)).collect(),
                None => (0..cols).map(|e| f64::from(u8::from(e == cols - 1))).collect(),
            })
            .collect()
    };
    let inverse = invert(eval(alpha));
    let bt = (0..alpha).map(|p| (0..alpha).map(|i| inverse[i][p]).collect()).collect();
    let h = eval(m);
    let at = (0..m).map(|o| (0..alpha).map(|p| h[p][o]).collect()).collect();
    [bt, eval(2), at]
}

/// The inverse of a small invertible matrix, by Gauss-Jordan elimination with partial pivoting.
fn invert(mut a: Matrix) -> Matrix {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect()).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).expect("rows left");
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        assert!(d != 0.0, "Toom-Cook points are distinct");
        for j in 0..n {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for r in 0..n {
            if r != col && a[r][col] != 0.0 {
                let f = a[r][col];
                for j in 0..n {
                    a[r][j] -= f * a[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    inv
}

/// What a sum of [`combine`] starts from.
#[derive(Clone, Copy)]
enum Start<'a> {
    Zero,
    From(&'a [f32]),
    /// What `dst` holds: the sum is added to it.
    Dst,
}

/// `dst = start + sum of coef * src(index)` over `terms`, a block of channels at a time held in
/// registers, each term's block read once: the transforms' sums have up to 16 terms, and
/// adding them one at a time into `dst` in memory ran at a third of the speed.
#[inline(always)]
fn combine<'a>(dst: &mut [f32], init: Start, terms: &[(usize, f32)], src: impl Fn(usize) -> &'a [f32]) {
    #[inline(always)]
    fn block<'a, const B: usize>(
        dst: &mut [f32],
        init: Start,
        terms: &[(usize, f32)],
        src: &impl Fn(usize) -> &'a [f32],
        c0: usize,
    ) {
        let mut acc = [0.0f32; B];
        match init {
            Start::Zero => {}
            Start::From(v) => acc.copy_from_slice(&v[c0..c0 + B]),
            Start::Dst => acc.copy_from_slice(&dst[c0..c0 + B]),
        }
        for &(i, coef) in terms {
            let s: &[f32; B] = src(i)[c0..c0 + B].try_into().expect("a block of channels");
            for l in 0..B {
                acc[l] += coef * s[l];
            }
        }
        dst[c0..c0 + B].copy_from_slice(&acc);
    }
    let len = dst.len();
    let mut c0 = 0;
    while c0 + 32 <= len {
        block::<32>(dst, init, terms, &src, c0);
        c0 += 32;
    }
    while c0 + 8 <= len {
        block::<8>(dst, init, terms, &src, c0);
        c0 += 8;
    }
    while c0 < len {
        block::<1>(dst, init, terms, &src, c0);
        c0 += 1;
    }
}

/// An array whose rows parallel tasks write in disjoint columns (see the callers' SAFETY notes).
#[derive(Clone, Copy)]
struct RowsOf(*mut f32);

// SAFETY: the pointer is only written through by tasks that each own disjoint elements
// while the array's owner is mutably borrowed.
unsafe impl Send for RowsOf {}
unsafe impl Sync for RowsOf {}

impl RowsOf {
    /// The pointer `offset` values in (a method, so that closures capture the whole wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The transforms of one transposed convolution's shape: input `h x w x cin`, output
/// `2h x 2w x cout`.
#[derive(Debug)]
pub struct WinogradConvT {
    cin: usize,
    cout: usize,
    ay: Axis,
    ax: Axis,
}

impl WinogradConvT {
    /// The kernel for a transposed convolution of this shape, or `None` where it does not
    /// apply: another kernel, stride or padding, or fewer than 8 channels on either side (one
    /// output channel makes each point's GEMM a matrix-vector product, which the column route
    /// does as well).
    pub fn new(h: usize, w: usize, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Option<Self> {
        ((k, stride, pad) == (4, 2, 1) && h > 0 && w > 0 && cin >= 8 && cout >= 8).then(|| WinogradConvT {
            cin,
            cout,
            ay: Axis::new(h),
            ax: Axis::new(w),
        })
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Points per phase.
    fn points(&self) -> usize {
        self.ay.points * self.ax.points
    }

    /// Transformed inputs for `n` images: `[n][phase, point][cin]`.
    pub fn input_len(&self, n: usize) -> usize {
        n * PHASES * self.points() * self.cin
    }

    /// Products for `n` images: `[n][phase, point][cout]`.
    pub fn product_len(&self, n: usize) -> usize {
        PHASES * self.points() * n * self.cout
    }

    /// Transformed weights: `[phase, point][cin][cout]`.
    pub fn weight_len(&self) -> usize {
        PHASES * self.points() * self.cin * self.cout
    }

    /// Floating-point operations per image of the forward pass as performed: the products
    /// (one GEMM per phase and point) and the input and output transforms, two per term.
    /// The weights' transform runs once per batch and is not counted.
    pub fn forward_flops(&self) -> u64 {
        self.product_flops() + self.input_transform_flops() + self.output_transform_flops()
    }

    /// Floating-point operations per image of the backward pass as performed: the output
    /// gradient's transform and the weight gradient's products, then, unless `first` (no input
    /// gradient), the input gradient's products and transform. The per-batch reduction of the
    /// weight gradient to the taps is not counted.
    pub fn backward_flops(&self, first: bool) -> u64 {
        let weights = self.output_transform_flops() + self.product_flops();
        if first {
            weights
        } else {
            weights + self.product_flops() + self.input_transform_flops()
        }
    }

    /// Floating-point operations per image of one pass's products (its GEMMs).
    pub fn product_flops(&self) -> u64 {
        2 * (PHASES * self.points() * self.cin * self.cout) as u64
    }

    /// Two per term of the input transform (and of its adjoint, which has the same terms).
    fn input_transform_flops(&self) -> u64 {
        let terms = |rows: &[Vec<(usize, f32)>]| rows.iter().map(Vec::len).sum::<usize>();
        let along_x: usize = self.ax.reads.iter().map(|r| self.ay.len * terms(r)).sum();
        let along_y: usize = self.ay.reads.iter().map(|r| 2 * self.ax.points * terms(r)).sum();
        2 * ((along_x + along_y) * self.cin) as u64
    }

    /// Two per term of the output transform (and of its adjoint).
    fn output_transform_flops(&self) -> u64 {
        let terms = |rows: &[Vec<(usize, f32)>]| rows.iter().map(Vec::len).sum::<usize>();
        let along_x = self.ay.points * terms(&self.ax.sums);
        let along_y = self.ax.len * terms(&self.ay.sums);
        2 * (PHASES * (along_x + along_y) * self.cout) as u64
    }

    /// The whole forward pass: `x` is `[n, h, w, cin]`, `u` the transformed weights, `y`
    /// receives `[n, 2h, 2w, cout]`. Allocates the transforms' buffers (training keeps its own
    /// and calls the stages).
    pub fn forward(&self, x: &[f32], n: usize, u: &[f32], bias: &[f32], y: &mut [f32]) {
        let mut v = vec![0.0; self.input_len(n)];
        self.transform_inputs(x, n, &mut v);
        let mut m = vec![0.0; self.product_len(n)];
        self.products(&v, u, n, &mut m);
        self.transform_outputs(&m, n, bias, y);
    }

    /// `u = G w G^T` for each phase: `weight` is the layer's `[(ky, kx, cout), cin]`.
    pub fn transform_weights(&self, weight: &[f32], u: &mut [f32]) {
        let (cin, cout, pts) = (self.cin, self.cout, self.points());
        assert_eq!(weight.len(), 16 * cout * cin);
        assert_eq!(u.len(), self.weight_len());
        let cc = cin * cout;
        // the taps as [ky][kx][cin][cout]
        let mut taps = vec![0.0f32; 16 * cc];
        for (t, tap) in taps.chunks_exact_mut(cc).enumerate() {
            for o in 0..cout {
                for (c, &v) in weight[(t * cout + o) * cin..][..cin].iter().enumerate() {
                    tap[c * cout + o] = v;
                }
            }
        }
        let px_n = self.ax.points;
        u.par_chunks_mut(pts * cc).enumerate().for_each(|(phase, u)| {
            let (qy, qx) = (phase / 2, phase % 2);
            // e[a][px] = sum_b G[px][b] w[tap(qy, a)][tap(qx, b)]
            let mut e = vec![0.0f32; 2 * px_n * cc];
            for a in 0..2 {
                for (px, gx) in self.ax.g.iter().enumerate() {
                    let terms = [(tap(qy, a) * 4 + tap(qx, 0), gx[0]), (tap(qy, a) * 4 + tap(qx, 1), gx[1])];
                    combine(&mut e[(a * px_n + px) * cc..][..cc], Start::Zero, &terms, |t| &taps[t * cc..][..cc]);
                }
            }
            for (py, gy) in self.ay.g.iter().enumerate() {
                for px in 0..px_n {
                    let terms = [(px, gy[0]), (px_n + px, gy[1])];
                    combine(&mut u[(py * px_n + px) * cc..][..cc], Start::Zero, &terms, |t| &e[t * cc..][..cc]);
                }
            }
        });
    }

    /// `v = B^T d B` of every phase of every image: `x` is `[n, h, w, cin]`, `v` is
    /// [`input_len`](Self::input_len) values.
    pub fn transform_inputs(&self, x: &[f32], n: usize, v: &mut [f32]) {
        let (cin, pts) = (self.cin, self.points());
        let (h, w) = (self.ay.len, self.ax.len);
        assert_eq!(x.len(), n * h * w * cin);
        assert_eq!(v.len(), self.input_len(n));
        let px_n = self.ax.points;
        v.par_chunks_mut(PHASES * pts * cin).zip(x.par_chunks(h * w * cin)).for_each_init(
            || vec![0.0f32; 2 * h * px_n * cin],
            |rows, (v, img)| {
                // rows[qx][r][px]: each input row along x, once per x phase
                for (qx, reads) in self.ax.reads.iter().enumerate() {
                    for r in 0..h {
                        for (px, terms) in reads.iter().enumerate() {
                            let dst = &mut rows[((qx * h + r) * px_n + px) * cin..][..cin];
                            combine(dst, Start::Zero, terms, |col| &img[(r * w + col) * cin..][..cin]);
                        }
                    }
                }
                for phase in 0..PHASES {
                    let (qy, qx) = (phase / 2, phase % 2);
                    for (py, terms) in self.ay.reads[qy].iter().enumerate() {
                        for px in 0..px_n {
                            let dst = &mut v[(phase * pts + py * px_n + px) * cin..][..cin];
                            combine(dst, Start::Zero, terms, |r| &rows[((qx * h + r) * px_n + px) * cin..][..cin]);
                        }
                    }
                }
            },
        );
    }

    /// `m[.., phase, point] = v[.., phase, point] u[phase, point]`: one GEMM per phase and
    /// point, each reading and writing its rows of every image.
    pub fn products(&self, v: &[f32], u: &[f32], n: usize, m: &mut [f32]) {
        assert_eq!(v.len(), self.input_len(n));
        assert_eq!(m.len(), self.product_len(n));
        self.point_products(n, (v, self.cin), u, Trans::No, (m, self.cout));
    }

    /// For each phase and point, `out[.., qp] = lhs[.., qp] op(u[qp])` over the batch: `lhs`
    /// and `out` image-major with `lhs_width` and `out_width` values per image and point, `u`
    /// the transformed weights (`[cin][cout]` per point), as stored or transposed.
    fn point_products(
        &self,
        n: usize,
        (lhs, lhs_width): (&[f32], usize),
        u: &[f32],
        tu: Trans,
        (out, out_width): (&mut [f32], usize),
    ) {
        let (cc, qps) = (self.cin * self.cout, PHASES * self.points());
        assert_eq!(u.len(), self.weight_len());
        assert_eq!(lhs.len(), n * qps * lhs_width);
        assert_eq!(out.len(), n * qps * out_width);
        let dst = RowsOf(out.as_mut_ptr());
        (0..qps).into_par_iter().for_each(|qp| {
            let a = (&lhs[qp * lhs_width..], qps * lhs_width, Trans::No);
            let b = (&u[qp * cc..][..cc], self.cout, tu);
            // SAFETY: `out` holds n rows of qps * out_width values (asserted above); this task
            // alone writes columns qp * out_width .. (qp + 1) * out_width of them, and `out`
            // stays borrowed mutably until every task has ended
            let c = (dst.at(qp * out_width), qps * out_width);
            unsafe { matmul_strided_to(n, out_width, lhs_width, a, b, c, false, Threads::One) };
        });
    }

    /// `y = A^T m A` of every phase, interleaved into `[n, 2h, 2w, cout]`, plus `bias`.
    pub fn transform_outputs(&self, m: &[f32], n: usize, bias: &[f32], y: &mut [f32]) {
        let (cout, pts) = (self.cout, self.points());
        let qps = PHASES * pts;
        let (h, w) = (self.ay.len, self.ax.len);
        assert_eq!(m.len(), self.product_len(n));
        assert_eq!(y.len(), n * 4 * h * w * cout);
        assert_eq!(bias.len(), cout);
        let px_n = self.ax.points;
        y.par_chunks_mut(4 * h * w * cout).enumerate().for_each_init(
            || vec![0.0f32; self.ay.points * w * cout],
            |cols, (img, y)| {
                for phase in 0..PHASES {
                    let (qy, qx) = (phase / 2, phase % 2);
                    // cols[py][ox]: along x first
                    for py in 0..self.ay.points {
                        let qp = phase * pts + py * px_n;
                        for (ox, terms) in self.ax.sums.iter().enumerate() {
                            let dst = &mut cols[(py * w + ox) * cout..][..cout];
                            combine(dst, Start::Zero, terms, |px| &m[(img * qps + qp + px) * cout..][..cout]);
                        }
                    }
                    for (oy, terms) in self.ay.sums.iter().enumerate() {
                        for ox in 0..w {
                            let dst = &mut y[((2 * oy + qy) * 2 * w + 2 * ox + qx) * cout..][..cout];
                            combine(dst, Start::From(bias), terms, |py| &cols[(py * w + ox) * cout..][..cout]);
                        }
                    }
                }
            },
        );
    }

    /// The output transform's adjoint: `dm = A dy A^T` of every phase of the output gradient
    /// `dy` (`[n, 2h, 2w, cout]`), image-major: `[n][phase, point][cout]`.
    pub fn transform_output_grads(&self, dy: &[f32], n: usize, dm: &mut [f32]) {
        let (cout, pts) = (self.cout, self.points());
        let (h, w) = (self.ay.len, self.ax.len);
        assert_eq!(dy.len(), n * 4 * h * w * cout);
        assert_eq!(dm.len(), n * PHASES * pts * cout);
        let px_n = self.ax.points;
        dm.par_chunks_mut(PHASES * pts * cout).zip(dy.par_chunks(4 * h * w * cout)).for_each_init(
            || vec![0.0f32; h * px_n * cout],
            |rows, (dm, dy)| {
                for phase in 0..PHASES {
                    let (qy, qx) = (phase / 2, phase % 2);
                    // rows[oy][px] = sum_ox A[px][ox] dy[oy][ox]
                    for oy in 0..h {
                        for (px, terms) in self.ax.summed_by.iter().enumerate() {
                            let dst = &mut rows[(oy * px_n + px) * cout..][..cout];
                            combine(dst, Start::Zero, terms, |ox| {
                                &dy[((2 * oy + qy) * 2 * w + 2 * ox + qx) * cout..][..cout]
                            });
                        }
                    }
                    for (py, terms) in self.ay.summed_by.iter().enumerate() {
                        for px in 0..px_n {
                            let dst = &mut dm[(phase * pts + py * px_n + px) * cout..][..cout];
                            combine(dst, Start::Zero, terms, |oy| &rows[(oy * px_n + px) * cout..][..cout]);
                        }
                    }
                }
            },
        );
    }

    /// `dv[.., phase, point] = dm[.., phase, point] u[phase, point]^T`: the products' gradient
    /// with respect to the transformed inputs, laid out as they are.
    pub fn input_grad_products(&self, dm: &[f32], u: &[f32], n: usize, dv: &mut [f32]) {
        assert_eq!(dm.len(), self.product_len(n));
        assert_eq!(dv.len(), self.input_len(n));
        self.point_products(n, (dm, self.cout), u, Trans::Yes, (dv, self.cin));
    }

    /// The input transform's adjoint: `dx = sum over phases of B dv B^T`, each phase's window
    /// shifted back onto the input, into `[n, h, w, cin]`.
    pub fn transform_input_grads(&self, dv: &[f32], n: usize, dx: &mut [f32]) {
        let (cin, pts) = (self.cin, self.points());
        let (h, w) = (self.ay.len, self.ax.len);
        assert_eq!(dv.len(), self.input_len(n));
        assert_eq!(dx.len(), n * h * w * cin);
        let (py_n, px_n) = (self.ay.points, self.ax.points);
        dx.par_chunks_mut(h * w * cin).enumerate().for_each_init(
            || vec![0.0f32; 2 * h * px_n * cin],
            |rows, (img, dx)| {
                // rows[qx][r][px] = sum over qy and py of B[r][qy, py] dv[qy, qx, py, px]
                for qx in 0..2 {
                    for (r, terms) in self.ay.read_by.iter().enumerate() {
                        for px in 0..px_n {
                            let dst = &mut rows[((qx * h + r) * px_n + px) * cin..][..cin];
                            combine(dst, Start::Zero, terms, |qp| {
                                let (qy, py) = (qp / py_n, qp % py_n);
                                &dv[((img * PHASES + qy * 2 + qx) * pts + py * px_n + px) * cin..][..cin]
                            });
                        }
                    }
                }
                for r in 0..h {
                    for (col, terms) in self.ax.read_by.iter().enumerate() {
                        combine(&mut dx[(r * w + col) * cin..][..cin], Start::Zero, terms, |qp| {
                            let (qx, px) = (qp / px_n, qp % px_n);
                            &rows[((qx * h + r) * px_n + px) * cin..][..cin]
                        });
                    }
                }
            },
        );
    }

    /// Adds the weight gradient to `dw` (`[(ky, kx, cout), cin]`, as the layer stores its
    /// weights): per phase and point `dm^T v` over the batch, then `G^T (.) G` back to the taps.
    /// `du` is scratch of [`weight_len`](Self::weight_len) values.
    pub fn weight_grads(&self, v: &[f32], dm: &[f32], n: usize, du: &mut [f32], dw: &mut [f32]) {
        let (cin, cout, pts) = (self.cin, self.cout, self.points());
        let cc = cin * cout;
        assert_eq!(v.len(), self.input_len(n));
        assert_eq!(dm.len(), n * PHASES * pts * cout);
        assert_eq!(du.len(), self.weight_len());
        assert_eq!(dw.len(), 16 * cc);
        // du[phase, point] as [cout][cin], the layout of the taps' gradient. The sum runs over
        // the batch, whose rows lie a whole image's transforms apart: gathered first into
        // contiguous matrices, the GEMM runs 1.5 times as fast
        du.par_chunks_mut(cc).enumerate().for_each_init(
            || (vec![0.0f32; n * cout], vec![0.0f32; n * cin]),
            |(dm_rows, v_rows), (qp, du)| {
                for img in 0..n {
                    dm_rows[img * cout..][..cout].copy_from_slice(&dm[(img * PHASES * pts + qp) * cout..][..cout]);
                    v_rows[img * cin..][..cin].copy_from_slice(&v[(img * PHASES * pts + qp) * cin..][..cin]);
                }
                let a = (&dm_rows[..], cout, Trans::Yes);
                let b = (&v_rows[..], cin, Trans::No);
                matmul_strided(cout, cin, n, a, b, (du, cin), false, Threads::One);
            },
        );
        // per phase: e[b][py] = sum_px G[px][b] du[py, px], then each of the phase's four taps
        // gets sum_py G[py][a] e[b][py]; du is read once
        let px_n = self.ax.points;
        let mut taps: Vec<Option<&mut [f32]>> = dw.chunks_mut(cc).map(Some).collect();
        let phases: Vec<_> = (0..PHASES)
            .map(|phase| {
                let (qy, qx) = (phase / 2, phase % 2);
                let mut take =
                    |a: usize, b: usize| taps[tap(qy, a) * 4 + tap(qx, b)].take().expect("one phase per tap");
                (phase, [[take(0, 0), take(0, 1)], [take(1, 0), take(1, 1)]])
            })
            .collect();
        phases.into_par_iter().for_each(|(phase, mut dws)| {
            let mut e = vec![0.0f32; 2 * self.ay.points * cc];
            for b in 0..2 {
                let terms: Vec<(usize, f32)> = self.ax.g.iter().map(|g| g[b]).enumerate().collect();
                for py in 0..self.ay.points {
                    let qp = phase * pts + py * px_n;
                    let dst = &mut e[(b * self.ay.points + py) * cc..][..cc];
                    combine(dst, Start::Zero, &terms, |px| &du[(qp + px) * cc..][..cc]);
                }
            }
            for (a, row) in dws.iter_mut().enumerate() {
                let terms: Vec<(usize, f32)> = self.ay.g.iter().map(|g| g[a]).enumerate().collect();
                for (b, dw) in row.iter_mut().enumerate() {
                    combine(dw, Start::Dst, &terms, |py| &e[(b * self.ay.points + py) * cc..][..cc]);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transposed convolution in f64, straight from its definition:
    /// `y[2i - 1 + ky][2j - 1 + kx][o] += x[i][j][c] w[(ky, kx, o), c]`.
    #[allow(clippy::too_many_arguments)]
    fn naive(x: &[f32], n: usize, h: usize, w: usize, cin: usize, wt: &[f32], bias: &[f32], cout: usize) -> Vec<f64> {
        let (oh, ow) = (2 * h, 2 * w);
        let mut y = vec![0.0f64; n * oh * ow * cout];
        for img in 0..n {
            for px in y[img * oh * ow * cout..][..oh * ow * cout].chunks_mut(cout) {
                px.iter_mut().zip(bias).for_each(|(d, &v)| *d = v as f64);
            }
            for i in 0..h {
                for j in 0..w {
                    for ky in 0..4 {
                        for kx in 0..4 {
                            let (oy, ox) = ((2 * i + ky) as isize - 1, (2 * j + kx) as isize - 1);
                            if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                continue;
                            }
                            for o in 0..cout {
                                let mut s = 0.0f64;
                                for c in 0..cin {
                                    s += x[((img * h + i) * w + j) * cin + c] as f64
                                        * wt[((ky * 4 + kx) * cout + o) * cin + c] as f64;
                                }
                                y[((img * oh + oy as usize) * ow + ox as usize) * cout + o] += s;
                            }
                        }
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..len).map(|_| rng.normal()).collect()
    }

    fn forward(k: &WinogradConvT, x: &[f32], n: usize, wt: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut u = vec![0.0; k.weight_len()];
        k.transform_weights(wt, &mut u);
        let mut v = vec![0.0; k.input_len(n)];
        k.transform_inputs(x, n, &mut v);
        let mut y = vec![0.0; n * 4 * k.ay.len * k.ax.len * k.cout];
        k.forward(x, n, &u, bias, &mut y);
        (y, u, v)
    }

    /// Largest error relative to the largest magnitude of the exact result.
    fn rel_err(got: &[f32], want: &[f64]) -> f64 {
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        got.iter().zip(want).fold(0.0f64, |a, (&g, &w)| a.max((g as f64 - w).abs())) / scale
    }

    #[test]
    fn toom_cook_matrices_compute_the_correlation() {
        for m in 1..=MAX_TILE {
            let [bt, g, at] = toom_cook(m);
            let d: Vec<f64> = (0..=m).map(|i| (i as f64 * 0.37).sin()).collect();
            let taps = [0.7, -1.3];
            let gd: Vec<f64> = g.iter().map(|r| r[0] * taps[0] + r[1] * taps[1]).collect();
            let bd: Vec<f64> = bt.iter().map(|r| r.iter().zip(&d).map(|(a, b)| a * b).sum()).collect();
            for (o, row) in at.iter().enumerate() {
                let got: f64 = row.iter().zip(gd.iter().zip(&bd)).map(|(a, (g, b))| a * g * b).sum();
                let want = d[o] * taps[0] + d[o + 1] * taps[1];
                assert!((got - want).abs() < 1e-9, "F({m}, 2) output {o}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn forward_matches_the_definition_on_every_tiling() {
        // 7: one tile; 3: a small one; 9 and 14: two tiles; 1: a grid of one pixel
        for (h, w) in [(7, 7), (3, 9), (14, 1), (8, 5)] {
            let (n, cin, cout) = (3, 8, 16);
            let k = WinogradConvT::new(h, w, cin, cout, 4, 2, 1).unwrap();
            let x = values(n * h * w * cin, 1);
            let wt = values(16 * cout * cin, 2);
            let bias = values(cout, 3);
            let (y, _, _) = forward(&k, &x, n, &wt, &bias);
            let err = rel_err(&y, &naive(&x, n, h, w, cin, &wt, &bias, cout));
            assert!(err < 2e-5, "{h}x{w}: relative error {err}");
        }
    }

    #[test]
    fn gradients_are_the_adjoints_of_the_forward_pass() {
        // <dy, f(x, w)> is linear in x and in w, so its gradients are exact adjoints:
        // <dx, x> and <dw, w> must both equal <dy, y - bias> (to rounding)
        for (h, w) in [(7, 7), (9, 4)] {
            let (n, cin, cout) = (2, 8, 8);
            let k = WinogradConvT::new(h, w, cin, cout, 4, 2, 1).unwrap();
            let x = values(n * h * w * cin, 4);
            let wt = values(16 * cout * cin, 5);
            let zero = vec![0.0; cout];
            let (y, u, v) = forward(&k, &x, n, &wt, &zero);
            let dy = values(y.len(), 6);
            let mut dm = vec![0.0; n * PHASES * k.points() * cout];
            k.transform_output_grads(&dy, n, &mut dm);
            let mut dv = vec![0.0; k.input_len(n)];
            k.input_grad_products(&dm, &u, n, &mut dv);
            let mut dx = vec![0.0; x.len()];
            k.transform_input_grads(&dv, n, &mut dx);
            let mut du = vec![0.0; k.weight_len()];
            let mut dw = vec![1.0; wt.len()];
            k.weight_grads(&v, &dm, n, &mut du, &mut dw);
            dw.iter_mut().for_each(|d| *d -= 1.0);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
            let exact: f64 = dy.iter().zip(naive(&x, n, h, w, cin, &wt, &zero, cout)).map(|(&d, y)| d as f64 * y).sum();
            for (what, got) in [("input", dot(&dx, &x)), ("weight", dot(&dw, &wt))] {
                assert!((got - exact).abs() < 1e-4 * exact.abs().max(1.0), "{h}x{w} {what}: {got} vs {exact}");
            }
            // and each gradient entry against the definition's, in f64
            let mut want_dx = vec![0.0f64; x.len()];
            let mut want_dw = vec![0.0f64; wt.len()];
            for img in 0..n {
                for i in 0..h {
                    for j in 0..w {
                        for ky in 0..4 {
                            for kx in 0..4 {
                                let (oy, ox) = ((2 * i + ky) as isize - 1, (2 * j + kx) as isize - 1);
                                if oy < 0 || ox < 0 || oy >= 2 * h as isize || ox >= 2 * w as isize {
                                    continue;
                                }
                                for o in 0..cout {
                                    let g = dy[((img * 2 * h + oy as usize) * 2 * w + ox as usize) * cout + o] as f64;
                                    for c in 0..cin {
                                        let xi = ((img * h + i) * w + j) * cin + c;
                                        let wi = ((ky * 4 + kx) * cout + o) * cin + c;
                                        want_dx[xi] += g * wt[wi] as f64;
                                        want_dw[wi] += g * x[xi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assert!(rel_err(&dx, &want_dx) < 2e-5, "{h}x{w} dx: {}", rel_err(&dx, &want_dx));
            assert!(rel_err(&dw, &want_dw) < 2e-5, "{h}x{w} dw: {}", rel_err(&dw, &want_dw));
        }
    }

    #[test]
    fn the_bits_do_not_depend_on_the_thread_count() {
        let (h, w, cin, cout, n) = (7, 7, 16, 8, 5);
        let k = WinogradConvT::new(h, w, cin, cout, 4, 2, 1).unwrap();
        let x = values(n * h * w * cin, 7);
        let wt = values(16 * cout * cin, 8);
        let bias = values(cout, 9);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (y, u, v) = forward(&k, &x, n, &wt, &bias);
                let mut dm = vec![0.0; n * PHASES * k.points() * cout];
                k.transform_output_grads(&y, n, &mut dm);
                let mut dv = vec![0.0; k.input_len(n)];
                k.input_grad_products(&dm, &u, n, &mut dv);
                let mut dx = vec![0.0; x.len()];
                k.transform_input_grads(&dv, n, &mut dx);
                let (mut du, mut dw) = (vec![0.0; k.weight_len()], vec![0.0; wt.len()]);
                k.weight_grads(&v, &dm, n, &mut du, &mut dw);
                [y, dx, dw].concat().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn other_shapes_are_not_served() {
        assert!(WinogradConvT::new(7, 7, 8, 8, 4, 2, 1).is_some());
        assert!(WinogradConvT::new(7, 7, 8, 8, 3, 2, 1).is_none());
        assert!(WinogradConvT::new(7, 7, 8, 8, 4, 1, 1).is_none());
        assert!(WinogradConvT::new(7, 7, 8, 8, 4, 2, 0).is_none());
        assert!(WinogradConvT::new(7, 7, 8, 1, 4, 2, 1).is_none());
        assert!(WinogradConvT::new(0, 7, 8, 8, 4, 2, 1).is_none());
    }
}

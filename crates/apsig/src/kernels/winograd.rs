//! Winograd's F(2x2, 5x5) for valid 5x5 convolutions of channels-last tensors: each 2x2 block
//! of output pixels comes from a 6x6 input tile with 36 multiplies per input and output channel
//! instead of 100, so TargetNet-S's second convolution (16 -> 32 channels, ~75% of a probe's
//! multiply-adds) needs 2.8 times fewer. The tiles' transforms cost a fraction of that.
//!
//! With `B`, `G`, `A` the Toom-Cook matrices of the points 0, 1, -1, 2, -2 and infinity, one tile
//! is `A^T [ (G w G^T) . (B^T d B) ] A`, summed over input channels inside the product: the
//! transformed input `B^T d B` is a `[36][cin]` matrix per tile, the transformed weights
//! `G w G^T` a `[36][cin][cout]` array, and the 36 products are small GEMMs over blocks of 12
//! tiles. The order of every sum is fixed by the layer's shape alone, so the output does not
//! depend on the batch or the thread count. It differs from the direct convolution's in the
//! last bits (the transforms round differently), which is why inference alone uses it.

/// `G` of F(2, 5): the kernel's five taps to the six points.
const G: [[f64; 5]; 6] = [
    [0.25, 0.0, 0.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// Output pixels per tile side, kernel side, tile side.
const M: usize = 2;
const R: usize = 5;
const T: usize = M + R - 1;
/// Tiles per micro-kernel call: its rows.
const ROWS: usize = 6;
/// Tiles per block: the transformed weights of one point stay in L1 while two groups of six
/// tiles pass over them (95k images/s against 80k for one group and 86k for four, in
/// `examples/conv_kernels.rs`).
const BLOCK: usize = 2 * ROWS;
/// The distance between two points' rows of a block holding `channels` values per tile: one
/// cache line more than the rows take, so that the 36 points' rows of one tile, read together,
/// spread over more L1 sets (2-3% in `examples/conv_kernels.rs`, alternated A/B).
fn point_stride(channels: usize) -> usize {
    BLOCK * channels + 16
}

/// Channels per vector.
const LANES: usize = 8;

/// A 5x5 convolution's weights transformed for F(2x2, 5x5), `[36][cout / 16][cin][16]`.
pub struct WinogradConv {
    cin: usize,
    cout: usize,
    u: Vec<f32>,
    bias: Vec<f32>,
}

impl WinogradConv {
    /// Whether this kernel serves a valid stride-1 convolution of this shape in this build.
    pub fn applies(k: usize, cin: usize, cout: usize) -> bool {
        cfg!(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))
            && k == R
            && cin > 0
            && cin.is_multiple_of(LANES)
            && cout > 0
            && cout.is_multiple_of(16)
    }

    /// Floating-point operations per image for an `oh x ow` output, as performed: per 2x2 tile,
    /// 36 multiply-adds per input and output channel, 12 six-point input transforms of 22
    /// operations per input channel, 8 output transforms of 9 per output channel.
    pub fn flops(oh: usize, ow: usize, cin: usize, cout: usize) -> u64 {
        let tiles = (oh.div_ceil(M) * ow.div_ceil(M)) as u64;
        let (cin, cout) = (cin as u64, cout as u64);
        tiles * (2 * 36 * cin * cout + 12 * 22 * cin + 8 * 9 * cout)
    }

    /// `weight` is `[5 * 5 * cin, cout]` (rows in (ky, kx, c) order). `None` where the kernel
    /// does not apply: another kernel size, `cin` not a multiple of 8, `cout` not a multiple of
    /// 16, or no AVX2/FMA in this build.
    pub fn new(weight: &[f32], bias: Option<&[f32]>, k: usize, cin: usize, cout: usize) -> Option<Self> {
        if !Self::applies(k, cin, cout) {
            return None;
        }
        assert_eq!(weight.len(), R * R * cin * cout);
        let panels = cout / 16;
        let mut u = vec![0.0f32; T * T * cin * cout];
        // G w G^T per input channel, in f64 and rounded once; output channels innermost
        let mut gw = vec![0.0f64; T * R * cout];
        let mut uv = vec![0.0f64; cout];
        for c in 0..cin {
            let w = |ky: usize, kx: usize| &weight[(ky * R + kx) * cin * cout + c * cout..][..cout];
            for a in 0..T {
                for kx in 0..R {
                    let dst = &mut gw[(a * R + kx) * cout..][..cout];
                    dst.fill(0.0);
                    for (ky, g) in G[a].iter().enumerate() {
                        for (d, &v) in dst.iter_mut().zip(w(ky, kx)) {
                            *d += g * v as f64;
                        }
                    }
                }
            }
            for a in 0..T {
                for b in 0..T {
                    uv.fill(0.0);
                    for kx in 0..R {
                        for (d, &v) in uv.iter_mut().zip(&gw[(a * R + kx) * cout..][..cout]) {
                            *d += v * G[b][kx];
                        }
                    }
                    for (q, vals) in uv.chunks_exact(16).enumerate() {
                        let dst = &mut u[(((a * T + b) * panels + q) * cin + c) * 16..][..16];
                        dst.iter_mut().zip(vals).for_each(|(d, &v)| *d = v as f32);
                    }
                }
            }
        }
        let bias = bias.map(|b| b.to_vec()).unwrap_or_else(|| vec![0.0; cout]);
        Some(WinogradConv { cin, cout, u, bias })
    }

    /// `x` is `[n, h, w, cin]`; `y` receives `[n, h-4, w-4, cout]`.
    pub fn forward(&self, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
        let (cin, cout) = (self.cin, self.cout);
        assert!(h >= R && w >= R, "input {h}x{w} smaller than the 5x5 kernel");
        let (oh, ow) = (h - R + 1, w - R + 1);
        assert_eq!(x.len(), n * h * w * cin);
        assert_eq!(y.len(), n * oh * ow * cout);
        let (th, tw) = (oh.div_ceil(M), ow.div_ceil(M));
        let tiles = n * th * tw;
        // per block: transformed inputs [36][12][cin], products [36][12][cout], each point's
        // rows padded (see `point_stride`)
        let mut v = vec![0.0f32; T * T * point_stride(cin)];
        let mut prod = vec![0.0f32; T * T * point_stride(cout)];
        let origin = |t: usize| {
            let (img, rest) = (t / (th * tw), t % (th * tw));
            (img, (rest / tw) * M, (rest % tw) * M)
        };
        let mut t0 = 0;
        while t0 < tiles {
            let count = BLOCK.min(tiles - t0);
            for s in 0..count {
                let (img, y0, x0) = origin(t0 + s);
                self.transform_input(x, img, y0, x0, h, w, s, &mut v);
            }
            // a short last block's spare slots hold earlier tiles: their products go unread
            self.products(&v, &mut prod, count.div_ceil(ROWS));
            for s in 0..count {
                let (img, y0, x0) = origin(t0 + s);
                self.transform_output(&prod, s, img, y0, x0, oh, ow, y);
            }
            t0 += count;
        }
    }

    /// `B^T d B` of the 6x6 tile at `(y0, x0)` of image `img`, into slot `s` of `v`
    /// (`[36][12][cin]`); rows and columns past the input's edge read as zeros.
    #[allow(clippy::too_many_arguments)]
    fn transform_input(
        &self,
        x: &[f32],
        img: usize,
        y0: usize,
        x0: usize,
        h: usize,
        w: usize,
        s: usize,
        v: &mut [f32],
    ) {
        let cin = self.cin;
        let (rows, cols) = (h.saturating_sub(y0).min(T), w.saturating_sub(x0).min(T));
        let first = ((img * h + y0) * w + x0) * cin;
        assert!(rows > 0 && cols > 0 && first + ((rows - 1) * w + cols - 1) * cin + cin <= x.len());
        assert!(v.len() >= T * T * point_stride(cin));
        for c0 in (0..cin).step_by(LANES) {
            // SAFETY: the tile's last pixel's channels end inside `x` and slot `s`'s 36 runs of
            // `cin` inside `v` (asserted above); AVX2/FMA are compiled in wherever a
            // `WinogradConv` exists.
            unsafe {
                simd::input_tile(
                    x.as_ptr().add(first + c0),
                    w * cin,
                    cin,
                    rows,
                    cols,
                    v.as_mut_ptr().add(s * cin + c0),
                    point_stride(cin),
                )
            };
        }
    }

    /// The 36 products of the first `groups` groups of six tiles of a block:
    /// `prod[p][s][o] = sum_c v[p][s][c] * u[p][c][o]`.
    fn products(&self, v: &[f32], prod: &mut [f32], groups: usize) {
        let (cin, cout) = (self.cin, self.cout);
        let panels = cout / 16;
        let (vs, ps) = (point_stride(cin), point_stride(cout));
        assert!(groups * ROWS <= BLOCK && v.len() >= T * T * vs && prod.len() >= T * T * ps);
        for p in 0..T * T {
            for q in 0..panels {
                for g in 0..groups {
                    let s = g * ROWS;
                    // SAFETY: rows s..s + 6 of `v` and `prod` lie inside point `p`'s rows
                    // (asserted above) and panel `q` of its weights inside `u` (by construction).
                    unsafe {
                        simd::products(
                            cin,
                            v.as_ptr().add(p * vs + s * cin),
                            self.u.as_ptr().add((p * panels + q) * cin * 16),
                            prod.as_mut_ptr().add(p * ps + s * cout + q * 16),
                            cout,
                        )
                    };
                }
            }
        }
    }

    /// `A^T m A` plus bias for slot `s` of a block: the 2x2 output pixels at `(y0, x0)`, those
    /// inside the output.
    #[allow(clippy::too_many_arguments)]
    fn transform_output(
        &self,
        prod: &[f32],
        s: usize,
        img: usize,
        y0: usize,
        x0: usize,
        oh: usize,
        ow: usize,
        y: &mut [f32],
    ) {
        let cout = self.cout;
        let (rows, cols) = ((oh - y0).min(M), (ow - x0).min(M));
        let first = ((img * oh + y0) * ow + x0) * cout;
        assert!(first + ((rows - 1) * ow + cols - 1) * cout + cout <= y.len());
        assert!(prod.len() >= T * T * point_stride(cout));
        for o0 in (0..cout).step_by(LANES) {
            // SAFETY: slot `s`'s 36 products and the tile's output pixels are in bounds
            // (asserted above); AVX2/FMA as in `transform_input`.
            unsafe {
                simd::output_tile(
                    prod.as_ptr().add(s * cout + o0),
                    point_stride(cout),
                    self.bias.as_ptr().add(o0),
                    y.as_mut_ptr().add(first + o0),
                    ow * cout,
                    cout,
                    rows,
                    cols,
                )
            };
        }
    }
}

/// The AVX2/FMA kernels. The transforms are the sparse rows of `B^T` and `A^T` written out, the
/// same operations in the same order on every machine of an AVX2/FMA build.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
mod simd {
    use super::{M, ROWS, T};
    use std::arch::x86_64::*;

    /// `B^T d` for six vectors: rows `4 0 -5 0 1 0`, `0 -4 -4 1 1 0`, `0 4 -4 -1 1 0`,
    /// `0 -2 -1 2 1 0`, `0 2 -1 -2 1 0`, `0 4 0 -5 0 1` (the points 0, 1, -1, 2, -2, infinity).
    #[inline(always)]
    unsafe fn bt([d0, d1, d2, d3, d4, d5]: [__m256; T]) -> [__m256; T] {
        let (four, minus_five, two) = (_mm256_set1_ps(4.0), _mm256_set1_ps(-5.0), _mm256_set1_ps(2.0));
        let (d4_d2, d3_d1) = (_mm256_sub_ps(d4, d2), _mm256_sub_ps(d3, d1));
        [
            _mm256_fmadd_ps(four, d0, _mm256_fmadd_ps(minus_five, d2, d4)),
            _mm256_fnmadd_ps(four, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4)),
            _mm256_fmadd_ps(four, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3)),
            _mm256_fmadd_ps(two, d3_d1, d4_d2),
            _mm256_fnmadd_ps(two, d3_d1, d4_d2),
            _mm256_fmadd_ps(four, d1, _mm256_fmadd_ps(minus_five, d3, d5)),
        ]
    }

    /// `A^T m` for six vectors: rows `1 1 1 1 1 0` and `0 1 -1 2 -2 1`.
    #[inline(always)]
    unsafe fn at([m0, m1, m2, m3, m4, m5]: [__m256; T]) -> [__m256; M] {
        [
            _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(m1, m2), _mm256_add_ps(m3, m4)), m0),
            _mm256_fmadd_ps(_mm256_set1_ps(2.0), _mm256_sub_ps(m3, m4), _mm256_add_ps(_mm256_sub_ps(m1, m2), m5)),
        ]
    }

    /// `B^T d B` for 8 channels of one tile: pixel `(i, j)` at `x + i * row + j * col` for
    /// `i < rows`, `j < cols`, zero beyond; output `(i, j)` to `v + (6 i + j) * vs`.
    #[inline(always)]
    pub unsafe fn input_tile(x: *const f32, row: usize, col: usize, rows: usize, cols: usize, v: *mut f32, vs: usize) {
        // per column j, B^T of its six pixels; then per row i, B^T of that row across the
        // columns (index loops: the array adaptors cost a third of the kernel's speed here)
        let mut t = [[_mm256_setzero_ps(); T]; T];
        #[allow(clippy::needless_range_loop)]
        for j in 0..T {
            let column: [__m256; T] = std::array::from_fn(|i| {
                if i < rows && j < cols {
                    _mm256_loadu_ps(x.add(i * row + j * col))
                } else {
                    _mm256_setzero_ps()
                }
            });
            for (i, r) in bt(column).into_iter().enumerate() {
                t[i][j] = r;
            }
        }
        for (i, ti) in t.into_iter().enumerate() {
            for (j, r) in bt(ti).into_iter().enumerate() {
                _mm256_storeu_ps(v.add((i * T + j) * vs), r);
            }
        }
    }

    /// `A^T m A + bias` for 8 channels of one tile: product `(a, b)` at `p + (6 a + b) * ps`;
    /// output pixel `(r, c)` to `y + r * row + c * col` for `r < rows`, `c < cols`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub unsafe fn output_tile(
        p: *const f32,
        ps: usize,
        bias: *const f32,
        y: *mut f32,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    ) {
        // per column b, A^T of its six products; then per output row r, A^T across the columns
        let mut t = [[_mm256_setzero_ps(); T]; M];
        #[allow(clippy::needless_range_loop)]
        for b in 0..T {
            let [r0, r1] = at(std::array::from_fn(|a| _mm256_loadu_ps(p.add((a * T + b) * ps))));
            t[0][b] = r0;
            t[1][b] = r1;
        }
        let bias = _mm256_loadu_ps(bias);
        for (r, tr) in t.into_iter().enumerate().take(rows) {
            for (c, v) in at(tr).into_iter().enumerate().take(cols) {
                _mm256_storeu_ps(y.add(r * row + c * col), _mm256_add_ps(v, bias));
            }
        }
    }

    /// `out[s][o] = sum_c a[s][c] * b[c][o]` for the 6 rows `s` and 16 columns `o`, depth
    /// `cin`; `a` is `[6][cin]`, `b` `[cin][16]`, row `s` of `out` at `out + s * os`.
    #[inline(always)]
    pub unsafe fn products(cin: usize, a: *const f32, b: *const f32, out: *mut f32, os: usize) {
        let mut acc = [_mm256_setzero_ps(); 2 * ROWS];
        for c in 0..cin {
            let b0 = _mm256_loadu_ps(b.add(c * 16));
            let b1 = _mm256_loadu_ps(b.add(c * 16 + 8));
            for s in 0..ROWS {
                let av = _mm256_broadcast_ss(&*a.add(s * cin + c));
                acc[2 * s] = _mm256_fmadd_ps(av, b0, acc[2 * s]);
                acc[2 * s + 1] = _mm256_fmadd_ps(av, b1, acc[2 * s + 1]);
            }
        }
        for s in 0..ROWS {
            _mm256_storeu_ps(out.add(s * os), acc[2 * s]);
            _mm256_storeu_ps(out.add(s * os + 8), acc[2 * s + 1]);
        }
    }
}

/// Never called: `WinogradConv::new` refuses to build without AVX2/FMA.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
mod simd {
    pub unsafe fn input_tile(_: *const f32, _: usize, _: usize, _: usize, _: usize, _: *mut f32, _: usize) {
        unreachable!()
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn output_tile(
        _: *const f32,
        _: usize,
        _: *const f32,
        _: *mut f32,
        _: usize,
        _: usize,
        _: usize,
        _: usize,
    ) {
        unreachable!()
    }
    pub unsafe fn products(_: usize, _: *const f32, _: *const f32, _: *mut f32, _: usize) {
        unreachable!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{im2col_nhwc, matmul, ConvGeom, Threads, Trans};

    #[allow(clippy::too_many_arguments)]
    fn reference(x: &[f32], wt: &[f32], b: &[f32], n: usize, h: usize, w: usize, cin: usize, cout: usize) -> Vec<f32> {
        let (oh, ow) = (h - R + 1, w - R + 1);
        let g = ConvGeom { big_h: h, big_w: w, channels: cin, k: R, stride: 1, pad: 0 };
        let mut cols = vec![0.0; n * oh * ow * g.patch()];
        im2col_nhwc(&g, n, x, &mut cols, false);
        let mut want: Vec<f32> = (0..n * oh * ow).flat_map(|_| b.to_vec()).collect();
        matmul(n * oh * ow, cout, g.patch(), &cols, Trans::No, wt, Trans::No, &mut want, true, Threads::One);
        want
    }

    /// Against im2col + GEMM on even and odd output sizes (odd ones end in half tiles) and a
    /// batch whose tiles do not fill the last block; and a batch split in two gives the same bits.
    #[test]
    fn winograd_matches_the_direct_convolution() {
        for (n, h, w, cin, cout) in [(3, 12, 12, 16, 32), (2, 11, 9, 8, 16), (1, 5, 5, 24, 48), (5, 7, 12, 16, 16)] {
            let x: Vec<f32> = (0..n * h * w * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let wt: Vec<f32> = (0..R * R * cin * cout).map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0).collect();
            let b: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let Some(wc) = WinogradConv::new(&wt, Some(&b), R, cin, cout) else { return };
            let (oh, ow) = (h - R + 1, w - R + 1);
            let mut y = vec![f32::NAN; n * oh * ow * cout];
            wc.forward(&x, n, h, w, &mut y);
            let want = reference(&x, &wt, &b, n, h, w, cin, cout);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() <= 1e-5 * scale, "{n}x{h}x{w}x{cin}->{cout}: {a} vs {e}");
            }
            let (first, rest) = (n / 2, n - n / 2);
            let one = oh * ow * cout;
            let mut y2 = vec![0.0; n * one];
            wc.forward(&x[..first * h * w * cin], first, h, w, &mut y2[..first * one]);
            wc.forward(&x[first * h * w * cin..], rest, h, w, &mut y2[first * one..]);
            assert_eq!(y, y2, "the bits depend on the batch");
        }
    }

    #[test]
    fn other_shapes_are_left_to_other_kernels() {
        let wt = vec![0.0; 9 * 16 * 16];
        assert!(WinogradConv::new(&wt, None, 3, 16, 16).is_none());
        assert!(WinogradConv::new(&vec![0.0; 25 * 16], None, 5, 1, 16).is_none());
        assert!(WinogradConv::new(&vec![0.0; 25 * 16 * 8], None, 5, 16, 8).is_none());
    }
}

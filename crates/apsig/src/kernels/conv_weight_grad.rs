//! The weight gradient of a valid stride-1 convolution of channels-last tensors, read in place:
//! `dw[(ky, kx, c), o] = sum over (image, oy, ox) of x[image, oy + ky, ox + kx, c] * dy[image, oy, ox, o]`.
//!
//! As a GEMM this is `cols^T dy`, with `cols` the im2col matrix, a skinny product (25 x 16 or
//! 400 x 32 outputs over thousands of rows) that a general GEMM runs far from its peak, after
//! writing `cols` out. Here the register tile is 5 weight rows x 16 output channels: for one
//! kernel row `ky`, the `k * cin` weight rows `(kx, c)` of an output pixel are `k * cin`
//! consecutive input values, so five of them are five broadcasts from one place, and the
//! tile's ten accumulators run over every output pixel before they are stored once.

/// Weight rows per register tile.
const ROWS: usize = 5;
/// Images per pass through all the tiles.
const IMAGES_PER_PASS: usize = 2;

/// Whether the kernel serves a convolution of this shape in this build: the `k * cin` weight
/// rows of a kernel row split into tiles of five, and whole panels of 16 output channels.
pub fn conv_weight_grad_applies(k: usize, cin: usize, cout: usize) -> bool {
    cfg!(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))
        && k > 0
        && (k * cin) > 0
        && (k * cin).is_multiple_of(ROWS)
        && cout > 0
        && cout.is_multiple_of(16)
}

/// `dw` (`[k * k * cin, cout]`, overwritten) from `x` (`[n, h, w, cin]`) and `dy`
/// (`[n, h - k + 1, w - k + 1, cout]`). Each weight's products are added in the order of the
/// output pixels, so the bits depend only on the inputs. Panics unless
/// [`conv_weight_grad_applies`].
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_grad(
    x: &[f32],
    dy: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    k: usize,
    cout: usize,
    dw: &mut [f32],
) {
    assert!(conv_weight_grad_applies(k, cin, cout), "no direct weight gradient for k {k}, cin {cin}, cout {cout}");
    assert!(h >= k && w >= k, "input {h}x{w} smaller than the kernel {k}");
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert_eq!(x.len(), n * h * w * cin);
    assert_eq!(dy.len(), n * oh * ow * cout);
    assert_eq!(dw.len(), k * k * cin * cout);
    let run = k * cin;
    dw.fill(0.0);
    let walk = |images| Walk {
        images,
        rows: oh,
        cols: ow,
        x_row: w * cin,
        x_image: h * w * cin,
        x_col: cin,
        dy_row: ow * cout,
        dy_image: oh * ow * cout,
        dy_col: cout,
    };
    // a few images at a time through every tile, so they stay in L1 while the tiles pass
    // over them; each tile picks up its sums where the last pass left them, so the products
    // are still added in the order of the output pixels
    for i0 in (0..n).step_by(IMAGES_PER_PASS) {
        let g = walk(IMAGES_PER_PASS.min(n - i0));
        for ky in 0..k {
            for r0 in (0..run).step_by(ROWS) {
                for o0 in (0..cout).step_by(16) {
                    // SAFETY: the pass's last pixel reads end at (ky + oh - 1, ow - 1 + kx) of
                    // its last image's input, channel r0 + ROWS <= k * cin (inside its row:
                    // ox + kx < w), and at its output pixel's channel o0 + 16 <= cout; the tile's
                    // five rows of 16 sums end at row ky * run + r0 + 4 < k * run, column
                    // o0 + 16 <= cout of `dw`. The lengths of all three are asserted above.
                    unsafe {
                        simd::tile(
                            x.as_ptr().add(i0 * h * w * cin + ky * w * cin + r0),
                            dy.as_ptr().add(i0 * oh * ow * cout + o0),
                            &g,
                            dw.as_mut_ptr().add((ky * run + r0) * cout + o0),
                            cout,
                        )
                    };
                }
            }
        }
    }
}

/// How the tile walks the output pixels: `images x rows x cols` of them, and the strides
/// between pixels, rows and images in `x` and in `dy`.
struct Walk {
    images: usize,
    rows: usize,
    cols: usize,
    x_col: usize,
    x_row: usize,
    x_image: usize,
    dy_col: usize,
    dy_row: usize,
    dy_image: usize,
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
mod simd {
    use super::{Walk, ROWS};
    use std::arch::x86_64::*;

    /// The tile over the pass's output pixels, in order: pixel `(image, row, col)` reads five
    /// inputs at `x + image * x_image + row * x_row + col * x_col` and 16 gradients at the same
    /// offsets of `dy`; the sums, five rows of 16 at `dw + i * dw_row`, are loaded once and stored
    /// once.
    #[inline(always)]
    pub unsafe fn tile(x: *const f32, dy: *const f32, g: &Walk, dw: *mut f32, dw_row: usize) {
        let mut a: [__m256; 2 * ROWS] =
            std::array::from_fn(|j| _mm256_loadu_ps(dw.add((j / 2) * dw_row + 8 * (j % 2))));
        for img in 0..g.images {
            for r in 0..g.rows {
                let xr = x.add(img * g.x_image + r * g.x_row);
                let dr = dy.add(img * g.dy_image + r * g.dy_row);
                for c in 0..g.cols {
                    let d0 = _mm256_loadu_ps(dr.add(c * g.dy_col));
                    let d1 = _mm256_loadu_ps(dr.add(c * g.dy_col + 8));
                    for i in 0..ROWS {
                        let v = _mm256_broadcast_ss(&*xr.add(c * g.x_col + i));
                        a[2 * i] = _mm256_fmadd_ps(v, d0, a[2 * i]);
                        a[2 * i + 1] = _mm256_fmadd_ps(v, d1, a[2 * i + 1]);
                    }
                }
            }
        }
        for (j, v) in a.into_iter().enumerate() {
            _mm256_storeu_ps(dw.add((j / 2) * dw_row + 8 * (j % 2)), v);
        }
    }
}

/// Never called: `conv_weight_grad_applies` is false without AVX2/FMA.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
mod simd {
    pub unsafe fn tile(_: *const f32, _: *const f32, _: &super::Walk, _: *mut f32, _: usize) {
        unreachable!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{im2col_nhwc, matmul, ConvGeom, Threads, Trans};

    /// Against im2col + GEMM, for TargetNet-S's two shapes and a 3x3 one.
    #[test]
    fn matches_im2col_gemm() {
        for (n, h, w, cin, k, cout) in [(3, 28, 28, 1, 5, 16), (4, 12, 12, 16, 5, 32), (2, 7, 9, 5, 3, 16)] {
            if !conv_weight_grad_applies(k, cin, cout) {
                return;
            }
            let (oh, ow) = (h - k + 1, w - k + 1);
            let x: Vec<f32> = (0..n * h * w * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let dy: Vec<f32> = (0..n * oh * ow * cout).map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0).collect();
            let mut dw = vec![f32::NAN; k * k * cin * cout];
            conv_weight_grad(&x, &dy, n, h, w, cin, k, cout, &mut dw);
            let g = ConvGeom { big_h: h, big_w: w, channels: cin, k, stride: 1, pad: 0 };
            let mut cols = vec![0.0; n * oh * ow * g.patch()];
            im2col_nhwc(&g, n, &x, &mut cols, false);
            let mut want = vec![0.0; dw.len()];
            matmul(g.patch(), cout, n * oh * ow, &cols, Trans::Yes, &dy, Trans::No, &mut want, false, Threads::One);
            for (a, e) in dw.iter().zip(&want) {
                assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{n}x{h}x{w}x{cin} k {k} -> {cout}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn shapes_it_cannot_tile_are_refused() {
        assert!(!conv_weight_grad_applies(3, 1, 16));
        assert!(!conv_weight_grad_applies(5, 1, 8));
        assert!(!conv_weight_grad_applies(5, 0, 16));
    }
}

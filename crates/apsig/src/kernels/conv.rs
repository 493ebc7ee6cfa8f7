//! im2col / col2im and 2x2 max-pooling for channels-last (NHWC) tensors.
//!
//! `im2col` turns a convolution into one GEMM; `col2im` is its exact adjoint, which makes it
//! both the backward pass of a convolution and the forward pass of a transposed convolution.

use rayon::prelude::*;

/// Geometry of a square-kernel convolution from a `big` image to a `small` one:
/// `small[oy, ox]` reads `big[oy*stride - pad + ky, ox*stride - pad + kx]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input height.
    pub big_h: usize,
    /// Input width.
    pub big_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvGeom {
    /// Output height.
    pub fn small_h(&self) -> usize {
        (self.big_h + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Output width.
    pub fn small_w(&self) -> usize {
        (self.big_w + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Width of one im2col row: `k * k * channels`.
    pub fn patch(&self) -> usize {
        self.k * self.k * self.channels
    }
    fn big_len(&self) -> usize {
        self.big_h * self.big_w * self.channels
    }
    fn rows(&self) -> usize {
        self.small_h() * self.small_w()
    }
}

/// Gathers patches: `big` is `[n, big_h, big_w, channels]`, `cols` is `[n*small_h*small_w, patch]`.
pub fn im2col_nhwc(g: &ConvGeom, n: usize, big: &[f32], cols: &mut [f32], parallel: bool) {
    let (bl, rows, patch) = (g.big_len(), g.rows(), g.patch());
    assert_eq!(big.len(), n * bl);
    assert_eq!(cols.len(), n * rows * patch);
    let one = |(img, out): (&[f32], &mut [f32])| im2col_one(g, img, out);
    if parallel {
        big.par_chunks(bl).zip(cols.par_chunks_mut(rows * patch)).for_each(one);
    } else {
        big.chunks(bl).zip(cols.chunks_mut(rows * patch)).for_each(one);
    }
}

fn im2col_one(g: &ConvGeom, img: &[f32], cols: &mut [f32]) {
    let (sh, sw, c, k) = (g.small_h(), g.small_w(), g.channels, g.k);
    let run = k * c; // one kernel row is contiguous in NHWC when fully inside the image
    let mut o = 0;
    for oy in 0..sh {
        for ox in 0..sw {
            for ky in 0..k {
                let y = (oy * g.stride + ky) as isize - g.pad as isize;
                let x0 = (ox * g.stride) as isize - g.pad as isize;
                let dst = &mut cols[o..o + run];
                if y < 0 || y >= g.big_h as isize {
                    dst.fill(0.0);
                } else if x0 >= 0 && x0 as usize + k <= g.big_w {
                    let s = (y as usize * g.big_w + x0 as usize) * c;
                    copy_run(dst, &img[s..s + run]);
                } else {
                    for kx in 0..k {
                        let x = x0 + kx as isize;
                        let d = &mut dst[kx * c..(kx + 1) * c];
                        if x < 0 || x >= g.big_w as isize {
                            d.fill(0.0);
                        } else {
                            let s = (y as usize * g.big_w + x as usize) * c;
                            copy_run(d, &img[s..s + c]);
                        }
                    }
                }
                o += run;
            }
        }
    }
}

/// `dst = src` for slices of equal length. The short runs of one- and three-channel images
/// (a 5x5 kernel row of a grey image is 5 floats) are copied as fixed-size arrays: a call to
/// `memcpy` for every 5 floats took 12% of TargetNet-S's training step.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("equal lengths");
        *d = *<&[f32; N]>::try_from(src).expect("equal lengths");
    }
    match dst.len() {
        1 => fixed::<1>(dst, src),
        3 => fixed::<3>(dst, src),
        5 => fixed::<5>(dst, src),
        9 => fixed::<9>(dst, src),
        15 => fixed::<15>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Scatters patches back, adding: the adjoint of [`im2col_nhwc`]. `big` is overwritten.
pub fn col2im_nhwc(g: &ConvGeom, n: usize, cols: &[f32], big: &mut [f32]) {
    let (bl, rows, patch) = (g.big_len(), g.rows(), g.patch());
    assert_eq!(big.len(), n * bl);
    assert_eq!(cols.len(), n * rows * patch);
    big.par_chunks_mut(bl).zip(cols.par_chunks(rows * patch)).for_each(|(img, cols)| {
        img.fill(0.0);
        let (sh, sw, c, k) = (g.small_h(), g.small_w(), g.channels, g.k);
        if (g.stride, g.pad) == (1, 0) {
            // a valid convolution: a kernel row's k pixels are one run of k * c values in the
            // image, added 8 lanes at a time (the same additions in the same order)
            let run = k * c;
            for (o, patch) in cols.chunks_exact(k * run).enumerate() {
                let (oy, ox) = (o / sw, o % sw);
                for (ky, src) in patch.chunks_exact(run).enumerate() {
                    let s = ((oy + ky) * g.big_w + ox) * c;
                    add_into(&mut img[s..s + run], src);
                }
            }
            return;
        }
        let mut o = 0;
        for oy in 0..sh {
            for ox in 0..sw {
                for ky in 0..k {
                    let y = (oy * g.stride + ky) as isize - g.pad as isize;
                    for kx in 0..k {
                        let x = (ox * g.stride + kx) as isize - g.pad as isize;
                        if y >= 0 && y < g.big_h as isize && x >= 0 && x < g.big_w as isize {
                            let s = (y as usize * g.big_w + x as usize) * c;
                            for (d, v) in img[s..s + c].iter_mut().zip(&cols[o..o + c]) {
                                *d += v;
                            }
                        }
                        o += c;
                    }
                }
            }
        }
    });
}

/// `dst += src`, element by element, eight lanes at a time.
#[inline(always)]
fn add_into(dst: &mut [f32], src: &[f32]) {
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        for l in 0..8 {
            d[l] += s[l];
        }
    }
    for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
        *d += s;
    }
}

/// 2x2 max-pool with stride 2 (floor) on `[n, h, w, c]`; `argmax` (if given) records the
/// flat input index chosen for each output, for the backward pass.
pub fn maxpool2_nhwc(n: usize, h: usize, w: usize, c: usize, x: &[f32], y: &mut [f32], argmax: Option<&mut [u32]>) {
    let Some(arg) = argmax else {
        return maxpool2_nhwc_infer(n, h, w, c, x, y, false);
    };
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(y.len(), n * oh * ow * c);
    assert_eq!(arg.len(), y.len());
    let mut o = 0;
    for b in 0..n {
        let base = b * h * w * c;
        for oy in 0..oh {
            for ox in 0..ow {
                let i00 = base + ((2 * oy) * w + 2 * ox) * c;
                let i = [i00, i00 + c, i00 + w * c, i00 + w * c + c];
                let (yo, ao) = (&mut y[o..o + c], &mut arg[o..o + c]);
                let rows = [&x[i[0]..i[0] + c], &x[i[1]..i[1] + c], &x[i[2]..i[2] + c], &x[i[3]..i[3] + c]];
                // selects, not branches: the first maximum wins, as before, and it vectorises
                for ch in 0..c {
                    let (mut v, mut at) = (rows[0][ch], i[0] + ch);
                    for q in 1..4 {
                        let cand = rows[q][ch];
                        let better = cand > v;
                        v = if better { cand } else { v };
                        at = if better { i[q] + ch } else { at };
                    }
                    yo[ch] = v;
                    ao[ch] = at as u32;
                }
                o += c;
            }
        }
    }
}

/// Inference max-pool (no argmax to record), optionally fused with the ReLU that follows it:
/// branch-free over whole channel rows, so it vectorises.
pub fn maxpool2_nhwc_infer(n: usize, h: usize, w: usize, c: usize, x: &[f32], y: &mut [f32], relu: bool) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(y.len(), n * oh * ow * c);
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    for (b, img) in y.chunks_exact_mut(oh * ow * c).enumerate() {
        let src = &x[b * h * w * c..(b + 1) * h * w * c];
        for oy in 0..oh {
            let top = &src[(2 * oy) * w * c..(2 * oy + 1) * w * c];
            let bottom = &src[(2 * oy + 1) * w * c..(2 * oy + 2) * w * c];
            for ox in 0..ow {
                let out = &mut img[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
                let (a, b2) = (&top[2 * ox * c..(2 * ox + 1) * c], &top[(2 * ox + 1) * c..(2 * ox + 2) * c]);
                let (d, e) = (&bottom[2 * ox * c..(2 * ox + 1) * c], &bottom[(2 * ox + 1) * c..(2 * ox + 2) * c]);
                for ((((o, a), b2), d), e) in out.iter_mut().zip(a).zip(b2).zip(d).zip(e) {
                    *o = a.max(*b2).max(d.max(*e)).max(floor);
                }
            }
        }
    }
}

/// `y = maxpool2(base + eps * dir)` for one `[h, w, c]` image, never writing the sum
/// (slice-wise and branch-free, so it vectorises).
pub fn axpy_maxpool2(base: &[f32], dir: &[f32], eps: f32, h: usize, w: usize, c: usize, y: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(base.len() == h * w * c && dir.len() == base.len() && y.len() == oh * ow * c);
    let row = w * c;
    for oy in 0..oh {
        let (bt, bb) = (&base[2 * oy * row..(2 * oy + 1) * row], &base[(2 * oy + 1) * row..(2 * oy + 2) * row]);
        let (dt, db) = (&dir[2 * oy * row..(2 * oy + 1) * row], &dir[(2 * oy + 1) * row..(2 * oy + 2) * row]);
        for ox in 0..ow {
            let (l, r) = (2 * ox * c..(2 * ox + 1) * c, (2 * ox + 1) * c..(2 * ox + 2) * c);
            let out = &mut y[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            let quads = bt[l.clone()].iter().zip(&dt[l.clone()]).zip(bt[r.clone()].iter().zip(&dt[r.clone()]));
            let quads = quads.zip(bb[l.clone()].iter().zip(&db[l]).zip(bb[r.clone()].iter().zip(&db[r])));
            for (o, (((b0, d0), (b1, d1)), ((b2, d2), (b3, d3)))) in out.iter_mut().zip(quads) {
                let v0 = b0 + eps * d0;
                let v1 = b1 + eps * d1;
                let v2 = b2 + eps * d2;
                let v3 = b3 + eps * d3;
                *o = v0.max(v1).max(v2.max(v3));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_pool_matches_the_training_pool() {
        let (n, h, w, c) = (2, 6, 4, 3);
        let x: Vec<f32> = (0..n * h * w * c).map(|i| ((i * 37 % 23) as f32) - 11.0).collect();
        let mut a = vec![0.0; n * 3 * 2 * c];
        let mut b = a.clone();
        let mut idx = vec![0u32; a.len()];
        maxpool2_nhwc(n, h, w, c, &x, &mut a, Some(&mut idx));
        maxpool2_nhwc_infer(n, h, w, c, &x, &mut b, false);
        assert_eq!(a, b);
        maxpool2_nhwc_infer(n, h, w, c, &x, &mut b, true);
        assert_eq!(a.iter().map(|v| v.max(0.0)).collect::<Vec<_>>(), b);
    }

    #[test]
    fn col2im_is_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x, c: the property backward passes rely on.
        for (k, stride, pad) in [(5, 1, 0), (4, 2, 1), (3, 1, 1)] {
            let g = ConvGeom { big_h: 9, big_w: 8, channels: 3, k, stride, pad };
            let n = 2;
            let x: Vec<f32> = (0..n * 9 * 8 * 3).map(|i| ((i * 31 % 17) as f32) - 8.0).collect();
            let rows = n * g.small_h() * g.small_w() * g.patch();
            let c: Vec<f32> = (0..rows).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
            let mut cols = vec![0.0; rows];
            im2col_nhwc(&g, n, &x, &mut cols, true);
            let mut back = vec![0.0; x.len()];
            col2im_nhwc(&g, n, &c, &mut back);
            let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            assert!((lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn maxpool_picks_the_maximum() {
        let x = vec![1.0, 5.0, 2.0, 3.0, /* row 2 */ 4.0, 0.0, 9.0, 8.0];
        let mut y = vec![0.0; 2];
        let mut a = vec![0u32; 2];
        maxpool2_nhwc(1, 2, 4, 1, &x, &mut y, Some(&mut a));
        assert_eq!(y, vec![5.0, 9.0]);
        assert_eq!(a, vec![1, 6]);
    }
}

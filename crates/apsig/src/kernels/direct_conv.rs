//! A direct (im2col-free) valid convolution for channels-last tensors, with an AVX2/FMA
//! 6x16 register-blocked micro-kernel, and two AVX-512 ones where the CPU has AVX-512: 6x32
//! (two panels at once) when `cout` is a multiple of 32, and 12x16 (twelve output pixels per
//! panel) otherwise, e.g. TargetNet-S's first layer with 16 outputs. This is the oracle's hot
//! spot: TargetNet-S's second convolution is ~92% of the multiply-adds of every probe. All
//! kernels add the same products in the same order, so they give the same bits.
//!
//! Each output pixel is a row; its patch is read in place from the input, one contiguous
//! run of `k * cin` floats per kernel row, so no patch matrix is ever written.

/// Weights packed as `[cout / 16][k * k * cin][16]` for the micro-kernel.
pub struct PackedConv {
    k: usize,
    cin: usize,
    cout: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
    /// The micro-kernel (AVX-512 detected at run time).
    kernel: Kernel,
}

/// Which micro-kernel a [`PackedConv`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// AVX2: 6 output pixels x 16 channels.
    Avx2x6x16,
    /// AVX-512: 6 output pixels x 32 channels (two panels).
    Avx512x6x32,
    /// AVX-512: 12 output pixels x 16 channels.
    Avx512x12x16,
}

impl Kernel {
    fn for_cout(cout: usize) -> Self {
        match (has_avx512(), cout.is_multiple_of(32)) {
            (false, _) => Kernel::Avx2x6x16,
            (true, true) => Kernel::Avx512x6x32,
            (true, false) => Kernel::Avx512x12x16,
        }
    }
}

impl PackedConv {
    /// `weight` is `[k * k * cin, cout]` (rows in (ky, kx, c) order); `None` when this kernel
    /// does not apply (cout not a multiple of 16, or no AVX2/FMA in this build).
    pub fn new(weight: &[f32], bias: Option<&[f32]>, k: usize, cin: usize, cout: usize) -> Option<Self> {
        if !cfg!(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))
            || !cout.is_multiple_of(16)
            || cout == 0
        {
            return None;
        }
        let depth = k * k * cin;
        assert_eq!(weight.len(), depth * cout);
        let mut panels = vec![0.0f32; depth * cout];
        for p in 0..cout / 16 {
            for d in 0..depth {
                let dst = &mut panels[(p * depth + d) * 16..(p * depth + d + 1) * 16];
                dst.copy_from_slice(&weight[d * cout + p * 16..d * cout + p * 16 + 16]);
            }
        }
        let bias = bias.map(|b| b.to_vec()).unwrap_or_else(|| vec![0.0; cout]);
        Some(PackedConv { k, cin, cout, panels, bias, kernel: Kernel::for_cout(cout) })
    }

    /// `x` is `[n, h, w, cin]`; `y` receives `[n, h-k+1, w-k+1, cout]`.
    pub fn forward(&self, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
        let (k, cin, cout) = (self.k, self.cin, self.cout);
        let (oh, ow) = (h - k + 1, w - k + 1);
        assert_eq!(x.len(), n * h * w * cin);
        assert_eq!(y.len(), n * oh * ow * cout);
        // one loop per block height, so each kernel's loop is as lean as if it were the only one
        if self.kernel == Kernel::Avx512x12x16 {
            self.blocks::<12>(x, n, h, w, y);
        } else {
            self.blocks::<6>(x, n, h, w, y);
        }
    }

    /// The output in blocks of `R` pixels (`R` = the kernel's rows).
    fn blocks<const R: usize>(&self, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
        let (k, cin, cout) = (self.k, self.cin, self.cout);
        let (oh, ow) = (h - k + 1, w - k + 1);
        let rows = n * oh * ow;
        let depth = k * k * cin;
        // (image, oy, ox) of the next output pixel, advanced by counting: integer divisions
        // per row would cost as much as the whole 5x5x1 patch of a first layer
        let (mut img, mut oy, mut ox) = (0usize, 0usize, 0usize);
        let mut r = 0;
        while r < rows {
            let m = (rows - r).min(R);
            let mut offs = [0usize; R];
            for o in offs.iter_mut().take(m) {
                *o = ((img * h + oy) * w + ox) * cin;
                ox += 1;
                if ox == ow {
                    ox = 0;
                    oy += 1;
                    if oy == oh {
                        oy = 0;
                        img += 1;
                    }
                }
            }
            let last = offs[m - 1];
            offs[m..].iter_mut().for_each(|o| *o = last);
            // SAFETY (all three): every offset + ky*w*cin + k*cin <= x.len() because each origin
            // is a valid output pixel of a valid convolution; panels hold depth*16 floats per
            // panel; the AVX-512 kernels are chosen only where the CPU has AVX-512F.
            match self.kernel {
                Kernel::Avx512x12x16 => {
                    let twelve: &[usize; 12] = offs[..].try_into().expect("blocks of 12 for the 12-pixel kernel");
                    for p in 0..cout / 16 {
                        let mut out = [[0.0f32; 16]; 12];
                        let panel = &self.panels[p * depth * 16..];
                        unsafe { micro_12x16_avx512(x, twelve, panel, k, k * cin, w * cin, &mut out) };
                        self.store(y, r, m, p * 16, &out);
                    }
                }
                Kernel::Avx512x6x32 => {
                    let six: &[usize; 6] = offs[..].try_into().expect("blocks of 6 for the 6-pixel kernels");
                    for p in (0..cout / 16).step_by(2) {
                        let mut out = [[0.0f32; 32]; 6];
                        let (a, b) = (&self.panels[p * depth * 16..], &self.panels[(p + 1) * depth * 16..]);
                        unsafe { micro_6x32_avx512(x, six, a, b, k, k * cin, w * cin, &mut out) };
                        self.store(y, r, m, p * 16, &out);
                    }
                }
                Kernel::Avx2x6x16 => {
                    let six: &[usize; 6] = offs[..].try_into().expect("blocks of 6 for the 6-pixel kernels");
                    for p in 0..cout / 16 {
                        let mut out = [[0.0f32; 16]; 6];
                        unsafe { micro_6x16(x, six, &self.panels[p * depth * 16..], k, k * cin, w * cin, &mut out) };
                        self.store(y, r, m, p * 16, &out);
                    }
                }
            }
            r += m;
        }
    }

    /// Writes the first `m` rows of a micro-kernel's `out` (channels `c0..c0 + W`) plus bias
    /// into the output rows `r..r + m`.
    fn store<const W: usize, const R: usize>(&self, y: &mut [f32], r: usize, m: usize, c0: usize, out: &[[f32; W]; R]) {
        // fixed-size arrays, so the sums are vector adds (over slices they were scalar: a
        // third of a grey first layer's time)
        let bias: &[f32; W] = self.bias[c0..c0 + W].try_into().expect("W channels of bias");
        for (i, o) in out.iter().enumerate().take(m) {
            let at = (r + i) * self.cout + c0;
            let dst: &mut [f32; W] = (&mut y[at..at + W]).try_into().expect("W channels of output");
            *dst = std::array::from_fn(|j| o[j] + bias[j]);
        }
    }
}

/// Whether the CPU has AVX-512F (and this build the AVX2/FMA baseline the kernels assume): the
/// kernels here and the `gemm` crate's then run 16 lanes wide.
pub fn has_avx512() -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
    false
}

/// The 6x16 kernel on two panels at once, 16 lanes wide: each broadcast of an input value
/// feeds two FMAs, and each accumulator lane adds the same products in the same order as
/// `micro_6x16`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_6x32_avx512(
    x: &[f32],
    offs: &[usize; 6],
    panel0: &[f32],
    panel1: &[f32],
    k: usize,
    run: usize,
    row_stride: usize,
    out: &mut [[f32; 32]; 6],
) {
    use std::arch::x86_64::*;
    let xp = x.as_ptr();
    let (mut p0, mut p1) = (panel0.as_ptr(), panel1.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 12];
    for ky in 0..k {
        let base = ky * row_stride;
        let a: [*const f32; 6] = std::array::from_fn(|i| xp.add(offs[i] + base));
        for t in 0..run {
            let b0 = _mm512_loadu_ps(p0);
            let b1 = _mm512_loadu_ps(p1);
            p0 = p0.add(16);
            p1 = p1.add(16);
            for i in 0..6 {
                let av = _mm512_set1_ps(*a[i].add(t));
                acc[2 * i] = _mm512_fmadd_ps(av, b0, acc[2 * i]);
                acc[2 * i + 1] = _mm512_fmadd_ps(av, b1, acc[2 * i + 1]);
            }
        }
    }
    for i in 0..6 {
        _mm512_storeu_ps(out[i].as_mut_ptr(), acc[2 * i]);
        _mm512_storeu_ps(out[i].as_mut_ptr().add(16), acc[2 * i + 1]);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_6x32_avx512(
    _: &[f32],
    _: &[usize; 6],
    _: &[f32],
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: &mut [[f32; 32]; 6],
) {
    unreachable!("PackedConv::new enables it only on AVX-512 CPUs of an AVX2/FMA build")
}

/// The 6x16 kernel's panel for twelve output pixels, 16 lanes wide: one panel load feeds twelve
/// FMAs, and each accumulator lane adds the same products in the same order as `micro_6x16`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[target_feature(enable = "avx512f")]
unsafe fn micro_12x16_avx512(
    x: &[f32],
    offs: &[usize; 12],
    panel: &[f32],
    k: usize,
    run: usize,
    row_stride: usize,
    out: &mut [[f32; 16]; 12],
) {
    use std::arch::x86_64::*;
    let xp = x.as_ptr();
    let mut bp = panel.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 12];
    for ky in 0..k {
        let base = ky * row_stride;
        let a: [*const f32; 12] = std::array::from_fn(|i| xp.add(offs[i] + base));
        for t in 0..run {
            let b = _mm512_loadu_ps(bp);
            bp = bp.add(16);
            for i in 0..12 {
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(*a[i].add(t)), b, acc[i]);
            }
        }
    }
    for i in 0..12 {
        _mm512_storeu_ps(out[i].as_mut_ptr(), acc[i]);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
unsafe fn micro_12x16_avx512(
    _: &[f32],
    _: &[usize; 12],
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: &mut [[f32; 16]; 12],
) {
    unreachable!("PackedConv::new enables it only on AVX-512 CPUs of an AVX2/FMA build")
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[inline(always)]
unsafe fn micro_6x16(
    x: &[f32],
    offs: &[usize; 6],
    panel: &[f32],
    k: usize,
    run: usize,
    row_stride: usize,
    out: &mut [[f32; 16]; 6],
) {
    use std::arch::x86_64::*;
    let xp = x.as_ptr();
    let mut bp = panel.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 12];
    for ky in 0..k {
        let base = ky * row_stride;
        let a: [*const f32; 6] = std::array::from_fn(|i| xp.add(offs[i] + base));
        for t in 0..run {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            bp = bp.add(16);
            for i in 0..6 {
                let av = _mm256_broadcast_ss(&*a[i].add(t));
                acc[2 * i] = _mm256_fmadd_ps(av, b0, acc[2 * i]);
                acc[2 * i + 1] = _mm256_fmadd_ps(av, b1, acc[2 * i + 1]);
            }
        }
    }
    for i in 0..6 {
        _mm256_storeu_ps(out[i].as_mut_ptr(), acc[2 * i]);
        _mm256_storeu_ps(out[i].as_mut_ptr().add(8), acc[2 * i + 1]);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
unsafe fn micro_6x16(_: &[f32], _: &[usize; 6], _: &[f32], _: usize, _: usize, _: usize, _: &mut [[f32; 16]; 6]) {
    unreachable!("PackedConv::new refuses to build without AVX2/FMA")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{im2col_nhwc, matmul, ConvGeom, Threads, Trans};

    /// Every kernel against im2col + GEMM, and all kernels that run on this CPU against each
    /// other bit for bit; 147 output pixels leave a tail for the 6- and the 12-pixel kernels.
    #[test]
    fn direct_conv_matches_im2col_gemm() {
        let (n, h, w, k) = (3, 11, 11, 5);
        for (cin, cout) in [(16, 32), (1, 16), (3, 48)] {
            let x: Vec<f32> = (0..n * h * w * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let wt: Vec<f32> = (0..k * k * cin * cout).map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0).collect();
            let b: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let Some(pc) = PackedConv::new(&wt, Some(&b), k, cin, cout) else { return };
            let (oh, ow) = (h - k + 1, w - k + 1);
            let mut y = vec![0.0; n * oh * ow * cout];
            pc.forward(&x, n, h, w, &mut y);
            let g = ConvGeom { big_h: h, big_w: w, channels: cin, k, stride: 1, pad: 0 };
            let mut cols = vec![0.0; n * oh * ow * g.patch()];
            im2col_nhwc(&g, n, &x, &mut cols, false);
            let mut want: Vec<f32> = (0..n * oh * ow).flat_map(|_| b.clone()).collect();
            matmul(n * oh * ow, cout, g.patch(), &cols, Trans::No, &wt, Trans::No, &mut want, true, Threads::One);
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() < 1e-3 * (1.0 + e.abs()), "cin {cin} cout {cout}: {a} vs {e}");
            }
            let mut kernels = vec![Kernel::Avx2x6x16];
            if has_avx512() {
                kernels.push(Kernel::Avx512x12x16);
                if cout % 32 == 0 {
                    kernels.push(Kernel::Avx512x6x32);
                }
            }
            for kernel in kernels {
                let other = PackedConv { kernel, ..PackedConv::new(&wt, Some(&b), k, cin, cout).unwrap() };
                let mut y2 = vec![0.0; y.len()];
                other.forward(&x, n, h, w, &mut y2);
                assert_eq!(y, y2, "cin {cin} cout {cout}: {kernel:?} differs from {:?}", pc.kernel);
            }
        }
    }
}

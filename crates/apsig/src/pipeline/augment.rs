//! More training pairs for the decoder from the adversary's own images. It may measure
//! white-box signatures of any image it owns, so besides its images it measures small affine
//! changes of them (rotation, scale, shear, shift): pairs near the data, which the decoder's
//! capacity turns into lower error on secrets (issue 12, "more training pairs"). A colour
//! copy may also swap the colour channels, so the decoder sees each shape in more colours.

use apsig_data::Split;
use rayon::prelude::*;

use crate::rng::Rng;

/// `split`'s first `count` images, then `copies` rounds of one affine change of each (round
/// `r` holds image `i`'s change at index `count * (r + 1) + i`), labels kept. With
/// `permute_channels`, each copy of a colour image also gets a random order of its channels
/// other than its own. The changes are fixed by `seed` and the index alone, so any thread
/// count gives the same images.
pub fn with_affine_copies(split: &Split, count: usize, copies: usize, permute_channels: bool, seed: u64) -> Split {
    let count = count.min(split.n);
    let px = split.pixels();
    let mut out = split.subset(&(0..count).collect::<Vec<_>>());
    let mut extra = vec![0f32; count * copies * px];
    extra.par_chunks_mut(px).enumerate().for_each(|(j, dst)| {
        let i = j % count;
        let mut rng = Rng::new(seed ^ (j as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        affine(split.image(i), dst, split.rows, split.cols, split.channels, &mut rng);
        if permute_channels && split.channels == 3 {
            permute(dst, &mut rng);
        }
    });
    out.images.extend_from_slice(&extra);
    for _ in 0..copies {
        out.labels.extend_from_slice(&split.labels[..count]);
    }
    out.n = count * (1 + copies);
    out
}

/// One random affine change of an `h x w x c` image into `dst`: rotation up to 10 degrees,
/// scale 0.9 to 1.1, shear up to 0.3, shift up to one pixel, about the centre; bilinear, and
/// the border pixel repeated outside (a colour image keeps its background).
fn affine(src: &[f32], dst: &mut [f32], h: usize, w: usize, c: usize, rng: &mut Rng) {
    let mut uniform = |a: f32, b: f32| a + (b - a) * rng.uniform();
    let angle = uniform(-10.0, 10.0).to_radians();
    let scale = uniform(0.9, 1.1);
    let shear = uniform(-0.3, 0.3);
    let (dy, dx) = (uniform(-1.0, 1.0), uniform(-1.0, 1.0));
    // output (y, x) -> input: [[cos, -sin], [sin, cos]] * [[1, shear], [0, 1]] / scale about the centre
    let (s, co) = angle.sin_cos();
    let m = [co / scale, (co * shear - s) / scale, s / scale, (s * shear + co) / scale];
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    for y in 0..h {
        for x in 0..w {
            let (oy, ox) = (y as f32 - cy, x as f32 - cx);
            let sy = (m[0] * oy + m[1] * ox + cy + dy).clamp(0.0, (h - 1) as f32);
            let sx = (m[2] * oy + m[3] * ox + cx + dx).clamp(0.0, (w - 1) as f32);
            let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
            for ch in 0..c {
                let at = |yy: usize, xx: usize| src[(yy * w + xx) * c + ch];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                dst[(y * w + x) * c + ch] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

/// The five orders of three channels other than their own.
const OTHER_ORDERS: [[usize; 3]; 5] = [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/// Reorders the channels of an interleaved RGB image in place, by one of `OTHER_ORDERS`.
fn permute(img: &mut [f32], rng: &mut Rng) {
    let order = OTHER_ORDERS[rng.below(OTHER_ORDERS.len())];
    for px in img.chunks_exact_mut(3) {
        let old = [px[0], px[1], px[2]];
        for (dst, &from) in px.iter_mut().zip(&order) {
            *dst = old[from];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize, h: usize, w: usize, c: usize) -> Split {
        let pixels: Vec<u8> = (0..n * h * w * c).map(|i| (i * 37 % 251) as u8).collect();
        Split::from_bytes(&pixels, (0..n).map(|i| (i % 10) as u8).collect(), h, w, c)
    }

    #[test]
    fn copies_follow_the_originals_with_their_labels() {
        let s = split(7, 9, 8, 3);
        let a = with_affine_copies(&s, 5, 2, false, 11);
        assert_eq!((a.n, a.labels.len(), a.images.len()), (15, 15, 15 * 9 * 8 * 3));
        assert_eq!(&a.images[..5 * s.pixels()], &s.images[..5 * s.pixels()]);
        assert_eq!(&a.labels[5..10], &s.labels[..5]);
        assert_eq!(&a.labels[10..15], &s.labels[..5]);
        // changed, within the original's range, and the two rounds differ
        for r in 1..3 {
            for i in 0..5 {
                let (x, y) = (s.image(i), a.image(5 * r + i));
                assert_ne!(x, y);
                assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
        assert_ne!(a.image(5), a.image(10));
        // fixed by the seed
        assert_eq!(with_affine_copies(&s, 5, 2, false, 11).images, a.images);
        assert_ne!(with_affine_copies(&s, 5, 2, false, 12).images, a.images);
    }

    #[test]
    fn a_flat_image_stays_flat() {
        // bilinear weights sum to one and the border repeats: a constant image is unchanged
        let s = Split::from_bytes(&[200u8; 2 * 6 * 6 * 3], vec![0, 1], 6, 6, 3);
        let a = with_affine_copies(&s, 2, 1, false, 3);
        assert!(a.images.iter().all(|v| (v - 200.0 / 255.0).abs() < 1e-5));
    }

    #[test]
    fn permuted_copies_reorder_the_channels_of_the_same_change() {
        let s = split(40, 5, 6, 3);
        let plain = with_affine_copies(&s, 20, 1, false, 5);
        let permuted = with_affine_copies(&s, 20, 1, true, 5);
        assert_eq!(&permuted.images[..20 * s.pixels()], &plain.images[..20 * s.pixels()]);
        let mut seen = std::collections::BTreeSet::new();
        for i in 20..40 {
            let (a, b) = (plain.image(i), permuted.image(i));
            let order = OTHER_ORDERS
                .iter()
                .find(|o| a.chunks(3).zip(b.chunks(3)).all(|(x, y)| (0..3).all(|c| y[c] == x[o[c]])))
                .expect("a copy's channels are another order of the plain copy's");
            seen.insert(*order);
        }
        assert!(seen.len() > 1, "orders vary between images");
        // greyscale images have no channels to swap
        let g = split(4, 5, 6, 1);
        assert_eq!(with_affine_copies(&g, 2, 1, true, 5).images, with_affine_copies(&g, 2, 1, false, 5).images);
    }
}

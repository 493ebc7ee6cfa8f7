//! How well the colours come back, for two-colour images (a shape in one colour on a
//! background of another, as in Colour-MNIST): compare the reconstruction's mean colour over
//! the original's foreground and over its background with the original's.
//!
//! The masks come from the ORIGINAL only, so every reconstruction is scored on the same pixels:
//!
//! - background colour `b`: per channel, the median of the image's outermost one-pixel frame;
//! - distance of a pixel from it: `d(p) = sqrt(mean_c (x(p, c) - b_c)^2)`, in `[0, 1]`;
//! - with `D = max_p d(p)`: background = `{p : d(p) <= 0.1 D}`, foreground = `{p : d(p) >= 0.5 D}`
//!   (the antialiased rim in between belongs to neither). An image with `D < 0.1` has no
//!   foreground to speak of and is left out (counted in `skipped`).
//!
//! The error of a mask is the mean absolute difference of the two mean colours over the
//! channels, in `[0, 1]` units. The baseline predicts every secret's foreground (background)
//! colour as the mean of the training originals' foreground (background) colours, measured the
//! same way: what knowing the palette, and nothing of the secret, would give.

use crate::nn::Shape;
use serde::{Deserialize, Serialize};

/// A background this far (RMS over channels) from everything else counts as no foreground.
const MIN_CONTRAST: f32 = 0.1;
/// Pixels within this fraction of the largest distance are background.
const BACKGROUND_FRACTION: f32 = 0.1;
/// Pixels at least this fraction of the largest distance away are foreground.
const FOREGROUND_FRACTION: f32 = 0.5;

/// Foreground and background colour errors of reconstructions and of the mean-colour baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColourFidelity {
    /// Mean absolute error of the reconstructions' mean foreground colour (per channel, [0, 1]).
    pub foreground_error: f64,
    /// The same for the background.
    pub background_error: f64,
    /// The foreground error of predicting the training originals' mean foreground colour.
    pub baseline_foreground_error: f64,
    /// The background error of predicting the training originals' mean background colour.
    pub baseline_background_error: f64,
    /// Secrets scored (those with a foreground).
    pub images: usize,
    /// Secrets left out: no pixel far enough from the background colour.
    pub skipped: usize,
}

/// The foreground and background mean colours of one image, if it has a foreground.
pub fn two_colours(img: &[f32], image: Shape) -> Option<(Vec<f32>, Vec<f32>)> {
    let masks = Masks::of(img, image)?;
    Some((masks.mean(img, image.c, true), masks.mean(img, image.c, false)))
}

/// The training originals' mean foreground and background colours (images without a
/// foreground left out); `None` when no image has one.
pub fn mean_colours(images: &[f32], image: Shape) -> Option<(Vec<f32>, Vec<f32>)> {
    let c = image.c;
    let (mut fg, mut bg, mut n) = (vec![0.0f64; c], vec![0.0f64; c], 0usize);
    for img in images.chunks_exact(image.len()) {
        if let Some((f, b)) = two_colours(img, image) {
            fg.iter_mut().zip(&f).for_each(|(s, v)| *s += *v as f64);
            bg.iter_mut().zip(&b).for_each(|(s, v)| *s += *v as f64);
            n += 1;
        }
    }
    let mean = |s: Vec<f64>| s.into_iter().map(|v| (v / n as f64) as f32).collect();
    (n > 0).then(|| (mean(fg), mean(bg)))
}

/// Scores `recons` against `originals` (both `[n, image.len()]`), with `baseline` the
/// training originals' mean colours (`mean_colours`).
pub fn colour_fidelity(
    recons: &[f32],
    originals: &[f32],
    image: Shape,
    baseline: &(Vec<f32>, Vec<f32>),
) -> ColourFidelity {
    let c = image.c;
    let err = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / c as f64;
    let (mut sums, mut images, mut skipped) = ([0.0f64; 4], 0, 0);
    for (r, o) in recons.chunks_exact(image.len()).zip(originals.chunks_exact(image.len())) {
        let Some(masks) = Masks::of(o, image) else {
            skipped += 1;
            continue;
        };
        let (of, ob) = (masks.mean(o, c, true), masks.mean(o, c, false));
        let (rf, rb) = (masks.mean(r, c, true), masks.mean(r, c, false));
        sums[0] += err(&rf, &of);
        sums[1] += err(&rb, &ob);
        sums[2] += err(&baseline.0, &of);
        sums[3] += err(&baseline.1, &ob);
        images += 1;
    }
    let m = |s: f64| s / images.max(1) as f64;
    ColourFidelity {
        foreground_error: m(sums[0]),
        background_error: m(sums[1]),
        baseline_foreground_error: m(sums[2]),
        baseline_background_error: m(sums[3]),
        images,
        skipped,
    }
}

/// The ink image of a channels-last image: each pixel's distance from the background colour,
/// `d(p)` of the module docs (`h x w` values in `[0, 1]`; empty for an image of another shape).
/// For a greyscale digit on black it is the image itself.
pub fn ink(img: &[f32], image: Shape) -> Vec<f32> {
    let (h, w, c) = (image.h, image.w, image.c);
    if h == 0 || w == 0 || c == 0 || img.len() != image.len() {
        return Vec::new();
    }
    let frame: Vec<usize> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .filter(|&(y, x)| y == 0 || x == 0 || y + 1 == h || x + 1 == w)
        .map(|(y, x)| y * w + x)
        .collect();
    let border: Vec<f32> = (0..c)
        .map(|ch| {
            let mut v: Vec<f32> = frame.iter().map(|&p| img[p * c + ch]).collect();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    img.chunks_exact(c).map(|px| rms_distance(px, &border)).collect()
}

/// The distance between two colours: the root of the mean squared difference over channels,
/// in `[0, 1]` for colours in `[0, 1]` (0 for no channels).
pub fn rms_distance(a: &[f32], b: &[f32]) -> f32 {
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / a.len().max(1) as f32).sqrt()
}

/// An image's stroke as a mask in `[0, 1]`: its ink (`ink`) over the RMS distance between its
/// two colours `fg` and `bg` (`two_colours`), clipped at 1, so its typical stroke counts as full.
/// For a two-colour image it is the alpha the image was drawn with, wherever that is below 1.
pub fn stroke(img: &[f32], image: Shape, fg: &[f32], bg: &[f32]) -> Vec<f32> {
    let contrast = rms_distance(fg, bg);
    ink(img, image).iter().map(|v| (v / contrast.max(1e-6)).min(1.0)).collect()
}

/// Which pixels of an original are foreground, which background (neither on the rim).
struct Masks {
    foreground: Vec<bool>,
    background: Vec<bool>,
}

impl Masks {
    fn of(img: &[f32], image: Shape) -> Option<Masks> {
        let dist = ink(img, image);
        let far = dist.iter().copied().fold(0.0f32, f32::max);
        if far.is_nan() || far < MIN_CONTRAST {
            return None;
        }
        Some(Masks {
            foreground: dist.iter().map(|&d| d >= FOREGROUND_FRACTION * far).collect(),
            background: dist.iter().map(|&d| d <= BACKGROUND_FRACTION * far).collect(),
        })
    }

    /// Mean colour of `img` over the foreground (or background) mask.
    fn mean(&self, img: &[f32], c: usize, foreground: bool) -> Vec<f32> {
        let mask = if foreground { &self.foreground } else { &self.background };
        let mut sum = vec![0.0f64; c];
        let mut n = 0usize;
        for (px, _) in img.chunks_exact(c).zip(mask).filter(|(_, &m)| m) {
            sum.iter_mut().zip(px).for_each(|(s, v)| *s += *v as f64);
            n += 1;
        }
        sum.into_iter().map(|s| (s / n.max(1) as f64) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `h x w` image: a filled square of `fg` on `bg`, with a half-way rim to its right.
    fn two_colour(h: usize, w: usize, fg: [f32; 3], bg: [f32; 3]) -> Vec<f32> {
        let mut img = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                let alpha = if (3..7).contains(&y) && (3..7).contains(&x) {
                    1.0
                } else if (3..7).contains(&y) && x == 7 {
                    0.3
                } else {
                    0.0
                };
                img.extend((0..3).map(|c| bg[c] + alpha * (fg[c] - bg[c])));
            }
        }
        img
    }

    #[test]
    fn masks_find_the_two_colours() {
        let shape = Shape::new(10, 12, 3);
        let img = two_colour(10, 12, [0.9, 0.1, 0.2], [0.1, 0.3, 0.8]);
        let (fg, bg) = two_colours(&img, shape).unwrap();
        for (got, want) in fg.iter().zip([0.9, 0.1, 0.2]).chain(bg.iter().zip([0.1, 0.3, 0.8])) {
            assert!((got - want).abs() < 1e-6, "{fg:?} {bg:?}");
        }
        // a flat image has no foreground
        assert!(two_colours(&[0.4; 360], shape).is_none());
    }

    #[test]
    fn the_stroke_of_a_two_colour_image_is_its_alpha() {
        let shape = Shape::new(10, 12, 3);
        let img = two_colour(10, 12, [0.9, 0.1, 0.2], [0.1, 0.3, 0.8]);
        let (fg, bg) = two_colours(&img, shape).unwrap();
        let s = stroke(&img, shape, &fg, &bg);
        let alpha = |y: usize, x: usize| s[y * 12 + x];
        assert!((alpha(4, 4) - 1.0).abs() < 1e-5 && (alpha(4, 7) - 0.3).abs() < 1e-5 && alpha(0, 0) == 0.0, "{s:?}");
    }

    #[test]
    fn errors_of_perfect_swapped_and_baseline_colours() {
        let shape = Shape::new(10, 12, 3);
        let a = two_colour(10, 12, [0.9, 0.1, 0.2], [0.1, 0.3, 0.8]);
        let b = two_colour(10, 12, [0.2, 0.9, 0.1], [0.7, 0.7, 0.1]);
        let flat = vec![0.5; 360];
        let originals = [a.clone(), b.clone(), flat.clone()].concat();
        let baseline = mean_colours(&originals, shape).unwrap();
        assert!((baseline.0[0] - 0.55).abs() < 1e-6 && (baseline.1[2] - 0.45).abs() < 1e-6, "{baseline:?}");
        let perfect = colour_fidelity(&originals, &originals, shape, &baseline);
        assert_eq!((perfect.foreground_error, perfect.background_error), (0.0, 0.0));
        assert_eq!((perfect.images, perfect.skipped), (2, 1));
        // each image drawn with the other's colours: every channel of each mean colour is off
        let swapped = colour_fidelity(&[b, a, flat].concat(), &originals, shape, &baseline);
        let fg_want: f64 = (0.7 + 0.8 + 0.1) / 3.0;
        assert!((swapped.foreground_error - fg_want).abs() < 1e-6, "{swapped:?}");
        assert!((swapped.baseline_foreground_error - fg_want / 2.0).abs() < 1e-6, "{swapped:?}");
    }
}

//! Deciding a reconstruction's colours, for two-colour images drawn from a small palette (a
//! shape in one colour on a background of another, as in Colour-MNIST).
//!
//! Trained on L2, the decoder paints the posterior MEAN: where the signature leaves a stroke's
//! colour open between two palette entries, it paints their average, which is the best guess for
//! MSE and the worst for "which colour is it?" (a channel that is 1 with probability 0.8 is
//! painted 0.8, off by 0.2 when right and 0.8 when wrong). A palette decision paints the likelier
//! colour instead: it reads the reconstruction's own two colours (`eval::colour::two_colours`),
//! replaces them by the nearest pair of distinct palette entries, and repaints every pixel at its
//! own place between the two: a two-colour image's pixel is `bg + alpha (fg - bg)`, and `alpha` is
//! read as the pixel's projection onto the reconstruction's own background-to-foreground colour
//! axis, clamped to [0, 1]. The shape is kept, the colours are decided; MSE pays for the wrong
//! decisions, the colour errors gain from the right ones. (Reading `alpha` as the pixel's RMS
//! distance from the background instead, `eval::colour::stroke`, turns every off-axis hedge into
//! stroke: on Colour-MNIST-32 it took class recovery from 97.3% to 91.6%, the projection to 96.7%;
//! docs/results/ab/colour-palette.txt.)
//!
//! The palette is learnt from the adversary's own training images, which the threat model gives
//! it: every image's two colours are gathered and grouped (leader clustering, a colour joins the
//! first group whose centre is within `RADIUS`, RMS over channels); groups holding at least
//! `MIN_SHARE` of the colours are the palette, its entries the groups' per-channel medians. Data
//! is refused, not guessed at, unless the palette has 2 to `MAX_ENTRIES` entries, puts the two
//! colours of at least `MIN_COVER` of the images into two different entries, and its groups are
//! tight (`MAX_SPREAD`). The check is a screen, not a proof: textured shapes (Colour-Fashion-32)
//! come close to the line, and there the decision does harm, which the run's report shows by
//! scoring the network's undecided output beside it.

use crate::error::{Error, Result};
use crate::eval::colour::{rms_distance, two_colours};
use crate::nn::Shape;

/// A colour joins a group whose centre is this close (RMS over channels, [0, 1] units).
const RADIUS: f32 = 0.2;
/// A group is a palette entry when it holds this share of the training colours.
const MIN_SHARE: f64 = 0.01;
/// This share of the training images must have their two colours in two different entries.
const MIN_COVER: f64 = 0.9;
/// More entries than this is not a palette.
const MAX_ENTRIES: usize = 64;
/// The colours of a palette's groups lie this close to their entries on average (RMS over
/// channels): scattered colours that merely fall into groups are not a palette.
const MAX_SPREAD: f32 = 0.08;

/// A reconstruction whose two colours are closer than this (Euclidean) has no colour axis and
/// is left undecided.
const MIN_AXIS: f32 = 0.05;

/// Colours learnt from the adversary's training images; see the module docs. Built only by
/// `learn` and `new`, so it always holds 2 to `MAX_ENTRIES` colours in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Palette {
    channels: usize,
    /// The entries, `[m, channels]` row after row.
    colours: Vec<f32>,
}

impl Palette {
    /// Learns the palette of `images` (`[n, image.len()]`, channels-last); refuses data whose
    /// two colours do not fall on one.
    pub fn learn(images: &[f32], image: Shape) -> Result<Palette> {
        let c = image.c;
        let colours: Vec<Vec<f32>> = images
            .chunks_exact(image.len().max(1))
            .filter_map(|img| two_colours(img, image))
            .flat_map(|(fg, bg)| [fg, bg])
            .collect();
        let refuse = |why: String| Err(Error::invalid("decoder.palette", why));
        if colours.is_empty() {
            return refuse("no training image has two colours to learn a palette from".into());
        }
        // the group of each colour (colour 2i is image i's foreground, 2i + 1 its background),
        // and each group's running mean and size
        let (mut centres, mut sizes): (Vec<Vec<f32>>, Vec<usize>) = (Vec::new(), Vec::new());
        let group_of: Vec<usize> = colours
            .iter()
            .map(|col| match centres.iter().position(|centre| rms_distance(centre, col) <= RADIUS) {
                Some(g) => {
                    sizes[g] += 1;
                    let n = sizes[g] as f32;
                    centres[g].iter_mut().zip(col).for_each(|(m, v)| *m += (v - *m) / n);
                    g
                }
                None => {
                    centres.push(col.clone());
                    sizes.push(1);
                    centres.len() - 1
                }
            })
            .collect();
        let min = ((MIN_SHARE * colours.len() as f64).ceil() as usize).max(2);
        let is_entry = |g: usize| sizes[g] >= min;
        let members = |g: usize| colours.iter().zip(&group_of).filter(move |(_, &h)| h == g).map(|(col, _)| col);
        let kept: Vec<usize> = (0..sizes.len()).filter(|&g| is_entry(g)).collect();
        // a palette tells each image's two colours apart: both in entries, and different ones
        let told_apart = group_of.chunks_exact(2).filter(|p| p[0] != p[1] && is_entry(p[0]) && is_entry(p[1])).count()
            as f64
            / (colours.len() / 2) as f64;
        if kept.len() < 2 || kept.len() > MAX_ENTRIES || told_apart < MIN_COVER {
            return refuse(format!(
                "the training images' two colours do not fall on a small palette ({} groups of at least {min} of \
                 {} colours; {:.1}% of the images have their two colours in two different groups; a palette needs \
                 2 to {MAX_ENTRIES} groups and {:.0}%): the palette decision is for two-colour images",
                kept.len(),
                colours.len(),
                100.0 * told_apart,
                100.0 * MIN_COVER
            ));
        }
        let entries: Vec<Vec<f32>> = kept
            .iter()
            .map(|&g| {
                (0..c)
                    .map(|ch| {
                        let mut v: Vec<f32> = members(g).map(|col| col[ch]).collect();
                        v.sort_by(f32::total_cmp);
                        v[v.len() / 2]
                    })
                    .collect()
            })
            .collect();
        let distances: Vec<f32> =
            kept.iter().zip(&entries).flat_map(|(&g, entry)| members(g).map(|col| rms_distance(col, entry))).collect();
        let spread = distances.iter().map(|&d| d as f64).sum::<f64>() / distances.len() as f64;
        if spread > MAX_SPREAD as f64 {
            return refuse(format!(
                "the training images' two colours do not fall on a small palette: they lie {spread:.3} (RMS) from \
                 the nearest of {} groups on average, more than {MAX_SPREAD}; the palette decision is for \
                 two-colour images",
                entries.len()
            ));
        }
        Palette::new(c, entries.concat())
    }

    /// A palette of `colours` (`[m, channels]`, values in [0, 1], 2 to `MAX_ENTRIES` entries: a
    /// decision weighs every pair, so a decoder file cannot ask for millions).
    pub fn new(channels: usize, colours: Vec<f32>) -> Result<Palette> {
        let entries = colours.len() / channels.max(1);
        if channels == 0 || !colours.len().is_multiple_of(channels) || !(2..=MAX_ENTRIES).contains(&entries) {
            return Err(Error::invalid(
                "palette",
                format!("{} values are not 2 to {MAX_ENTRIES} colours of {channels} channels", colours.len()),
            ));
        }
        if colours.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::invalid("palette", "a colour value outside [0, 1]"));
        }
        Ok(Palette { channels, colours })
    }

    /// Channels per colour.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The entries, `[len(), channels()]` row after row.
    pub fn colours(&self) -> &[f32] {
        &self.colours
    }

    /// Entries in the palette.
    pub fn len(&self) -> usize {
        self.colours.len() / self.channels
    }

    /// Never: a palette has two entries or more.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, i: usize) -> &[f32] {
        &self.colours[i * self.channels..(i + 1) * self.channels]
    }

    /// The pair of distinct entries `(foreground, background)` nearest the two colours given
    /// (least summed squared distance).
    pub fn nearest_pair(&self, fg: &[f32], bg: &[f32]) -> (&[f32], &[f32]) {
        let d2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let m = self.len();
        let (f, b) = (0..m)
            .flat_map(|f| (0..m).filter(move |&b| b != f).map(move |b| (f, b)))
            .min_by(|&(f1, b1), &(f2, b2)| {
                let cost = |f, b| d2(fg, self.entry(f)) + d2(bg, self.entry(b));
                cost(f1, b1).total_cmp(&cost(f2, b2))
            })
            .expect("a palette has two entries");
        (self.entry(f), self.entry(b))
    }

    /// Decides the colours of every reconstruction in `recons` (`[n, image.len()]`) in place:
    /// each pixel repainted at its place along the image's own colour axis, between the nearest
    /// palette pair (module docs). A reconstruction without a foreground (flat), or whose
    /// foreground averages out to its background, is left as it is.
    pub fn decide(&self, recons: &mut [f32], image: Shape) -> Result<()> {
        if image.c != self.channels {
            return Err(Error::invalid(
                "palette decision",
                format!("a palette of {}-channel colours for {}-channel images", self.channels, image.c),
            ));
        }
        for r in recons.chunks_exact_mut(image.len().max(1)) {
            let Some((own_fg, own_bg)) = two_colours(r, image) else { continue };
            let axis: Vec<f32> = own_fg.iter().zip(&own_bg).map(|(f, b)| f - b).collect();
            let length2 = axis.iter().map(|a| a * a).sum::<f32>();
            if length2 < MIN_AXIS * MIN_AXIS {
                continue; // its foreground averages out to its background: no axis to read alpha on
            }
            let (fg, bg) = self.nearest_pair(&own_fg, &own_bg);
            for px in r.chunks_exact_mut(image.c) {
                let along = px.iter().zip(&own_bg).zip(&axis).map(|((p, b), a)| (p - b) * a).sum::<f32>();
                let alpha = (along / length2).clamp(0.0, 1.0);
                px.iter_mut().enumerate().for_each(|(ch, v)| *v = bg[ch] + alpha * (fg[ch] - bg[ch]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORNERS: [[f32; 3]; 4] = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];

    /// An 8x8 image: a 4x4 square of `alpha * fg + (1 - alpha) * bg` on `bg`.
    fn square(fg: [f32; 3], bg: [f32; 3], alpha: f32) -> Vec<f32> {
        (0..64)
            .flat_map(|p| {
                let inside = (2..6).contains(&(p / 8)) && (2..6).contains(&(p % 8));
                let a = if inside { alpha } else { 0.0 };
                (0..3).map(move |ch| bg[ch] + a * (fg[ch] - bg[ch]))
            })
            .collect()
    }

    fn training_set() -> Vec<f32> {
        let mut images = Vec::new();
        for (i, f) in CORNERS.iter().enumerate() {
            for (j, b) in CORNERS.iter().enumerate() {
                if i != j {
                    images.extend(square(*f, *b, 1.0));
                    images.extend(square(*f, *b, 0.95)); // a fainter stroke: its colour is off the corner
                }
            }
        }
        images
    }

    #[test]
    fn learns_the_corners_it_was_drawn_from() {
        let p = Palette::learn(&training_set(), Shape::new(8, 8, 3)).unwrap();
        assert_eq!(p.len(), CORNERS.len());
        for corner in CORNERS {
            assert!((0..p.len()).any(|i| rms_distance(p.entry(i), &corner) < 1e-6), "{corner:?} not in {p:?}");
        }
    }

    #[test]
    fn decides_a_hedged_colour_and_keeps_the_shape() {
        let shape = Shape::new(8, 8, 3);
        let p = Palette::learn(&training_set(), shape).unwrap();
        // red on blue, painted hedged: the stroke's red channel at 0.7, its blue at 0.3
        let mut r = square([0.7, 0.0, 0.3], [0.0, 0.0, 1.0], 1.0);
        p.decide(&mut r, shape).unwrap();
        assert_eq!(r, square([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], 1.0));
        // a pair that would snap to one entry twice takes the nearest distinct pair
        let mut r = square([0.1, 0.1, 0.1], [0.0, 0.0, 0.0], 1.0);
        p.decide(&mut r, shape).unwrap();
        let (fg, bg) = two_colours(&r, shape).unwrap();
        assert_ne!(fg, bg);
        // a flat image has no colours to decide
        let mut flat = vec![0.4; shape.len()];
        p.decide(&mut flat, shape).unwrap();
        assert_eq!(flat, vec![0.4; shape.len()]);
    }

    #[test]
    fn refuses_colours_off_any_palette() {
        let shape = Shape::new(8, 8, 3);
        // every image its own two colours, drawn at random: groups form, but they are no palette
        let mut rng = crate::rng::Rng::new(3);
        let mut colour = || [rng.uniform(), rng.uniform(), rng.uniform()];
        let images: Vec<f32> = (0..300).flat_map(|_| square(colour(), colour(), 1.0)).collect();
        let err = Palette::learn(&images, shape).unwrap_err().to_string();
        assert!(err.contains("do not fall on a small palette"), "{err}");
        // one colour pair for every image: no second entry
        let images: Vec<f32> = (0..10).flat_map(|_| square(CORNERS[0], CORNERS[0], 1.0)).collect();
        assert!(Palette::learn(&images, shape).is_err());
        assert!(Palette::new(3, vec![0.0; 3]).is_err());
        assert!(Palette::new(3, vec![0.5; 3 * (MAX_ENTRIES + 1)]).is_err());
        assert!(Palette::new(3, vec![0.5; 3 * MAX_ENTRIES]).is_ok());
        assert!(Palette::new(3, vec![0.0, 0.0, 2.0, 1.0, 1.0, 1.0]).is_err());
        let p = Palette::new(3, CORNERS.concat()).unwrap();
        assert!(p.decide(&mut [0.0; 64], Shape::new(8, 8, 1)).is_err());
    }
}

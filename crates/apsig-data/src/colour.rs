//! The colour benchmarks made from grey data sets: Colour-MNIST-32 and Colour-Fashion-32.
//!
//! Each grey image is padded to `size x size` (2 px each side for 28x28 into 32x32) and painted
//! with a foreground and a background colour drawn per image from [`PALETTE`]: a pixel of grey
//! value `g` in `[0, 1]` becomes `g * fg + (1 - g) * bg` (rounded to the nearest byte), so the
//! padding and the empty background take `bg` and full strokes take `fg`. Labels are unchanged.
//! The draws come from one SplitMix64 stream seeded with `seed`, train images first, then test;
//! the same source, size and seed give byte-identical output.
//!
//! The `.npz` holds `x_train`, `y_train`, `x_test`, `y_test` (uint8, images NHWC) plus the
//! true colours `fg_train`, `bg_train`, `fg_test`, `bg_test` (uint8, `(N, 3)` RGB), so a run can
//! score how well the colours come back ([`read_true_colours`]).

use std::path::Path;

use crate::error::{DataError, Result};
use crate::npy::NpyArray;
use crate::npz::{read_npz_array, write_npz};
use crate::split::{Dataset, Split};

/// The colours drawn from: the eight corners of the RGB cube. Foreground and background are
/// two different entries, so in every image they differ by 255 in at least one channel.
pub const PALETTE: [(&str, [u8; 3]); 8] = [
    ("black", [0, 0, 0]),
    ("white", [255, 255, 255]),
    ("red", [255, 0, 0]),
    ("green", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("yellow", [255, 255, 0]),
    ("cyan", [0, 255, 255]),
    ("magenta", [255, 0, 255]),
];

/// Side of the benchmark images (Colour-MNIST-32, Colour-Fashion-32).
pub const COLOUR_SIDE: usize = 32;

/// One painted split: HWC RGB bytes, the labels and each image's true colours.
#[derive(Clone, Debug, PartialEq)]
pub struct ColourSplit {
    /// `n * side * side * 3` bytes, image after image, HWC.
    pub pixels: Vec<u8>,
    /// Labels, as in the grey source.
    pub labels: Vec<u8>,
    /// Foreground colour of each image.
    pub fg: Vec<[u8; 3]>,
    /// Background colour of each image.
    pub bg: Vec<[u8; 3]>,
}

/// Paints both splits of a grey data set (see the module docs); refuses colour sources and
/// images larger than `side`.
pub fn colourise(data: &Dataset, side: usize, seed: u64) -> Result<(ColourSplit, ColourSplit)> {
    for split in [&data.train, &data.test] {
        if split.channels != 1 {
            return Err(DataError::Invalid {
                path: data.dir.clone(),
                problem: format!("the colour generator needs grey images, not {} channels", split.channels),
            });
        }
        if split.rows > side || split.cols > side {
            return Err(DataError::Invalid {
                path: data.dir.clone(),
                problem: format!("{}x{} images do not fit in {side}x{side}", split.rows, split.cols),
            });
        }
    }
    let mut rng = SplitMix64(seed);
    let train = paint(&data.train, side, &mut rng);
    let test = paint(&data.test, side, &mut rng);
    Ok((train, test))
}

fn paint(split: &Split, side: usize, rng: &mut SplitMix64) -> ColourSplit {
    let (top, left) = ((side - split.rows) / 2, (side - split.cols) / 2);
    let mut out = ColourSplit {
        pixels: Vec::with_capacity(split.n * side * side * 3),
        labels: split.labels.clone(),
        fg: Vec::with_capacity(split.n),
        bg: Vec::with_capacity(split.n),
    };
    for i in 0..split.n {
        let f = (rng.next() % PALETTE.len() as u64) as usize;
        let b = (rng.next() % (PALETTE.len() as u64 - 1)) as usize;
        let b = if b >= f { b + 1 } else { b };
        let (fg, bg) = (PALETTE[f].1, PALETTE[b].1);
        let image = split.image(i);
        for y in 0..side {
            for x in 0..side {
                let inside = (top..top + split.rows).contains(&y) && (left..left + split.cols).contains(&x);
                // The grey byte the split was scaled from; 0 (background) in the padding.
                let g = if inside { (image[(y - top) * split.cols + x - left] * 255.0).round() as u32 } else { 0 };
                out.pixels
                    .extend((0..3).map(|c| ((g * u32::from(fg[c]) + (255 - g) * u32::from(bg[c]) + 127) / 255) as u8));
            }
        }
        out.fg.push(fg);
        out.bg.push(bg);
    }
    out
}

/// Paints `data` and writes the benchmark `.npz` to `out` atomically; returns the image
/// counts `(train, test)`.
pub fn write_colour_benchmark(data: &Dataset, out: &Path, side: usize, seed: u64) -> Result<(usize, usize)> {
    let (train, test) = colourise(data, side, seed)?;
    let images = |s: &ColourSplit| NpyArray::from_u8(&[s.labels.len(), side, side, 3], s.pixels.clone());
    let labels = |s: &ColourSplit| NpyArray::from_u8(&[s.labels.len()], s.labels.clone());
    let colours = |c: &[[u8; 3]]| NpyArray::from_u8(&[c.len(), 3], c.concat());
    let arrays = [
        ("x_train", images(&train)),
        ("y_train", labels(&train)),
        ("x_test", images(&test)),
        ("y_test", labels(&test)),
        ("fg_train", colours(&train.fg)),
        ("bg_train", colours(&train.bg)),
        ("fg_test", colours(&test.fg)),
        ("bg_test", colours(&test.bg)),
    ];
    let refs: Vec<(&str, &NpyArray)> = arrays.iter().map(|(k, a)| (*k, a)).collect();
    write_npz(out, &refs)?;
    Ok((train.labels.len(), test.labels.len()))
}

/// The true colours of the images of one split, as stored by [`write_colour_benchmark`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrueColours {
    /// Foreground colour (RGB) of each image.
    pub fg: Vec<[u8; 3]>,
    /// Background colour (RGB) of each image.
    pub bg: Vec<[u8; 3]>,
}

/// The true colours of one split (`"train"` or `"test"`) of a benchmark `.npz` written by
/// [`write_colour_benchmark`] (its `fg_<split>` and `bg_<split>` arrays).
pub fn read_true_colours(path: &Path, split: &str) -> Result<TrueColours> {
    let read = |key: String| -> Result<Vec<[u8; 3]>> {
        let a = read_npz_array(path, &key)?;
        match (a.shape.as_slice(), a.as_u8()) {
            ([_, 3], Some(bytes)) => Ok(bytes.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()),
            _ => Err(DataError::Invalid {
                path: path.to_path_buf(),
                problem: format!("{key}: expected uint8 colours shaped (N, 3), found {} {:?}", a.dtype.name(), a.shape),
            }),
        }
    };
    Ok(TrueColours { fg: read(format!("fg_{split}"))?, bg: read(format!("bg_{split}"))? })
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, seedable, and fixed forever, so a seed names
/// the same benchmark on every machine and version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(rows: usize, cols: usize, bytes: Vec<u8>, labels: Vec<u8>) -> Dataset {
        let split = Split::from_bytes(&bytes, labels, rows, cols, 1);
        Dataset {
            name: "g".into(),
            dir: "g".into(),
            train: split.clone(),
            test: split,
            source: String::new(),
            classes: Vec::new(),
        }
    }

    #[test]
    fn pads_and_blends_with_two_different_colours() {
        // one 2x2 image: full stroke, half grey, empty, full stroke
        let data = grey(2, 2, vec![255, 128, 0, 255], vec![7]);
        let (train, _) = colourise(&data, 4, 3).unwrap();
        assert_eq!((train.labels.clone(), train.pixels.len()), (vec![7], 4 * 4 * 3));
        let (fg, bg) = (train.fg[0], train.bg[0]);
        assert_ne!(fg, bg);
        let px = |y: usize, x: usize| &train.pixels[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3];
        assert_eq!(px(0, 0), bg); // padding
        assert_eq!(px(1, 1), fg); // g = 1
        assert_eq!(px(2, 1), bg); // g = 0
        for c in 0..3 {
            let want = (128.0 * f64::from(fg[c]) + 127.0 * f64::from(bg[c])) / 255.0;
            assert!((f64::from(px(1, 2)[c]) - want).abs() <= 0.5, "{c}");
        }
        // the test split continues the stream rather than repeating the train draws
        let many = grey(1, 1, vec![255; 64], vec![0; 64]);
        let (a, b) = colourise(&many, 1, 3).unwrap();
        assert_ne!(a.fg, b.fg);
        assert!(a.fg.iter().zip(&a.bg).all(|(f, b)| f != b));
        assert_eq!(colourise(&many, 1, 3).unwrap().0, a);
        assert_ne!(colourise(&many, 1, 4).unwrap().0, a);
    }

    #[test]
    fn refuses_colour_and_oversized_sources() {
        let mut data = grey(2, 2, vec![0; 4], vec![0]);
        assert!(colourise(&data, 1, 0).unwrap_err().to_string().contains("do not fit in 1x1"));
        data.test.channels = 3;
        assert!(colourise(&data, 4, 0).unwrap_err().to_string().contains("needs grey images"));
    }
}

//! Style measures of one image: what the attribute probes try to read off a signature.

use serde::Serialize;

/// Mean intensity of the image: a proxy for stroke thickness (0 for an empty slice).
pub fn ink_mass(img: &[f32]) -> f32 {
    if img.is_empty() {
        return 0.0;
    }
    (img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64) as f32
}

/// Slant of the image (row-major, `side` pixels per row) from the second central moments of its
/// intensity distribution: the horizontal shear per row, `mu11 / mu02`, the usual deskew measure.
///
/// Sign convention: measured with the vertical axis pointing *up* (row index grows downward, so
/// this is `-mu11_rows / mu02` in row coordinates). Positive means the top leans right, like `/`;
/// a value of `s` means the stroke moves `s` columns to the right per row upward. An upright
/// stroke gives 0; an empty image, or one whose ink lies in a single row (`mu02 = 0`), gives 0.
/// A trailing partial row (when `img.len()` is not a multiple of `side`) is ignored.
pub fn slant(img: &[f32], side: usize) -> f32 {
    if side == 0 {
        return 0.0;
    }
    let rows = img.len() / side;
    let (mut m, mut sr, mut sc) = (0f64, 0f64, 0f64);
    for r in 0..rows {
        for c in 0..side {
            let w = img[r * side + c] as f64;
            m += w;
            sr += w * r as f64;
            sc += w * c as f64;
        }
    }
    if m <= 0.0 {
        return 0.0;
    }
    let (rbar, cbar) = (sr / m, sc / m);
    let (mut mu11, mut mu02) = (0f64, 0f64);
    for r in 0..rows {
        let dr = r as f64 - rbar;
        for c in 0..side {
            let w = img[r * side + c] as f64;
            mu11 += w * (c as f64 - cbar) * dr;
            mu02 += w * dr * dr;
        }
    }
    if mu02 <= 1e-12 * m {
        return 0.0;
    }
    (-mu11 / mu02) as f32
}

/// A style attribute of an image that the probe tries to predict from the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Attribute {
    /// `ink_mass`: mean intensity.
    InkMass,
    /// `slant`: horizontal shear per row, positive = top leans right.
    Slant,
}

impl Attribute {
    /// Every attribute, in report order.
    pub const ALL: [Attribute; 2] = [Attribute::InkMass, Attribute::Slant];

    /// The attribute's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::InkMass => "ink_mass",
            Attribute::Slant => "slant",
        }
    }

    /// The attribute of one row-major image of width `side`.
    pub fn of(self, img: &[f32], side: usize) -> f32 {
        match self {
            Attribute::InkMass => ink_mass(img),
            Attribute::Slant => slant(img, side),
        }
    }
}

/// An antialiased one-pixel line through rows `top..bottom` of a `side x side` image whose column
/// is `c0 + s * (bottom - r)` (so it moves `s` columns right per row upward), each row's ink split
/// between the two nearest columns so that its centroid is exact; scaled by `ink`.
#[cfg(test)]
pub(super) fn sheared_line(s: f32, ink: f32, top: usize, bottom: usize, c0: f32) -> Vec<f32> {
    let side = tests::SIDE;
    let mut img = vec![0f32; side * side];
    for r in top..bottom {
        let x = c0 + s * (bottom - 1 - r) as f32;
        let (c, f) = (x.floor() as usize, x - x.floor());
        img[r * side + c] += ink * (1.0 - f);
        img[r * side + c + 1] += ink * f;
    }
    img
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) const SIDE: usize = 28;

    #[test]
    fn ink_mass_is_mean_intensity() {
        let mut img = vec![0f32; 16];
        img[3] = 1.0;
        img[7] = 0.5;
        assert!((ink_mass(&img) - 1.5 / 16.0).abs() < 1e-7);
        assert_eq!(ink_mass(&[]), 0.0);
        assert_eq!(Attribute::InkMass.of(&img, 4), ink_mass(&img));
        assert_eq!(Attribute::InkMass.name(), "ink_mass");
        assert_eq!(Attribute::Slant.name(), "slant");
    }

    #[test]
    fn slant_of_upright_bar_is_zero() {
        let mut img = vec![0f32; SIDE * SIDE];
        for r in 4..24 {
            for c in 12..15 {
                img[r * SIDE + c] = 0.8;
            }
        }
        assert!(slant(&img, SIDE).abs() < 1e-6);
        assert!(sheared_line(0.0, 1.0, 3, 25, 13.0).iter().any(|&v| v > 0.0));
        assert!(slant(&sheared_line(0.0, 1.0, 3, 25, 13.0), SIDE).abs() < 1e-6);
    }

    #[test]
    fn slant_of_sheared_bar_has_sign_and_magnitude() {
        // Top leans right (like `/`): positive, half a column per row.
        let right = sheared_line(0.5, 1.0, 4, 24, 8.0);
        assert!((slant(&right, SIDE) - 0.5).abs() < 1e-4, "{}", slant(&right, SIDE));
        // Mirrored (like `\`): negative.
        let left = sheared_line(-0.5, 1.0, 4, 24, 18.0);
        assert!((slant(&left, SIDE) + 0.5).abs() < 1e-4, "{}", slant(&left, SIDE));
        // Intensity scale does not change the slant; a steeper shear gives a larger one.
        assert!((slant(&sheared_line(0.5, 0.3, 4, 24, 8.0), SIDE) - 0.5).abs() < 1e-4);
        assert!((Attribute::Slant.of(&sheared_line(1.0, 1.0, 4, 24, 2.0), SIDE) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn slant_of_empty_and_flat_images_is_zero() {
        assert_eq!(slant(&vec![0f32; SIDE * SIDE], SIDE), 0.0);
        let mut row = vec![0f32; SIDE * SIDE];
        row[10 * SIDE..11 * SIDE].fill(1.0);
        assert_eq!(slant(&row, SIDE), 0.0);
        assert_eq!(slant(&row, 0), 0.0);
    }
}

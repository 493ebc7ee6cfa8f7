//! Pure rendering of apsig's figures and report snippets.
//!
//! Everything here returns bytes or strings; no file I/O happens in the
//! library (the caller writes files atomically). Text uses an embedded
//! DejaVu Sans, so rendering never depends on system fonts.
//!
//! - [`LineChart`]: line plots with markers, legend, optional log axes and
//!   labelled dashed vertical lines (e.g. "flip point eps_i").
//! - [`ImageGrid`]: rows of labelled greyscale (MNIST look: white digit on
//!   black) or RGB images, upscaled with nearest neighbour.
//! - [`markdown_table`], [`fmt_num`]: helpers for the Markdown report.
#![warn(missing_docs)]

mod chart;
mod error;
mod font;
mod grid;
mod layout;
mod markdown;
mod text;

pub use chart::{LineChart, Series, VLine};
pub use error::{ReportError, Result};
pub use grid::{GridRow, ImageGrid};
pub use markdown::{fmt_num, markdown_table};

/// Largest width or height (in pixels) any figure may have.
pub(crate) const MAX_SIDE: u32 = 16_384;

/// Encode a tightly packed RGB8 buffer as PNG.
pub(crate) fn encode_rgb_png(buf: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(buf, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| ReportError::Encode(error::one_line(e)))?;
    Ok(out)
}

//! The embedded font. The crate never touches system fonts: DejaVu Sans is
//! compiled in, parsed once for our own text rasterizer (`text.rs`) and
//! registered once with plotters (feature `ab_glyph`), which needs a font
//! for its mesh even though all visible text is drawn by `text.rs`.

use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::style::FontStyle;

use crate::error::{ReportError, Result};

/// Family name under which the embedded font is registered with plotters.
pub(crate) const FAMILY: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans.LICENSE`).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

static PARSED: OnceLock<std::result::Result<FontRef<'static>, String>> = OnceLock::new();
static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

const PARSE_ERROR: &str = "embedded DejaVuSans.ttf could not be parsed";

/// The parsed embedded font.
pub(crate) fn font() -> Result<&'static FontRef<'static>> {
    PARSED
        .get_or_init(|| FontRef::try_from_slice(FONT_BYTES).map_err(|_| PARSE_ERROR.to_string()))
        .as_ref()
        .map_err(|e| ReportError::Render(e.clone()))
}

/// Register the embedded font with plotters (idempotent, thread-safe).
pub(crate) fn ensure_registered() -> Result<()> {
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES).map_err(|_| PARSE_ERROR.to_string())
        })
        .clone()
        .map_err(ReportError::Render)
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_twice_without_error() {
        super::ensure_registered().unwrap();
        super::ensure_registered().unwrap();
        super::font().unwrap();
    }
}

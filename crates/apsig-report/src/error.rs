//! Error type of the crate.

/// Everything that can go wrong while rendering a figure.
///
/// Messages are single lines so that callers can log them as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The drawing library failed (font missing, backend error, ...).
    #[error("render failed: {0}")]
    Render(String),
    /// The finished pixel buffer could not be encoded as PNG.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
    /// The caller handed in data that cannot be drawn.
    #[error("bad input: {0}")]
    BadInput(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ReportError>;

/// Collapse any displayable error into a one-line message.
pub(crate) fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn render_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Render(one_line(e))
}

//! One error type for everything that can go wrong while finding, fetching,
//! verifying or parsing a data set.

use std::path::PathBuf;

/// Why a data set could not be found, fetched, verified or parsed.
///
/// Every message is a single line that starts with (or names) the offending
/// file or directory, so a user can act on it without a backtrace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The OS refused to read, write, create or rename something.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// File or directory the operation was about.
        path: PathBuf,
        /// What was attempted ("read", "create", "rename to ...", ...).
        action: String,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A gzip stream could not be decoded (truncated or corrupt `.gz`).
    #[error("{}: corrupt or truncated gzip data: {source}", path.display())]
    Gzip {
        /// Compressed file.
        path: PathBuf,
        /// Decoder error.
        #[source]
        source: std::io::Error,
    },
    /// The first four bytes are not the IDX magic number we expected.
    #[error("{}: bad magic 0x{found:08x} (expected 0x{expected:08x} for IDX {kind}){hint}", path.display())]
    BadMagic {
        /// File.
        path: PathBuf,
        /// Magic number found.
        found: u32,
        /// Magic number required.
        expected: u32,
        /// "images" or "labels".
        kind: &'static str,
        /// Extra hint (possibly empty), e.g. that it looks like the other kind.
        hint: String,
    },
    /// The file ends before the header or payload is complete.
    #[error("{}: truncated {what}: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        /// File.
        path: PathBuf,
        /// "header" or "payload".
        what: &'static str,
        /// Bytes required.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file has bytes after the payload the header announces.
    #[error("{}: {extra} trailing bytes after the {expected}-byte payload", path.display())]
    TrailingBytes {
        /// File.
        path: PathBuf,
        /// Payload size announced by the header.
        expected: u64,
        /// Number of unexpected bytes at the end.
        extra: u64,
    },
    /// The header's dimensions are zero, overflow, or are absurdly large.
    #[error("{}: bad dimensions {dims:?}: {reason}", path.display())]
    BadDims {
        /// File.
        path: PathBuf,
        /// Dimensions as read from the header.
        dims: Vec<u32>,
        /// What is wrong with them.
        reason: String,
    },
    /// A required file of a data-set directory is absent.
    #[error("{}: missing file (looked for {name}.gz and {name})", dir.display())]
    MissingFile {
        /// Directory searched.
        dir: PathBuf,
        /// Base file name without `.gz`.
        name: String,
    },
    /// An images file and its labels file disagree on the number of samples.
    #[error("count mismatch: {} has {images} images but {} has {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// Images file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// Train and test images have different sizes.
    #[error("shape mismatch: {} is {train_rows}x{train_cols} but {} is {test_rows}x{test_cols}", train_path.display(), test_path.display())]
    ShapeMismatch {
        /// Train images file.
        train_path: PathBuf,
        /// Train rows.
        train_rows: usize,
        /// Train cols.
        train_cols: usize,
        /// Test images file.
        test_path: PathBuf,
        /// Test rows.
        test_rows: usize,
        /// Test cols.
        test_cols: usize,
    },
    /// A label is implausibly large for a classification data set.
    #[error("{}: label {label} at index {index} is out of range (must be < {limit})", path.display())]
    BadLabel {
        /// Labels file.
        path: PathBuf,
        /// Offending value.
        label: u8,
        /// Sample index.
        index: usize,
        /// Exclusive upper bound.
        limit: u8,
    },
    /// The decompressed content does not match the published MD5.
    #[error("{}: MD5 mismatch of decompressed content: expected {expected}, got {actual} (file is corrupt or not the published data; pass --no-verify to skip)", path.display())]
    Checksum {
        /// File.
        path: PathBuf,
        /// Published digest.
        expected: String,
        /// Digest computed here.
        actual: String,
    },
    /// The name is neither an existing directory nor a known data set.
    #[error("{name}: not a directory and not a known data set (known: {known})")]
    UnknownDataset {
        /// What the user asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// A known data set is not present anywhere we look, and downloading was not allowed.
    #[error("data set '{name}' not found; looked in: {looked}; fix: pass --data-dir DIR (containing {name}/), set APSIG_DATA_DIR=DIR, or pass --download")]
    NotFound {
        /// Data-set name.
        name: String,
        /// Every directory inspected, `; `-separated.
        looked: String,
    },
    /// Downloading one file failed on every mirror.
    #[error("{}: download failed from every mirror: {reasons}", path.display())]
    Download {
        /// Final path the file should have had.
        path: PathBuf,
        /// `mirror: reason` for each mirror tried, `; `-separated.
        reasons: String,
    },
    /// A file or folder is not a valid data set of its format (`.npz`, image folder, CIFAR
    /// batches): a missing array, an undecodable image, mixed sizes, a bad value, ...
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The offending file or folder.
        path: PathBuf,
        /// What is wrong, one line.
        problem: String,
    },
    /// No cache directory could be determined (neither XDG_CACHE_HOME nor HOME set).
    #[error("{name}: cannot download: no cache directory (set XDG_CACHE_HOME or HOME, or pass --data-dir)")]
    NoCacheDir {
        /// Data-set name.
        name: String,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: impl Into<String>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), action: action.into(), source }
    }
}

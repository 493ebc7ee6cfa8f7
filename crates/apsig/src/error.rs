//! The library's error type: every message names the file or the input at fault.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data set cannot be found, read or verified.
    #[error(transparent)]
    Data(#[from] apsig_data::DataError),
    /// An I/O failure on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file that exists but is not what it claims to be, or does not fit the others.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An argument or configuration value that cannot work.
    #[error("invalid {what}: {msg}")]
    Invalid {
        /// What the value is for.
        what: String,
        /// Why it cannot work.
        msg: String,
    },
    /// The oracle refused a request (bad probe or batch).
    #[error("oracle: {0}")]
    Oracle(String),
    /// The oracle refuses further queries for this secret (a per-secret query budget).
    #[error("oracle: the query budget of {0} per secret is spent")]
    Budget(u64),
    /// A figure cannot be rendered.
    #[error("report: {0}")]
    Report(#[from] apsig_report::ReportError),
}

/// `std::result::Result` with the library's `Error`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A `BadFile` error.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }
    /// An `Invalid` error.
    pub fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), msg: msg.into() }
    }
    /// An `Io` error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

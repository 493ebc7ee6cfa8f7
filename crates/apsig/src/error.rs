//! The library's error type: every message names the file or the input at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] apsig_data::DataError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that exists but is not what it claims to be, or does not fit the others.
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    /// An argument or configuration value that cannot work.
    #[error("invalid {what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("oracle: {0}")]
    Oracle(String),
    /// The oracle refuses further queries for this secret (a per-secret query budget).
    #[error("oracle: the query budget of {0} per secret is spent")]
    Budget(u64),
    #[error("report: {0}")]
    Report(#[from] apsig_report::ReportError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }
    pub fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), msg: msg.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

//! `ServeError`: what can stop the server from starting or running.

use std::path::PathBuf;

/// A failure to configure, start or run the server (request-level refusals are answers,
/// not errors: see the handlers).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is inconsistent or incomplete.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for [`crate::ServeConfig`].
    #[error("parsing {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// The target model could not be loaded (the message names the file).
    #[error("loading the model: {0}")]
    Model(#[from] apsig_onnx::Error),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listening address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another I/O failure (the runtime, the server thread).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The server thread or a startup task panicked.
    #[error("the server thread failed: {0}")]
    Thread(String),
}

/// Results of this crate's fallible setup functions.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

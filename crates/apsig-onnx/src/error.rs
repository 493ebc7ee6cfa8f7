//! The crate's error type: every error names the model file (or, for a network being
//! converted, the layer) and says what is wrong with it.

/// What went wrong loading, running or exporting an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be used as a classifier.
    #[error("{file}: cannot use as an ONNX classifier: {reason}")]
    Load {
        /// The model file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An apsig model file cannot be used.
    #[error(transparent)]
    Apsig(#[from] apsig::Error),
    /// Evaluating a loaded model failed.
    #[error("{file}: {reason}")]
    Eval {
        /// The model file.
        file: String,
        /// What failed.
        reason: String,
    },
    /// A layer of a network has no ONNX form.
    #[error("layer {layer}: {reason}")]
    Layer {
        /// Index of the layer in the network.
        layer: usize,
        /// Why it cannot be converted.
        reason: String,
    },
    /// A network cannot be exported to the file.
    #[error("{file}: cannot export: {reason}")]
    Export {
        /// The file that was to be written.
        file: String,
        /// Why the network cannot be exported.
        reason: String,
    },
    /// The exported file cannot be written.
    #[error("{file}: cannot write: {reason}")]
    Write {
        /// The file that was to be written.
        file: String,
        /// The I/O failure.
        reason: String,
    },
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

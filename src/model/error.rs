//! Why a model cannot be loaded or run: the error every part of `model` returns.

use std::path::PathBuf;

/// Why a model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file of the model folder cannot be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not as a source, so a chain prints it once).
        error: std::io::Error,
    },
    /// `model.toml` is not valid.
    #[error("{path}: {msg}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The labels file is not valid.
    #[error("{path}: {msg}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// tract cannot load or optimise the ONNX file, or it does not fit the manifest.
    #[error("{path}: {msg}")]
    Onnx {
        /// The ONNX file.
        path: PathBuf,
        /// What is wrong, with tract's reason.
        msg: String,
    },
    /// Running a window failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

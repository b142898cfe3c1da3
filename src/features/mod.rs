//! Feature extraction: the Kaldi-compatible log-mel filterbank the models are trained on.

pub mod fbank;
mod mel;

pub use fbank::{Fbank, FbankConfig, FbankError, WindowKind};

//! Feature extraction: the Kaldi-compatible log-mel filterbank the models are trained on, and
//! the blocks of samples a waveform model's windows are made of.

mod blocks;
pub mod fbank;
mod mel;

pub use blocks::Blocks;
pub use fbank::{Fbank, FbankConfig, FbankError, WindowKind};

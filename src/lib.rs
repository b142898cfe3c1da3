//! soundsentry: recognises sounds with audio transformers and reports them as events.
//!
//! # Layout
//! - [`features`]: incremental Kaldi fbank, equal to torchaudio's.
pub mod analysis;
pub mod audio;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detect;
pub mod features;
pub mod levels;
pub mod memory;
pub mod model;
pub mod mqtt;
pub mod notify;
pub mod npy;
pub mod pipeline;
pub mod source;
pub mod window;

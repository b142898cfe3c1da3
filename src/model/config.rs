//! What loading a model needs: its folder and how it runs (the `[model]` table, validated).

use std::num::NonZeroUsize;
use std::path::PathBuf;

use super::ops::Attention;
use super::runtime::Device;

/// A model folder and how to run it; [`Model::load`](super::Model::load) takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The model folder (`model.toml`, the ONNX file, the labels).
    pub path: PathBuf,
    /// Threads for tract's matrix products (`model.threads`).
    pub threads: NonZeroUsize,
    /// Where inference runs (`model.device`).
    pub device: Device,
    /// How a quantised model's attention products run (`model.attention`).
    pub attention: Attention,
}

impl ModelConfig {
    /// The folder at `path`, on the CPU, one thread, attention as `auto` picks it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            threads: NonZeroUsize::MIN,
            device: Device::Cpu,
            attention: Attention::Auto,
        }
    }

    /// With `threads` matmul threads (0 is taken as 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN);
        self
    }

    /// On `device`.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// With the attention products as `attention` says.
    pub fn attention(mut self, attention: Attention) -> Self {
        self.attention = attention;
        self
    }
}

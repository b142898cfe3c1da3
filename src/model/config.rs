//! What loading a model needs: its folder and how it runs (the `[model]` table, as written
//! and validated).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::kernels::Kernels;
use super::ops::Attention;
use super::runtime::Device;
use crate::config::values::{max_threads, parsed};

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

/// `[model]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawModel {
    pub path: Option<PathBuf>,
    pub threads: Option<usize>,
    pub device: Option<String>,
    pub attention: Option<String>,
    pub kernels: Option<String>,
}

/// The `[model]` table, and `model.kernels` when it is set; errors go to `err` with their key
/// paths. The path is relative to `base`, the configuration file's folder.
pub(crate) fn validate(
    raw: &RawModel,
    base: &Path,
    err: &mut impl FnMut(&str, String),
) -> (ModelConfig, Option<Kernels>) {
    let path = match &raw.path {
        Some(p) => base.join(p),
        None => {
            err("model.path", "missing: the model folder to use".into());
            Default::default()
        }
    };
    let threads = max_threads(raw.threads.unwrap_or(1)).unwrap_or_else(|e| {
        err("model.threads", e);
        NonZeroUsize::MIN
    });
    let device: Device = parsed(raw.device.as_deref(), "model.device", &mut *err);
    let attention: Attention = parsed(raw.attention.as_deref(), "model.attention", &mut *err);
    let kernels: Option<Kernels> = raw
        .kernels
        .as_deref()
        .map(|k| parsed(Some(k), "model.kernels", &mut *err));
    let cfg = ModelConfig {
        path,
        threads,
        device,
        attention,
    };
    (cfg, kernels)
}

//! Models: a folder with a manifest (`model.toml`), an ONNX file and a labels CSV, run by tract.

pub(crate) mod config;
mod error;
mod input;
pub mod kernels;
mod labels;
mod load;
mod manifest;
mod ops;
mod runtime;

pub use crate::format::slugify;
pub use config::ModelConfig;
pub use error::ModelError;
pub use input::prepare_window;
pub use kernels::Kernels;
pub use labels::Label;
pub use load::inference_model as read_onnx;
pub use manifest::{Activation, Manifest, Normalize};
pub use ops::{
    fold_shape_arithmetic, fuse_attention, fuse_layer_norms, fuse_scaled_casts, Attention,
};
pub use runtime::{declutter, rewrite_for_cpu, Device, GraphSpec, Rewrites, Runtime};

/// A loaded, optimised, runnable model with everything needed to feed it.
pub struct Model {
    /// The manifest, validated.
    pub manifest: Manifest,
    /// One label per model output, in output order.
    pub labels: Vec<Label>,
    runtime: Runtime,
}

impl Model {
    /// Loads `model.toml` of `cfg.path`, the labels and the ONNX file; optimises the graph for
    /// the manifest's window shape once, for `cfg`'s threads, device and attention. Every
    /// mismatch is reported here, never at run time. Inference runs on the calling thread (and
    /// on `cfg.threads - 1` helpers for the matrix products). CUDA that is not usable here
    /// falls back to the CPU with a warning; [`Model::device`] tells which one runs.
    pub fn load(cfg: &ModelConfig) -> Result<Self, ModelError> {
        let dir = cfg.path.as_path();
        let manifest = Manifest::load(&dir.join("model.toml"))?;
        // Before tract reads the instruction set: SOUNDSENTRY_KERNELS, unless chosen already.
        let _ = kernels::chosen();
        let labels_path = dir.join(&manifest.labels);
        let mut labels = labels::load(&labels_path)?;
        for (name, t) in &manifest.thresholds {
            match labels.iter_mut().find(|l| &l.name == name) {
                Some(l) => l.threshold = Some(*t),
                None => {
                    return Err(ModelError::Manifest {
                        path: dir.join("model.toml"),
                        msg: format!("thresholds: {name:?} is not a label of {}", manifest.labels),
                    })
                }
            }
        }
        let onnx = dir.join(&manifest.onnx);
        let load_phase = crate::memory::LoadPhase::start();
        let spec = GraphSpec {
            frames: manifest.window_frames,
            bins: manifest.fbank.mel_bins,
            dynamic: manifest.dynamic_frames,
            embedding: manifest.embedding.clone().zip(manifest.embedding_size),
        };
        let runtime = Runtime::load(&onnx, spec, cfg.threads.get(), cfg.device, cfg.attention)?;
        if runtime.num_outputs() != labels.len() {
            return Err(ModelError::Labels {
                path: labels_path,
                msg: format!(
                    "{} labels, but the model has {} outputs",
                    labels.len(),
                    runtime.num_outputs()
                ),
            });
        }
        if manifest.num_labels.is_some_and(|n| n != labels.len()) {
            return Err(ModelError::Labels {
                path: labels_path,
                msg: format!(
                    "{} labels, but model.toml says num_labels = {}",
                    labels.len(),
                    manifest.num_labels.unwrap_or_default()
                ),
            });
        }
        // Run-time allocator settings; the load's freed buffers go back to the OS.
        drop(load_phase);
        if manifest.quantized {
            if let Some(why) = kernels::int8_warning() {
                tracing::warn!(model = %manifest.name, "{why}");
            }
        }
        Ok(Self {
            manifest,
            labels,
            runtime,
        })
    }

    /// Scores a window already prepared with [`prepare_window`].
    pub fn score_prepared(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        let mut out = self.runtime.run(input)?;
        if self.manifest.output == Activation::Sigmoid {
            out.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp()));
        }
        Ok(out)
    }

    /// Scores a prepared window and returns its embedding too (one inference call), or
    /// `None` for the embedding when the model folder has none.
    pub fn score_and_embed(
        &self,
        input: &[f32],
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let (mut out, embedding) = self.runtime.run_both(input)?;
        if self.manifest.output == Activation::Sigmoid {
            out.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp()));
        }
        Ok((out, embedding))
    }

    /// Whether the model folder names an embedding output (`model.toml` `embedding`).
    pub fn has_embedding(&self) -> bool {
        self.runtime.has_embedding()
    }

    /// Runs the ONNX graph on a prepared window and returns its raw outputs.
    pub fn raw_outputs(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        self.runtime.run(input)
    }

    /// The device inference runs on.
    pub fn device(&self) -> Device {
        self.runtime.device()
    }

    /// The arithmetic of the attention products as they run: "bf16" (a quantised model with
    /// `model.attention = "auto"` on a CPU with AVX-512 BF16) or "f32".
    pub fn attention(&self) -> &'static str {
        self.runtime.attention()
    }

    /// The model's name from its manifest.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

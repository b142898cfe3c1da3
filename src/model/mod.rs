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
pub use manifest::{Activation, HeadSpec, InputKind, Manifest, Normalize, WaveformSpec};
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
    /// The base model's labels when a head replaces or follows them (`[head]`).
    pub base_labels: Option<Vec<Label>>,
    head: Option<crate::head::Head>,
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
        let (base_labels, head) = match &manifest.head {
            Some(spec) => {
                let (base, head) = load_head(dir, &manifest, spec, &labels)?;
                (Some(base), Some(head))
            }
            None => (None, None),
        };
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
            bins: manifest.frame_bins(),
            flat: manifest.input == manifest::InputKind::Waveform,
            dynamic: manifest.dynamic_frames,
            embedding: manifest.embedding.clone().zip(manifest.embedding_size),
        };
        let runtime = Runtime::load(&onnx, spec, cfg.threads.get(), cfg.device, cfg.attention)?;
        let graph_labels = base_labels.as_ref().unwrap_or(&labels);
        if runtime.num_outputs() != graph_labels.len() {
            let path = match &manifest.head {
                Some(h) => dir.join(&h.base_labels),
                None => labels_path,
            };
            return Err(ModelError::Labels {
                path,
                msg: format!(
                    "{} labels, but the model has {} outputs",
                    graph_labels.len(),
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
            base_labels,
            head,
            runtime,
        })
    }

    /// The manifest's output activation, in place: a sigmoid (of the logits times
    /// `sensitivity`, clipped to ±`logit_clip` first, where given), or nothing.
    fn activate(&self, out: &mut [f32]) {
        let m = &self.manifest;
        if m.output != Activation::Sigmoid {
            return;
        }
        let k = m.sensitivity.unwrap_or(1.0);
        let clip = m.logit_clip.unwrap_or(f32::INFINITY);
        out.iter_mut()
            .for_each(|x| *x = 1.0 / (1.0 + (-k * x.clamp(-clip, clip)).exp()));
    }

    /// Scores a window already prepared with [`prepare_window`]: one score per label of
    /// [`Model::labels`] (a head's scores computed from the same call's embedding).
    pub fn score_prepared(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        if self.head.is_some() {
            return Ok(self.score_and_embed(input)?.0);
        }
        let mut out = self.runtime.run(input)?;
        self.activate(&mut out);
        Ok(out)
    }

    /// Scores a prepared window and returns its embedding too (one inference call), or
    /// `None` for the embedding when the model folder has none.
    pub fn score_and_embed(
        &self,
        input: &[f32],
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let (mut out, embedding) = self.runtime.run_both(input)?;
        self.activate(&mut out);
        if let Some(head) = &self.head {
            let e = embedding.as_deref().ok_or_else(|| {
                ModelError::Inference("the head's embedding output gave nothing".into())
            })?;
            if let Some(bad) = e.iter().find(|v| !v.is_finite()) {
                return Err(ModelError::Inference(format!(
                    "the embedding holds {bad}; the head cannot score it"
                )));
            }
            let scores = head.scores(e);
            let keep = self
                .manifest
                .head
                .as_ref()
                .is_some_and(|h| h.keep_base_labels);
            out = if keep {
                out.into_iter().chain(scores).collect()
            } else {
                scores
            };
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

    /// The head, when the folder has one.
    pub fn head(&self) -> Option<&crate::head::Head> {
        self.head.as_ref()
    }

    /// The model's name from its manifest.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// Reads `[head]`'s base labels and weights, and checks them against the folder's labels:
/// the head's labels, after the base model's with `keep_base_labels`, in that order.
fn load_head(
    dir: &std::path::Path,
    manifest: &Manifest,
    spec: &HeadSpec,
    labels: &[Label],
) -> Result<(Vec<Label>, crate::head::Head), ModelError> {
    let base = labels::load(&dir.join(&spec.base_labels))?;
    let path = dir.join(&spec.file);
    let size = manifest.embedding_size.unwrap_or_default();
    let head = crate::head::Head::load(&path, size).map_err(|msg| ModelError::Manifest {
        path: path.clone(),
        msg,
    })?;
    let expected: Vec<&str> = spec
        .keep_base_labels
        .then_some(base.iter().map(|l| l.name.as_str()))
        .into_iter()
        .flatten()
        .chain(head.labels.iter().map(String::as_str))
        .collect();
    let have: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    if have != expected {
        return Err(ModelError::Labels {
            path: dir.join(&manifest.labels),
            msg: format!(
                "labels {have:?} do not match the head's {expected:?} ({} and keep_base_labels = {})",
                spec.file, spec.keep_base_labels
            ),
        });
    }
    Ok((base, head))
}

//! tract runtime: load, optimise and make runnable once, then run windows.

use std::path::Path;
use std::sync::Mutex;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::{Runnable, State};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use super::error::ModelError;
use super::ops::{self, Attention};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// tract's CPU runtime (the default).
    #[default]
    Cpu,
    /// tract's CUDA runtime; needs the `cuda` cargo feature and a GPU with its libraries,
    /// otherwise the CPU is used and a warning says why.
    Cuda,
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!("unknown device {other:?}: use \"cpu\" or \"cuda\"")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// One optimised tract plan for a fixed input shape ([`InputShape`]), with its run
/// state (the state holds its plan).
struct Plan {
    state: Box<dyn State>,
    outputs: usize,
    /// The graph output holding the embedding, by index, when the manifest names one.
    embedding: Option<usize>,
    device: Device,
    bf16_attention: bool,
}

/// The model's run states: the plan for the full window, and for a `dynamic_frames` model one
/// more for the last shorter window asked for (stream start, end of a file), built on demand
/// and dropped when a full window runs again, so a stream holds two plans only while it starts.
pub struct Runtime {
    state: Mutex<Box<dyn State>>,
    short: Mutex<Option<(usize, Box<dyn State>)>>,
    path: std::path::PathBuf,
    frames: usize,
    bins: usize,
    flat: bool,
    dynamic: bool,
    outputs: usize,
    embedding: Option<(String, usize)>,
    embedding_output: Option<usize>,
    executor: Executor,
    device: Device,
    requested: (Device, Attention),
    bf16_attention: bool,
}

/// What the manifest says of the graph: its window and its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSpec {
    /// Frames of a full window.
    pub frames: usize,
    /// Values a frame: mel bins, or a waveform model's samples a block.
    pub bins: usize,
    /// Whether the input is one row of `frames × bins` values, (1, samples), as a waveform
    /// model's is, rather than (1, frames, bins).
    pub flat: bool,
    /// Whether shorter windows run too (`dynamic_frames`).
    pub dynamic: bool,
    /// The embedding output's name and length, when the manifest names one.
    pub embedding: Option<(String, usize)>,
}

/// The graph's input shape for a window of `frames` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputShape {
    frames: usize,
    bins: usize,
    flat: bool,
}

impl InputShape {
    fn dims(self) -> Vec<usize> {
        if self.flat {
            vec![1, self.frames * self.bins]
        } else {
            vec![1, self.frames, self.bins]
        }
    }
}

impl Runtime {
    /// Loads the ONNX file, fixes the input to (1, frames, bins) (or (1, frames × bins) when
    /// `flat`), optimises, and checks that
    /// the output is one score vector (and the embedding output, when named, one vector of
    /// its length). tract's reason is kept in the error. With `threads` above 1, tract's
    /// matrix products run on a pool of that many threads. With `dynamic`, windows of fewer
    /// frames are run too, each length on a plan optimised for it.
    pub fn load(
        path: &Path,
        spec: GraphSpec,
        threads: usize,
        device: Device,
        attention: Attention,
    ) -> Result<Self, ModelError> {
        let GraphSpec {
            frames,
            bins,
            flat,
            dynamic,
            embedding,
        } = spec;
        let shape = InputShape { frames, bins, flat };
        let plan = build_plan(path, shape, device, attention, embedding.as_ref())?;
        let executor = if threads > 1 {
            Executor::multithread_with_name(threads, "soundsentry-mm")
        } else {
            Executor::SingleThread
        };
        Ok(Self {
            state: Mutex::new(plan.state),
            short: Mutex::new(None),
            path: path.to_owned(),
            frames,
            bins,
            flat,
            dynamic,
            outputs: plan.outputs,
            embedding_output: plan.embedding,
            embedding,
            executor,
            device: plan.device,
            requested: (device, attention),
            bf16_attention: plan.bf16_attention,
        })
    }

    /// The device inference actually runs on (the CPU when CUDA was asked for but is absent).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The arithmetic of the attention products as they run: "bf16" or "f32".
    pub fn attention(&self) -> &'static str {
        if self.bf16_attention {
            "bf16"
        } else {
            "f32"
        }
    }

    /// Number of scores per window.
    pub fn num_outputs(&self) -> usize {
        self.outputs
    }

    /// Whether the graph has the manifest's embedding output.
    pub fn has_embedding(&self) -> bool {
        self.embedding_output.is_some()
    }

    /// Runs one prepared window (`frames × bins` values: the full window, or for a dynamic
    /// model any whole number of frames up to it) and returns the raw outputs.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        Ok(self.run_both(input)?.0)
    }

    /// Runs one prepared window and returns the raw scores and, when the manifest names
    /// one, the embedding: one inference call for both.
    pub fn run_both(&self, input: &[f32]) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let fail = |e: anyhow::Error| ModelError::Inference(format!("{e:#}"));
        let frames = input.len() / self.bins;
        let fits = input.len().is_multiple_of(self.bins)
            && (frames == self.frames || (self.dynamic && (1..self.frames).contains(&frames)));
        if !fits {
            return Err(ModelError::Inference(format!(
                "window has {} values, expected {}{}",
                input.len(),
                self.frames * self.bins,
                if self.dynamic {
                    format!(" or fewer, a multiple of {}", self.bins)
                } else {
                    String::new()
                }
            )));
        }
        let shape = InputShape {
            frames,
            bins: self.bins,
            flat: self.flat,
        };
        let tensor = Tensor::from_shape(&shape.dims(), input).map_err(fail)?;
        let run = |state: &mut Box<dyn State>| {
            multithread_tract_scope(self.executor.clone(), || {
                state.run(tvec!(tensor.into_tvalue()))
            })
            .map_err(fail)
        };
        // The states are only shared with the caller's own thread; a poisoned lock means an
        // earlier run panicked inside tract, and its state is still a valid state to reuse.
        let out = if frames == self.frames {
            let mut short = self.short.lock().unwrap_or_else(|p| p.into_inner());
            if short.take().is_some() {
                tracing::debug!("plan for shorter windows released");
            }
            drop(short);
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            run(&mut state)?
        } else {
            let mut short = self.short.lock().unwrap_or_else(|p| p.into_inner());
            if short.as_ref().is_none_or(|(n, _)| *n != frames) {
                *short = None; // one plan at a time beside the full window's
                let started = std::time::Instant::now();
                let (device, attention) = self.requested;
                let embedding = self.embedding.as_ref();
                let plan =
                    build_plan(&self.path, shape, device, attention, embedding).map_err(|e| {
                        ModelError::Inference(format!("a window of {frames} frames: {e}"))
                    })?;
                tracing::debug!(
                    frames,
                    ms = started.elapsed().as_millis() as u64,
                    "plan for a shorter window optimised"
                );
                *short = Some((frames, plan.state));
            }
            let (_, state) = short.as_mut().expect("just built");
            run(state)?
        };
        let vector = |ix: usize| -> Result<Vec<f32>, ModelError> {
            let view = out[ix].to_plain_array_view::<f32>().map_err(fail)?;
            Ok(view.iter().copied().collect())
        };
        let embedding = self.embedding_output.map(vector).transpose()?;
        Ok((vector(0)?, embedding))
    }
}

/// Loads the ONNX file for the input shape, optimises it and makes it runnable.
fn build_plan(
    path: &Path,
    shape: InputShape,
    device: Device,
    attention: Attention,
    embedding: Option<&(String, usize)>,
) -> Result<Plan, ModelError> {
    let err = |stage: &str, e: anyhow::Error| ModelError::Onnx {
        path: path.to_owned(),
        msg: format!("{stage}: {e:#}"),
    };
    if !path.is_file() {
        return Err(ModelError::Onnx {
            path: path.to_owned(),
            msg: "file not found".into(),
        });
    }
    // value_info entries are shape hints; onnxruntime's quantiser writes symbolic ones
    // ("frames") that clash with the concrete window we set, so they are ignored.
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let model = super::load::inference_model(&onnx, path)
        .map_err(|e| err("not a loadable ONNX model", e))?;
    // Each stage of a load runs code the next does not; the pages of the stages done
    // leave the resident set (memory::release_code_pages), or the load's peak would
    // hold all of them on top of its largest buffers.
    crate::memory::release_code_pages();
    let embedding_output = match embedding {
        None => None,
        Some((name, _)) => Some(output_named(&model, name).ok_or_else(|| ModelError::Onnx {
            path: path.to_owned(),
            msg: format!(
                "model.toml names the embedding output {name:?}, which the graph does not have"
            ),
        })?),
    };
    let declared = model.input_fact(0).map_err(|e| err("no input", e))?.clone();
    let want = shape.dims();
    if let Some(declared) = declared.shape.concretize() {
        let fixed: Vec<Option<usize>> = declared.iter().map(|d| d.to_usize().ok()).collect();
        let fits = fixed.len() == want.len()
            && fixed
                .iter()
                .zip(&want)
                .all(|(got, w)| got.is_none_or(|g| g == *w));
        if !fits {
            return Err(ModelError::Onnx {
                path: path.to_owned(),
                msg: format!(
                    "input shape {declared:?} does not fit the manifest's ({})",
                    want.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let model = model
        .with_input_fact(0, f32::fact(&want).into())
        .map_err(|e| err("setting the input shape", e))?
        .into_typed()
        .and_then(declutter)
        .map_err(|e| err("typing the graph for the manifest's input shape", e))?;
    let out = model
        .output_fact(0)
        .map_err(|e| err("no output", e))?
        .shape
        .as_concrete()
        .map(|s| s.to_vec());
    let outputs = match out.as_deref() {
        Some([1, n]) => *n,
        other => {
            return Err(ModelError::Onnx {
                path: path.to_owned(),
                msg: format!("output shape {other:?}, expected (1, labels)"),
            })
        }
    };
    if let (Some(ix), Some((name, size))) = (embedding_output, embedding) {
        let shape = model
            .output_fact(ix)
            .map_err(|e| err("no embedding output", e))?
            .shape
            .as_concrete()
            .map(|s| s.to_vec());
        if shape.as_deref() != Some(&[1, *size]) {
            return Err(ModelError::Onnx {
                path: path.to_owned(),
                msg: format!(
                    "embedding output {name:?} has shape {shape:?}, model.toml says (1, {size})"
                ),
            });
        }
    }
    let (plan, device, bf16_attention) = prepare(model, device, attention)
        .map_err(|e| err("optimising for the manifest's input shape", e))?;
    let state = plan
        .spawn()
        .map_err(|e| err("making the model runnable", e))?;
    Ok(Plan {
        state,
        outputs,
        embedding: embedding_output,
        device,
        bf16_attention,
    })
}

/// The index of the graph output named `name` (its ONNX name).
fn output_named(model: &InferenceModel, name: &str) -> Option<usize> {
    let outlets = model.output_outlets().ok()?;
    outlets
        .iter()
        .position(|&o| model.outlet_label(o) == Some(name))
}

/// Declutters a typed model as a load does: constant shape arithmetic folded first
/// (`consts.rs`), then tract's declutter.
pub fn declutter(mut model: TypedModel) -> TractResult<TypedModel> {
    match ops::fold_shape_arithmetic(&mut model) {
        Ok(0) => {}
        Ok(folded) => tracing::debug!(folded, "constant shape arithmetic folded"),
        // Only memory is at stake: tract's declutter folds the same values.
        Err(e) => tracing::debug!(error = %format!("{e:#}"), "shape arithmetic left to tract"),
    }
    // Here rather than before the fold: the load's peak is lowest with the typing and fold
    // code gone before tract's declutter (docs/benchmarks-history.md, "int8 peak memory").
    crate::memory::release_code_pages();
    model.into_decluttered()
}

/// How many places of a model each load-time rewrite changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrites {
    /// Attention blocks fused into one op.
    pub attention: usize,
    /// int8 products' i32 → f32 casts and scales fused.
    pub scaled_casts: usize,
    /// Grouped int8 convolutions split into one per group.
    pub split_convs: usize,
    /// Layer norms' mean, centring and RMS scaling fused into one pass per row.
    pub layer_norms: usize,
    /// Fused attention blocks whose products run in bfloat16 on this CPU.
    pub bf16_attention: usize,
}

/// The load-time rewrites of a decluttered model for tract's CPU runtime, before it is
/// optimised: fused attention, the int8 products' scaled casts, large grouped int8
/// convolutions split per group, fused layer norms.
pub fn rewrite_for_cpu(model: &mut TypedModel, attention: Attention) -> TractResult<Rewrites> {
    let fused = ops::fuse_attention(model, attention)?;
    let bf16_attention = model
        .nodes()
        .iter()
        .filter_map(|n| n.op_as::<ops::attention::FusedAttention>())
        .filter(|op| op.precision.runs_bf16())
        .count();
    Ok(Rewrites {
        attention: fused,
        scaled_casts: ops::fuse_scaled_casts(model)?,
        split_convs: ops::split_grouped_convs(model)?,
        layer_norms: ops::fuse_layer_norms(model)?,
        bf16_attention,
    })
}

/// Makes the optimised model runnable on `device`, or on the CPU with a warning when CUDA is
/// not usable here.
fn prepare(
    model: TypedModel,
    device: Device,
    attention: Attention,
) -> TractResult<(Box<dyn Runnable>, Device, bool)> {
    if device == Device::Cuda {
        match cuda_runtime() {
            Ok(rt) => return Ok((rt.prepare(model)?, Device::Cuda, false)),
            Err(why) => {
                tracing::warn!(reason = %why, "model.device = \"cuda\" unavailable; running on the CPU")
            }
        }
    }
    let mut model = model;
    let done = rewrite_for_cpu(&mut model, attention)?;
    tracing::debug!(?done, "load-time rewrites");
    Ok((
        Box::new(model.into_optimized()?.into_runnable()?),
        Device::Cpu,
        done.bf16_attention > 0,
    ))
}

#[cfg(feature = "cuda")]
fn cuda_runtime() -> Result<&'static dyn tract_onnx::tract_core::runtime::Runtime, String> {
    // Linking tract-cuda registers its runtime under the name "cuda".
    use tract_cuda as _;
    let rt = tract_onnx::tract_core::runtime::runtime_for_name("cuda")
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| "tract's CUDA runtime is not registered".to_string())?;
    rt.check()
        .map_err(|e| format!("no usable GPU or CUDA libraries: {e:#}"))?;
    Ok(rt)
}

#[cfg(not(feature = "cuda"))]
fn cuda_runtime() -> Result<&'static dyn tract_onnx::tract_core::runtime::Runtime, String> {
    Err("this build has no CUDA support (build with `--features cuda`)".into())
}

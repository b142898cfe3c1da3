//! tract runtime: load, optimise and make runnable once, then run windows.

use std::path::Path;
use std::sync::Arc;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use super::ModelError;

/// An optimised tract plan for a fixed input shape (1, frames, mel_bins).
pub struct Runtime {
    plan: Arc<TypedRunnableModel>,
    frames: usize,
    bins: usize,
    outputs: usize,
    executor: Executor,
}

impl Runtime {
    /// Loads the ONNX file, fixes the input to (1, frames, bins), optimises, and checks that
    /// the output is one score vector. tract's reason is kept in the error. With `threads`
    /// above 1, tract's matrix products run on a pool of that many threads.
    pub fn load(
        path: &Path,
        frames: usize,
        bins: usize,
        threads: usize,
    ) -> Result<Self, ModelError> {
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
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(path)
            .map_err(|e| err("not a loadable ONNX model", e))?;
        let declared = model.input_fact(0).map_err(|e| err("no input", e))?.clone();
        if let Some(shape) = declared.shape.concretize() {
            let want = [1, frames, bins];
            let fixed: Vec<Option<usize>> = shape.iter().map(|d| d.to_usize().ok()).collect();
            let fits = fixed.len() == 3
                && fixed
                    .iter()
                    .zip(want)
                    .all(|(got, w)| got.is_none_or(|g| g == w));
            if !fits {
                return Err(ModelError::Onnx {
                    path: path.to_owned(),
                    msg: format!(
                        "input shape {shape:?} does not fit the manifest's (1, {frames}, {bins})"
                    ),
                });
            }
        }
        let model = model
            .with_input_fact(0, f32::fact([1, frames, bins]).into())
            .map_err(|e| err("setting the input shape", e))?
            .into_optimized()
            .map_err(|e| err("optimising for the manifest's input shape", e))?;
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
        let plan = model
            .into_runnable()
            .map_err(|e| err("making the model runnable", e))?;
        let executor = if threads > 1 {
            Executor::multithread_with_name(threads, "soundsentry-mm")
        } else {
            Executor::SingleThread
        };
        Ok(Self {
            plan,
            frames,
            bins,
            outputs,
            executor,
        })
    }

    /// Number of scores per window.
    pub fn num_outputs(&self) -> usize {
        self.outputs
    }

    /// Runs one prepared window (`frames × bins` values) and returns the raw outputs.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        let fail = |e: anyhow::Error| ModelError::Inference(format!("{e:#}"));
        if input.len() != self.frames * self.bins {
            return Err(ModelError::Inference(format!(
                "window has {} values, expected {}",
                input.len(),
                self.frames * self.bins
            )));
        }
        let tensor = Tensor::from_shape(&[1, self.frames, self.bins], input).map_err(fail)?;
        let out = multithread_tract_scope(self.executor.clone(), || {
            self.plan.run(tvec!(tensor.into_tvalue()))
        })
        .map_err(fail)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(fail)?;
        Ok(view.iter().copied().collect())
    }
}

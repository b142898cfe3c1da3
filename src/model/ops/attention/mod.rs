//! Fused attention on the CPU: softmax(Q·Kᵀ·scale + bias)·V head by head, in row blocks that
//! stay in cache, on tract's matrix kernels or (AVX-512) register tiles of its own — no
//! heads × tokens × tokens tensor.
//!
//! tract runs the two attention products of AST/BEATs as batched products of two activations
//! that write (and page-fault in) a 70 MB score tensor per layer; this op computes a block of
//! query rows at a time (scores → softmax → ·V) and normalises the softmax inside the second
//! product's store. A block is as many rows as the kernel's tile is high, and its scores are
//! stored in the kernel's own packed layout, so the softmax runs on whole vectors and P·V needs
//! no packing. `fuse.rs` puts this op in place of the matched subgraph at load time. On a CPU
//! with AVX-512 `avx512.rs` runs the same blocks on its own register tiles, in f32 or, for a
//! quantised model (`Precision::Bf16`), in bfloat16.

//! The files: this one, the op and its driver (which path, heads in parallel);
//! `operand.rs`, the operands' layouts and the biases; `softmax.rs`, softmax, exp and bfloat16
//! rounding; `tract_path.rs`, the blocks on tract-linalg's kernels; `avx512.rs`, the blocks on
//! AVX-512 register tiles; `tests.rs`, everything against a plain implementation.

// The op's output is allocated uninitialised and written in full by `attend`.
#![allow(unsafe_code)]

use tract_linalg::multithread::{current_tract_executor, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[cfg(target_arch = "x86_64")]
mod avx512;
mod operand;
mod softmax;
#[cfg(test)]
mod tests;
mod tract_path;

use operand::Bias;
pub use operand::{Layout, Operand};
use tract_path::Kernels;

/// The arithmetic of attention's two products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout, as the graph computes it.
    F32,
    /// Q, K, V and the probabilities rounded to bfloat16 for the products, f32 sums, scores
    /// and softmax where the CPU has AVX-512 BF16; f32 elsewhere.
    Bf16,
}

impl Precision {
    /// Whether `attend` runs this precision's bf16 products on this CPU.
    pub fn runs_bf16(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self == Precision::Bf16 && avx512::available(true)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// softmax(Q·Kᵀ·scale [+ bias]) · V over heads, with inputs and output in any layout.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedAttention {
    /// Q, K, V layouts (head, token, feature).
    pub q: Layout,
    /// See `q`.
    pub k: Layout,
    /// See `q`.
    pub v: Layout,
    /// Additive bias on the scores (head, query, key), broadcast over heads if its head axis
    /// has size 1; a fourth input when present.
    pub bias: Option<Layout>,
    /// A gate on the bias (head, query, key of size 1): the scores get gate × bias (BEATs'
    /// gated relative-position bias); a fifth input when present, with a bias. The product
    /// is added block by block, never stored whole; a bias whose query axis is contiguous
    /// (key-major) is read a vector at a time.
    pub gate: Option<Layout>,
    /// With a gate: the bias input holds only the diagonals of each head's (query, key)
    /// table, as (head or 1, 1, n + m − 1) — bias(h, q, k) = input\[h, 0, q − k + m − 1\],
    /// a relative-position bias that depends on k − q alone — read a vector of rows at a time.
    pub bias_diagonals: bool,
    /// Output layout (head, query token, feature).
    pub out: Layout,
    /// Output shape.
    pub out_shape: TVec<usize>,
    /// Factor on Q·Kᵀ before the bias is added.
    pub scale: f32,
    /// The products' arithmetic.
    pub precision: Precision,
}

impl Eq for FusedAttention {}

impl Op for FusedAttention {
    fn name(&self) -> StaticName {
        "FusedAttention".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale={} bias={} gated={} diagonals={} precision={:?}",
            self.scale,
            self.bias.is_some(),
            self.gate.is_some(),
            self.bias_diagonals,
            self.precision
        )])
    }

    op_as_typed_op!();
}

impl TypedOp for FusedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            self.gate.is_none() || self.bias.is_some(),
            "a gate without a bias"
        );
        ensure!(inputs.len() == 3 + self.bias.is_some() as usize + self.gate.is_some() as usize);
        ensure!(inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    as_op!();
}

impl EvalOp for FusedAttention {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let q = self.q.operand(&inputs[0])?;
        let k = self.k.operand(&inputs[1])?;
        let v = self.v.operand(&inputs[2])?;
        let bias = match (&self.bias, inputs.get(3)) {
            (Some(layout), Some(b)) => Some(layout.operand(b)?),
            _ => None,
        };
        let gate = match (&self.gate, inputs.get(4)) {
            (Some(layout), Some(g)) => Some(layout.operand(g)?),
            _ => None,
        };
        let bias = match (bias, gate) {
            (Some(bias), Some(gate)) => Some(ScoreBias::Gated {
                bias,
                gate,
                diagonals: self.bias_diagonals,
            }),
            (Some(bias), None) => Some(ScoreBias::Added(bias)),
            _ => None,
        };
        // SAFETY: f32 has no invalid bit patterns, and `attend` writes every value: each
        // head's every query row, all features, and the other axes have size 1.
        let out = unsafe { Tensor::uninitialized::<f32>(&self.out_shape)? };
        let out_operand = self.out.operand(&out)?;
        attend(q, k, v, bias, self.scale, self.precision, out_operand)?;
        Ok(tvec!(out.into_tvalue()))
    }
}

/// The bias `attend` adds to the scores.
#[derive(Clone, Copy, Debug)]
pub enum ScoreBias<'a> {
    /// bias (h or 1, n, m), added as it is.
    Added(Operand<'a>),
    /// gate (h or 1, n, 1) × bias: the bias (h or 1, n, m), or with `diagonals` its values
    /// along the diagonals, (h or 1, 1, n + m − 1) with bias(h, q, k) at q − k + m − 1.
    Gated {
        /// The bias, or its diagonals.
        bias: Operand<'a>,
        /// The per-query gate.
        gate: Operand<'a>,
        /// Whether `bias` holds only the diagonals.
        diagonals: bool,
    },
}

/// softmax(Q·Kᵀ·scale + bias)·V for each head into `out`; Q and `out` (h, n, d), K and V
/// (h, m, d), the bias as `ScoreBias` says, the products in `precision` where the CPU runs it
/// (else f32). Heads run in parallel on tract's executor, each writing its own rows and
/// features of `out`.
pub fn attend(
    q: Operand,
    k: Operand,
    v: Operand,
    bias: Option<ScoreBias>,
    scale: f32,
    precision: Precision,
    out: Operand,
) -> TractResult<()> {
    attend_on(Path::for_precision(precision), q, k, v, bias, scale, out)
}

/// Which kernels run the two products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// tract-linalg's f32 kernels (`Kernels`).
    Tract,
    /// This module's AVX-512 register tiles (`avx512.rs`), f32 or bfloat16.
    #[cfg(target_arch = "x86_64")]
    Avx512 { bf16: bool },
}

impl Path {
    /// The fastest path for `precision` on this CPU: the AVX-512 tiles where it has
    /// AVX-512 (and BF16 for bfloat16), else tract's kernels in f32.
    fn for_precision(precision: Precision) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let bf16 = precision.runs_bf16();
            if bf16 || avx512::available(false) {
                return Path::Avx512 { bf16 };
            }
        }
        let _ = precision;
        Path::Tract
    }
}

/// `attend` on the given path.
fn attend_on(
    path: Path,
    q: Operand,
    k: Operand,
    v: Operand,
    bias: Option<ScoreBias>,
    scale: f32,
    out: Operand,
) -> TractResult<()> {
    let [heads, n, d] = q.dims;
    let m = k.dims[1];
    ensure!(
        k.dims == [heads, m, d] && v.dims == [heads, m, d] && out.dims == q.dims,
        "Q/K/V/output shapes disagree: {:?} {:?} {:?} {:?}",
        q.dims,
        k.dims,
        v.dims,
        out.dims
    );
    let fits = |b: &Operand, dims: [usize; 2], what: &str| {
        ensure!(
            (b.dims[0] == heads || b.dims[0] == 1) && b.dims[1..] == dims,
            "{what} shape {:?} does not fit scores ({heads}, {n}, {m})",
            b.dims
        );
        Ok(())
    };
    let bias = match bias {
        Some(ScoreBias::Added(b)) => {
            fits(&b, [n, m], "bias")?;
            Some(Bias::Added(b))
        }
        Some(ScoreBias::Gated {
            bias,
            gate,
            diagonals,
        }) => {
            fits(&gate, [n, 1], "gate")?;
            let table = if diagonals {
                fits(&bias, [1, n + m - 1], "bias diagonals")?;
                bias.diagonals(m)?
            } else {
                fits(&bias, [n, m], "bias")?;
                bias.plain()?
            };
            Some(Bias::Gated(table, gate.plain()?))
        }
        None => None,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = path; // one path off x86-64: tract's
    #[cfg(target_arch = "x86_64")]
    if let Path::Avx512 { bf16 } = path {
        return each_head(heads, |h| {
            avx512::head(h, &q, &k, &v, bias.as_ref(), scale, &out, bf16)
        });
    }
    let kernels = Kernels::new(n, m, d)?;
    let scale = tensor0(scale);
    each_head(heads, |h| {
        kernels.head(h, &q, &k, &v, bias.as_ref(), &scale, &out)
    })
}

/// `one_head` for heads 0..heads, in parallel on tract's executor when it has threads.
fn each_head(
    heads: usize,
    one_head: impl Fn(usize) -> TractResult<()> + Sync + Send,
) -> TractResult<()> {
    match current_tract_executor() {
        Executor::MultiThread(pool) if heads > 1 => pool.install(|| {
            use rayon::prelude::*;
            (0..heads).into_par_iter().try_for_each(one_head)
        }),
        _ => (0..heads).try_for_each(one_head),
    }
}

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

// tract-linalg's matrix-kernel entry points (`run`, `c_view`, `wrap`) are `unsafe fn`s: they
// trust the caller for shapes and strides. Every call below passes tensors this module
// allocated with exactly the shapes given to the kernel, checked by the unit tests against a
// plain implementation. The softmax is compiled for AVX-512 or AVX2 where the CPU has them
// (`#[target_feature]`, called only after the feature check).
#![allow(unsafe_code)]

use tract_linalg::mmm::{
    AsInputValue, FusedSpec, MMMInputFormat, MMMInputValue, MatMatMul, PackedExoticFact,
};
use tract_linalg::multithread::{current_tract_executor, Executor};
use tract_linalg::pack::PackedFormat;
use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// The arithmetic of attention's two products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout, as the graph computes it.
    F32,
    /// Q, K, V and the probabilities rounded to bfloat16 for the products, f32 sums, scores
    /// and softmax (`bf16.rs`) where the CPU has AVX-512 BF16; f32 elsewhere.
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

/// Where the head, token and feature axes of one operand sit; every other axis has size 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Axis positions of (head, token, feature) — for the scores and the bias, (head, query
    /// token, key token).
    pub axes: [usize; 3],
    /// Rank of the operand.
    pub rank: usize,
}

impl Layout {
    /// `tensor` seen as (head, token, feature), in place: no copy, whatever its layout.
    fn operand<'a>(&self, tensor: &'a Tensor) -> TractResult<Operand<'a>> {
        ensure!(
            tensor.rank() == self.rank && tensor.datum_type() == f32::datum_type(),
            "attention operand {:?} does not fit rank {} f32",
            tensor,
            self.rank
        );
        ensure!(
            (0..self.rank).all(|a| self.axes.contains(&a) || tensor.shape()[a] == 1),
            "attention operand has an extra axis of size > 1"
        );
        Ok(Operand {
            tensor,
            dims: self.axes.map(|a| tensor.shape()[a]),
            strides: self.axes.map(|a| tensor.strides()[a]),
        })
    }
}

/// An operand as (head, token, feature) over its tensor: the sizes and element strides of the
/// three axes. A head axis of size 1 serves every head.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    tensor: &'a Tensor,
    dims: [usize; 3],
    strides: [isize; 3],
}

/// Rows of one head of an operand: where they start and their (token, feature) shape and
/// strides, for a `TensorView` over the operand's tensor.
struct Rows {
    offset_bytes: isize,
    shape: [usize; 2],
    strides: [isize; 2],
}

impl Operand<'_> {
    /// Tokens `from..from + len` of head `h` (head 0 if the operand has one for all).
    fn rows(&self, h: usize, from: usize, len: usize) -> Rows {
        let h = if self.dims[0] == 1 { 0 } else { h };
        debug_assert!(h < self.dims[0] && from + len <= self.dims[1]);
        Rows {
            offset_bytes: (h as isize * self.strides[0] + from as isize * self.strides[1]) * 4,
            shape: [len, self.dims[2]],
            strides: [self.strides[1], self.strides[2]],
        }
    }

    /// The view of `rows` (taken from this operand, so inside its tensor).
    fn view<'v>(&'v self, rows: &'v Rows) -> TensorView<'v> {
        // SAFETY: `rows` comes from `Operand::rows`, whose head and token range lie inside
        // this operand's dims, read from the tensor's own shape and strides.
        unsafe {
            TensorView::from_bytes(self.tensor, rows.offset_bytes, &rows.shape, &rows.strides)
        }
    }

    /// `rows` as a flat view from their first value to their last, for a kernel store given
    /// its strides apart: tract-linalg bounds a partial tile's reads of an added operand by
    /// the view's number of values, as if it were dense.
    fn span<'v>(&'v self, rows: &'v Rows, len: &'v [usize; 1]) -> TensorView<'v> {
        // SAFETY: as in `view`; `len` is `Rows::span_len`, the values up to the last one.
        unsafe { TensorView::from_bytes(self.tensor, rows.offset_bytes, len, &[1]) }
    }
}

impl Rows {
    /// Values from the first of these rows to the last (strides are non-negative here).
    fn span_len(&self) -> [usize; 1] {
        let last = (self.shape[0].max(1) - 1) as isize * self.strides[0]
            + (self.shape[1].max(1) - 1) as isize * self.strides[1];
        [last as usize + 1]
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

/// The bias of the scores as the kernels take it.
enum Bias<'a> {
    /// Added by the kernel as it stores the scores.
    Added(Operand<'a>),
    /// gate × bias, added to each block of scores before the softmax (`add_gated_bias`).
    Gated(Plain<'a>, Plain<'a>),
}

/// An operand's values as a slice: value (h, i, j) at `origin + h·s0 + i·s1 + j·s2` for the
/// strides `s`, with its (head, token, feature) sizes.
struct Plain<'a> {
    values: &'a [f32],
    dims: [usize; 3],
    origin: isize,
    strides: [isize; 3],
}

impl<'a> Operand<'a> {
    /// The operand's values as a slice (its tensor is plain memory, its strides positive).
    fn plain(&self) -> TractResult<Plain<'a>> {
        ensure!(
            self.strides.iter().all(|&s| s >= 0),
            "negative strides in an attention operand"
        );
        let values = self.tensor.try_as_plain_ram()?.as_slice::<f32>()?;
        Ok(Plain {
            values,
            dims: self.dims,
            origin: 0,
            strides: self.strides,
        })
    }

    /// A (head, 1, n + m − 1) operand of diagonals as the (head, n, m) table they make:
    /// (h, q, k) reads diagonal q − k + m − 1, so the query stride is the diagonals' and the
    /// key stride its opposite.
    fn diagonals(&self, m: usize) -> TractResult<Plain<'a>> {
        let mut table = self.plain()?;
        let [h, _, along] = table.strides;
        let len = table.dims[2];
        table.dims = [table.dims[0], len + 1 - m, m];
        table.origin = (m as isize - 1) * along;
        table.strides = [h, along, -along];
        Ok(table)
    }
}

/// `x` rounded to bfloat16 (to nearest, ties to even, as `vcvtneps2bf16`), as its 16 bits;
/// a NaN stays a NaN.
#[cfg(any(target_arch = "x86_64", test))]
fn bf16(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40;
    }
    (b + 0x7fff + ((b >> 16) & 1)) >> 16
}

/// Adds bias(h, r0 + r, j) to the block's score of row r and key j, stored at
/// `p[j·lanes + r]`, for the block's `rows` rows.
fn add_bias(p: &mut [f32], lanes: usize, bias: &Plain, h: usize, r0: usize, rows: usize) {
    let h = if bias.dims[0] == 1 { 0 } else { h };
    let [sh, sq, sk] = bias.strides;
    // Inside the values: the bias's shape was checked against the scores' by `attend`.
    let b0 = bias.origin + h as isize * sh + r0 as isize * sq;
    for (j, block) in p.chunks_exact_mut(lanes).enumerate() {
        let at = b0 + j as isize * sk;
        for (r, s) in block[..rows].iter_mut().enumerate() {
            *s += bias.values[(at + r as isize * sq) as usize];
        }
    }
}

/// Adds gate(h, r0 + r) × bias(h, r0 + r, j) to the block's score of row r and key j, stored
/// at `p[j·lanes + r]`, for the block's `rows` rows (`g`, `lanes` long, holds the gates):
/// the product rounded, then the sum, as the graph's Mul then Add. A bias whose query axis
/// is contiguous is read a vector of rows at a time.
fn add_gated_bias(
    p: &mut [f32],
    g: &mut [f32],
    bias: &Plain,
    gate: &Plain,
    h: usize,
    r0: usize,
    rows: usize,
) {
    let lanes = g.len();
    let head = |x: &Plain| {
        x.origin
            + if x.dims[0] == 1 {
                0
            } else {
                h as isize * x.strides[0]
            }
    };
    // Indices below are inside the values: the operands' shapes were checked against the
    // scores' by `attend`.
    let g0 = head(gate) + r0 as isize * gate.strides[1];
    let g = &mut g[..rows];
    for (r, g) in g.iter_mut().enumerate() {
        *g = gate.values[(g0 + r as isize * gate.strides[1]) as usize];
    }
    let b0 = head(bias) + r0 as isize * bias.strides[1];
    let [_, sq, sk] = bias.strides;
    for (j, block) in p.chunks_exact_mut(lanes).enumerate() {
        let at = b0 + j as isize * sk;
        if sq == 1 {
            let b = &bias.values[at as usize..at as usize + rows];
            for ((s, b), g) in block[..rows].iter_mut().zip(b).zip(&*g) {
                *s += g * b;
            }
        } else {
            for (r, (s, g)) in block[..rows].iter_mut().zip(&*g).enumerate() {
                *s += g * bias.values[(at + r as isize * sq) as usize];
            }
        }
    }
}

/// The scores' kernel runs both products, one block of query rows at a time — as many rows as
/// the kernel's tile height, its "lanes" — except where a narrower kernel of the same height
/// (`NARROWER`) pads P·V's d features less. Q·Kᵀ stores the block's scores straight in the
/// kernel's packed left-operand layout (key-major, the block's rows side by side), so the
/// softmax reads and writes whole vectors of lanes, and P·V takes the probabilities as they
/// are, without a packing pass. The operands are packed, and the output stored, straight
/// from and to the op's tensors, in their own layouts.
struct Kernels {
    m: usize,
    /// The scores' kernel (Q·Kᵀ).
    mmm: Box<dyn MatMatMul>,
    /// The kernels' left-operand packing: Q blocks, and the probabilities' layout.
    a_fmt: PackedFormat,
    /// The scores' right-operand packing (K).
    b_fmt: Box<dyn MMMInputFormat>,
    /// P·V's kernel: the scores' one, or a narrower one with the same left-operand packing.
    pv: Box<dyn MatMatMul>,
    /// P·V's right-operand packing (V).
    pv_b_fmt: Box<dyn MMMInputFormat>,
}

/// A wide f32 kernel and a narrower one of the same height and packing, for P·V where the
/// head's d is a multiple of the narrower width but not of the wider: AST's and BEATs' d = 64
/// pads to 72 on a 12-column tile (11 % of P·V's work wasted), to 64 on an 8-column one.
const NARROWER: &[(&str, &str)] = &[("avx512_mmm_f32_32x12", "avx512_mmm_f32_32x8")];

impl Kernels {
    fn new(n: usize, m: usize, d: usize) -> TractResult<Self> {
        let dispatch = tract_linalg::MmmDispatch::native();
        let mmm = dispatch
            .preferred_kernel(f32::datum_type(), Some(n), Some(d), Some(m))
            .context("no f32 matrix kernel on this machine")?;
        let a_fmt = Self::plain_left(&*mmm)?;
        let b_fmt = mmm.packings()[0].1.clone();
        let padded = |nr: usize| d.div_ceil(nr) * nr;
        let narrower = NARROWER
            .iter()
            .filter(|(wide, _)| *wide == mmm.name())
            .filter_map(|(_, narrow)| {
                dispatch
                    .runnable()
                    .iter()
                    .find(|k| k.name() == *narrow && k.internal_type() == f32::datum_type())
            })
            .find(|k| {
                k.mr() == mmm.mr()
                    && padded(k.nr()) < padded(mmm.nr())
                    && Self::plain_left(&***k).is_ok_and(|f| f == a_fmt)
            });
        let pv = narrower.map_or_else(|| mmm.clone(), |k| k.clone());
        let pv_b_fmt = pv.packings()[0].1.clone();
        Ok(Self {
            m,
            mmm,
            a_fmt,
            b_fmt,
            pv,
            pv_b_fmt,
        })
    }

    /// A kernel's left-operand packing, which must be a plain f32 one as high as its tile.
    fn plain_left(mmm: &dyn MatMatMul) -> TractResult<PackedFormat> {
        mmm.packings()[0]
            .0
            .downcast_ref::<PackedFormat>()
            .filter(|a| a.r == mmm.mr() && a.dt == f32::datum_type())
            .with_context(|| format!("{}: left operand not in a plain packed layout", mmm.name()))
            .cloned()
    }

    /// Head `h`: scores of Q (n, d) against K (m, d), plus the bias (n, m), softmax, times V
    /// (m, d), stored in `out` (n, d).
    #[allow(clippy::too_many_arguments)]
    fn head(
        &self,
        h: usize,
        q: &Operand,
        k: &Operand,
        v: &Operand,
        bias: Option<&Bias>,
        scale: &Tensor,
        out: &Operand,
    ) -> TractResult<()> {
        let (n, m) = (q.dims[1], self.m);
        let lanes = self.mmm.mr();
        let (k_rows, v_rows) = (k.rows(h, 0, m), v.rows(h, 0, m));
        // K as the right operand of Q·Kᵀ: n = key token (axis 0), k = feature (axis 1).
        let k_packed = self.b_fmt.prepare_one_view(&k.view(&k_rows), 1, 0)?;
        // V as the right operand of P·V: k = key token (axis 0), n = feature (axis 1).
        let v_packed = self.pv_b_fmt.prepare_one_view(&v.view(&v_rows), 0, 1)?;
        let panel_len = self.a_fmt.single_panel_len(m);
        // SAFETY: f32 has no invalid bit patterns and the buffer is zeroed at once; the kernel
        // may read the panel's padding records, which stay zero.
        let mut probs =
            unsafe { Tensor::uninitialized_aligned::<f32>(&[panel_len], self.a_fmt.alignment())? };
        probs.as_bytes_mut().fill(0);
        let fact = std::sync::Arc::new(PackedExoticFact {
            format: Box::new(self.a_fmt.clone()),
            mn: lanes.to_dim(),
            k: m,
        });
        let mut inv_sum = Tensor::zero::<f32>(&[lanes])?;
        // A block's gates, for a gated bias.
        let mut gates = vec![0f32; lanes];
        // SAFETY: the scratch space is this kernel's own and serves only its calls below.
        let mut scratch = unsafe { self.mmm.allocate_scratch_space() };
        // SAFETY: as above, for P·V's kernel.
        let mut pv_scratch = unsafe { self.pv.allocate_scratch_space() };
        for r0 in (0..n).step_by(lanes) {
            // The last block may have fewer rows: both products then run on `rows` rows;
            // the panel's other rows keep finite values from the block before (or zeros),
            // whose results are never stored.
            let rows = lanes.min(n - r0);
            let q_rows = q.rows(h, r0, rows);
            // The block's rows as the left operand: m = query row (axis 0), k = feature.
            let q_packed = self.a_fmt.pack_tensor_view(&q.view(&q_rows), 1, 0)?;
            let added = match bias {
                Some(Bias::Added(b)) => Some((b, b.rows(h, r0, rows))),
                _ => None,
            };
            // SAFETY: the product is rows × d · d × m; row r, column j lands at r + j·lanes,
            // inside the m·lanes values `probs` has before its padding; the bias view has
            // the same (rows, m) shape, at its own strides.
            unsafe {
                let store = self
                    .mmm
                    .c_from_data_and_strides(4, 1, lanes as isize)
                    .wrap(&probs.view_mut());
                let mut specs = vec![
                    FusedSpec::AddMatMul {
                        a: AsInputValue::Borrowed(&*q_packed),
                        b: AsInputValue::Borrowed(&*k_packed),
                        packing: 0,
                    },
                    FusedSpec::BinScalar(scale, BinOp::Mul),
                ];
                if let Some((b, br)) = &added {
                    let len = br.span_len();
                    let store = self
                        .mmm
                        .c_from_data_and_strides(4, br.strides[0], br.strides[1])
                        .wrap(&b.span(br, &len));
                    specs.push(FusedSpec::AddUnicast(store));
                }
                specs.push(FusedSpec::Store(store));
                self.mmm
                    .run_with_scratch_space(rows, m, &mut *scratch, &specs)?;
            }
            {
                let mut p = probs.try_as_plain_ram_mut()?;
                let p = &mut p.as_slice_mut::<f32>()?[..m * lanes];
                if let Some(Bias::Gated(b, g)) = bias {
                    add_gated_bias(p, &mut gates, b, g, h, r0, rows);
                }
                let mut inv = inv_sum.try_as_plain_ram_mut()?;
                softmax_lanes(p, lanes, inv.as_slice_mut::<f32>()?)?;
            }
            let panel = ProbabilityPanel {
                ptr: probs.as_ptr::<f32>()? as *const u8,
                mn: lanes,
                k: m,
                fact: fact.clone(),
            };
            let out_rows = out.rows(h, r0, rows);
            // SAFETY: `panel` points at `probs`, alive and unchanged during the call, laid out
            // as one packed left-operand panel of k = m (the same packing for both kernels);
            // `inv_sum` has one value per lane;
            // the store covers rows r0..r0 + rows of head h in `out`, which no other head
            // and no other block writes.
            unsafe {
                let store = self
                    .pv
                    .c_from_data_and_strides(4, out_rows.strides[0], out_rows.strides[1])
                    .wrap(&out.view(&out_rows));
                self.pv.run_with_scratch_space(
                    rows,
                    out.dims[2],
                    &mut *pv_scratch,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&panel),
                            b: AsInputValue::Borrowed(&*v_packed),
                            packing: 0,
                        },
                        FusedSpec::BinPerRow(inv_sum.view(), BinOp::Mul),
                        FusedSpec::Store(store),
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// The softmax probabilities of a block, as the left operand of P·V: one packed panel over
/// memory this module owns (see `Kernels::head`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProbabilityPanel {
    ptr: *const u8,
    mn: usize,
    k: usize,
    fact: std::sync::Arc<PackedExoticFact>,
}

// SAFETY: the panel is only read, during one kernel call, while its buffer is borrowed.
unsafe impl Send for ProbabilityPanel {}
// SAFETY: as above.
unsafe impl Sync for ProbabilityPanel {}

impl std::fmt::Display for ProbabilityPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attention probabilities ({} × {})", self.mn, self.k)
    }
}

impl MMMInputValue for ProbabilityPanel {
    fn format(&self) -> &dyn MMMInputFormat {
        &*self.fact.format
    }
    fn scratch_panel_buffer_layout(&self) -> Option<std::alloc::Layout> {
        None
    }
    fn panel_bytes(&self, i: usize, _buffer: Option<*mut u8>) -> TractResult<*const u8> {
        ensure!(i == 0, "one panel of probabilities, asked for panel {i}");
        Ok(self.ptr)
    }
    fn mn(&self) -> usize {
        self.mn
    }
    fn k(&self) -> usize {
        self.k
    }
    fn exotic_fact(&self) -> &dyn ExoticFact {
        &*self.fact
    }
    fn extract_at_mn_f16(&self, _: usize, _: &mut [f16]) -> TractResult<()> {
        bail!("attention probabilities are not extracted")
    }
    fn extract_at_mn_f32(&self, _: usize, _: &mut [f32]) -> TractResult<()> {
        bail!("attention probabilities are not extracted")
    }
}

/// Row softmax of a key-major block (`p[j·lanes + r]` is row r's score for key j), in place;
/// `inv_sum[r]` gets 1 / Σⱼ exp(p − max) of row r.
fn softmax_lanes(p: &mut [f32], lanes: usize, inv_sum: &mut [f32]) -> TractResult<()> {
    ensure!(p.len().is_multiple_of(lanes) && inv_sum.len() == lanes);
    match lanes {
        4 => softmax_dispatch::<4>(p, inv_sum),
        8 => softmax_dispatch::<8>(p, inv_sum),
        16 => softmax_dispatch::<16>(p, inv_sum),
        32 => softmax_dispatch::<32>(p, inv_sum),
        48 => softmax_dispatch::<48>(p, inv_sum),
        64 => softmax_dispatch::<64>(p, inv_sum),
        _ => softmax_any(p, lanes, inv_sum),
    }
    Ok(())
}

/// `softmax_block` compiled for the widest vector unit this CPU has.
fn softmax_dispatch<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernels::avx512f() {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { softmax_avx512::<L>(p, inv_sum) };
        }
        if super::kernels::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { softmax_avx2::<L>(p, inv_sum) };
        }
    }
    // Every aarch64 CPU has fused multiply-add; elsewhere `mul_add` would be a library call.
    softmax_block::<L, { cfg!(target_arch = "aarch64") }>(p, inv_sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_avx512<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    softmax_block::<L, true>(p, inv_sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_avx2<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    softmax_block::<L, true>(p, inv_sum)
}

/// The softmax of `softmax_lanes`, each loop over the L rows one vector operation; FMA: with
/// fused multiply-adds.
#[inline(always)]
fn softmax_block<const L: usize, const FMA: bool>(p: &mut [f32], inv_sum: &mut [f32]) {
    let (keys, _) = p.as_chunks_mut::<L>();
    let mut max = [f32::NEG_INFINITY; L];
    for key in keys.iter() {
        for l in 0..L {
            max[l] = if key[l] > max[l] { key[l] } else { max[l] };
        }
    }
    let mut sum = [0f32; L];
    for key in keys.iter_mut() {
        for l in 0..L {
            let e = exp_nonpositive::<FMA>(key[l] - max[l]);
            key[l] = e;
            sum[l] += e;
        }
    }
    for (inv, s) in inv_sum.iter_mut().zip(sum) {
        *inv = s.recip();
    }
}

/// `softmax_block` for a block height without its own instance (scalar loops).
fn softmax_any(p: &mut [f32], lanes: usize, inv_sum: &mut [f32]) {
    let mut max = vec![f32::NEG_INFINITY; lanes];
    for key in p.chunks_exact(lanes) {
        for (m, x) in max.iter_mut().zip(key) {
            *m = m.max(*x);
        }
    }
    inv_sum.fill(0.0);
    for key in p.chunks_exact_mut(lanes) {
        for ((x, m), s) in key.iter_mut().zip(&max).zip(inv_sum.iter_mut()) {
            *x = exp_nonpositive::<false>(*x - m);
            *s += *x;
        }
    }
    for s in inv_sum.iter_mut() {
        *s = s.recip();
    }
}

/// eˣ for x ≤ 0 (Cephes' expf: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial for eʳ,
/// 2ⁿ from the exponent bits; within 2 ulp), written so that it vectorises: no calls, no
/// branches. Below −87 (where eˣ < 2⁻¹²⁵) it returns e⁻⁸⁷. FMA: a·b + c as one fused
/// operation, for targets that have it.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = if x < -87.0 { -87.0 } else { x };
    let t = fma(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = fma(n, 2.121_944_4e-4, fma(n, -0.693_359_4, x));
    let mut y = 1.987_569_1e-4;
    y = fma(y, r, 1.398_199_9e-3);
    y = fma(y, r, 8.333_452e-3);
    y = fma(y, r, 4.166_579_6e-2);
    y = fma(y, r, 1.666_666_5e-1);
    y = fma(y, r, 0.5);
    let y = fma(y, r * r, r + 1.0);
    let n = t.to_bits().wrapping_sub(ROUND.to_bits());
    y * f32::from_bits(n.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_ndarray::{Array2, Array3};

    fn pseudo(shape: (usize, usize, usize), seed: u64) -> Array3<f32> {
        let mut s = seed;
        Array3::from_shape_fn(shape, |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
    }

    fn naive(
        q: &Array3<f32>,
        k: &Array3<f32>,
        v: &Array3<f32>,
        bias: Option<&Array3<f32>>,
        scale: f32,
    ) -> Vec<Array2<f32>> {
        naive_rounded(q, k, v, bias, scale, None)
    }

    /// `naive` with Q, K, V and each exp(s − max) rounded by `round` for the products, where
    /// given; scores, softmax sums and normalisation unrounded.
    fn naive_rounded(
        q: &Array3<f32>,
        k: &Array3<f32>,
        v: &Array3<f32>,
        bias: Option<&Array3<f32>>,
        scale: f32,
        round: Option<fn(f32) -> f32>,
    ) -> Vec<Array2<f32>> {
        let rounded = |a: &Array3<f32>| round.map_or_else(|| a.clone(), |r| a.mapv(r));
        let (q, k, v) = (rounded(q), rounded(k), rounded(v));
        let (h, n, d) = q.dim();
        let m = k.dim().1;
        (0..h)
            .map(|h| {
                let mut o = Array2::zeros((n, d));
                for i in 0..n {
                    let s: Vec<f64> = (0..m)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|e| q[(h, i, e)] as f64 * k[(h, j, e)] as f64)
                                .sum();
                            dot * scale as f64 + bias.map_or(0.0, |b| b[(h, i, j)] as f64)
                        })
                        .collect();
                    let mx = s.iter().copied().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    let w: Vec<f64> = e
                        .iter()
                        .map(|&x| round.map_or(x, |r| r(x as f32) as f64))
                        .collect();
                    for f in 0..d {
                        let dot: f64 = (0..m).map(|j| w[j] * v[(h, j, f)] as f64).sum();
                        o[(i, f)] = (dot / sum) as f32;
                    }
                }
                o
            })
            .collect()
    }

    /// `attend` on arrays stored in the order of `perm` (Q, K, V, bias and output alike),
    /// the bias with one head for all if it has one; returns one (n, d) array per head.
    fn run(
        q: &Array3<f32>,
        k: &Array3<f32>,
        v: &Array3<f32>,
        bias: Option<&Array3<f32>>,
        scale: f32,
        perm: [usize; 3],
        path: Path,
    ) -> Vec<Array2<f32>> {
        // Where each of (head, token, feature) sits once stored in `perm` order.
        let mut axes = [0; 3];
        for (pos, &a) in perm.iter().enumerate() {
            axes[a] = pos;
        }
        let layout = Layout { axes, rank: 3 };
        let stored = |a: &Array3<f32>| {
            a.view()
                .permuted_axes(perm)
                .as_standard_layout()
                .into_owned()
                .into_tensor()
        };
        let (qt, kt, vt) = (stored(q), stored(k), stored(v));
        let bt = bias.map(stored);
        let (h, n, d) = q.dim();
        let out_shape: Vec<usize> = perm.iter().map(|&a| [h, n, d][a]).collect();
        let out = Tensor::zero::<f32>(&out_shape).expect("output");
        attend_on(
            path,
            layout.operand(&qt).expect("q"),
            layout.operand(&kt).expect("k"),
            layout.operand(&vt).expect("v"),
            bt.as_ref()
                .map(|b| ScoreBias::Added(layout.operand(b).expect("bias"))),
            scale,
            layout.operand(&out).expect("out"),
        )
        .expect("attention runs");
        let o = out
            .to_plain_array_view::<f32>()
            .expect("f32")
            .into_dimensionality::<tract_ndarray::Ix3>()
            .expect("rank 3")
            .permuted_axes(axes)
            .to_owned();
        (0..h)
            .map(|i| o.index_axis(tract_ndarray::Axis(0), i).to_owned())
            .collect()
    }

    /// Every path this CPU runs f32 attention on: tract's kernels, and the AVX-512 tiles
    /// where it has AVX-512.
    fn f32_paths() -> Vec<Path> {
        let mut paths = vec![Path::Tract];
        #[cfg(target_arch = "x86_64")]
        if avx512::available(false) {
            paths.push(Path::Avx512 { bf16: false });
        }
        paths
    }

    /// The largest |got − want| over every head's values.
    fn max_diff<'a>(
        got: impl IntoIterator<Item = tract_ndarray::ArrayView2<'a, f32>>,
        want: &[Array2<f32>],
    ) -> f32 {
        got.into_iter()
            .zip(want)
            .map(|(g, w)| (&g - w).iter().fold(0f32, |a, x| a.max(x.abs())))
            .fold(0f32, f32::max)
    }

    fn check_in(h: usize, n: usize, m: usize, d: usize, with_bias: bool, perm: [usize; 3]) {
        let q = pseudo((h, n, d), 1) * 4.0;
        let k = pseudo((h, m, d), 2) * 4.0;
        let v = pseudo((h, m, d), 3);
        let b = pseudo((h, n, m), 4) * 3.0;
        let bias = with_bias.then_some(&b);
        let want = naive(&q, &k, &v, bias, 0.125);
        for path in f32_paths() {
            let got = run(&q, &k, &v, bias, 0.125, perm, path);
            let diff = max_diff(got.iter().map(|g| g.view()), &want);
            assert!(
                diff < 2e-5,
                "{path:?} h{h} n{n} m{m} d{d} bias {with_bias} layout {perm:?}: max |diff| {diff}"
            );
        }
    }

    fn check(h: usize, n: usize, m: usize, d: usize, with_bias: bool) {
        check_in(h, n, m, d, with_bias, [0, 1, 2]);
    }

    #[test]
    fn matches_a_plain_implementation_across_block_edges() {
        // Token counts around the block size, a single block, and non-square scores.
        for (n, m) in [(5, 5), (95, 97), (96, 96), (97, 40), (250, 250), (300, 17)] {
            check(3, n, m, 16, false);
            check(2, n, m, 64, true);
        }
    }

    #[test]
    fn reads_and_writes_operands_in_their_own_layouts() {
        // Tokens outermost, heads in the middle, as AST and BEATs store Q, K, V and the
        // output; and features outermost, where no axis is contiguous but the head.
        for perm in [[1, 0, 2], [2, 1, 0]] {
            check_in(3, 37, 29, 16, true, perm);
            check_in(2, 16, 50, 8, false, perm);
            // Enough keys that P·V runs in k-slices, its output rows interleaved with the
            // other heads' (tokens outermost).
            check_in(2, 40, 1500, 8, false, perm);
            // The same with d = 64 and enough query rows for the 32-row kernels: P·V on the
            // narrower one (`p_v_takes_a_narrower_kernel_where_it_pads_less`).
            check_in(2, 250, 1500, 64, false, perm);
        }
    }

    #[test]
    fn p_v_takes_a_narrower_kernel_where_it_pads_less() {
        let ks = Kernels::new(250, 250, 64).expect("kernels");
        let runnable = |name: &str| {
            tract_linalg::MmmDispatch::native()
                .runnable()
                .iter()
                .any(|k| k.name() == name)
        };
        if ks.mmm.name() == "avx512_mmm_f32_32x12" && runnable("avx512_mmm_f32_32x8") {
            assert_eq!(ks.pv.name(), "avx512_mmm_f32_32x8");
        } else {
            assert_eq!(ks.pv.name(), ks.mmm.name());
        }
        // d = 60 pads no less on 8 columns than on 12.
        let ks = Kernels::new(250, 250, 60).expect("kernels");
        assert_eq!(ks.pv.name(), ks.mmm.name());
        // Both products on their own kernels, against the plain implementation (the cases
        // above with d = 64 and 250 query rows run the same pair).
        check(2, 250, 250, 64, false);
    }

    #[test]
    fn a_bias_with_one_head_serves_every_head() {
        let (h, n, m, d) = (3, 21, 19, 8);
        let q = pseudo((h, n, d), 5);
        let k = pseudo((h, m, d), 6);
        let v = pseudo((h, m, d), 7);
        let one = pseudo((1, n, m), 8);
        let every = tract_ndarray::concatenate(
            tract_ndarray::Axis(0),
            &[one.view(), one.view(), one.view()],
        )
        .expect("bias");
        let want = naive(&q, &k, &v, Some(&every), 0.3);
        for path in f32_paths() {
            let got = run(&q, &k, &v, Some(&one), 0.3, [0, 1, 2], path);
            let diff = max_diff(got.iter().map(|g| g.view()), &want);
            assert!(diff < 2e-5, "{path:?}: max |diff| {diff}");
        }
    }

    #[test]
    fn exp_is_within_two_ulp_where_it_matters() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            for got in [exp_nonpositive::<false>(x), exp_nonpositive::<true>(x)] {
                worst = worst.max(((got as f64 - want) / want).abs());
            }
        }
        assert!(worst < 2.0 * f32::EPSILON as f64, "relative error {worst}");
        assert_eq!(exp_nonpositive::<false>(0.0), 1.0);
        assert!(exp_nonpositive::<false>(-1000.0) > 0.0);
        assert!(exp_nonpositive::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_of_a_key_major_block_matches_the_row_by_row_one() {
        for lanes in [4, 8, 12, 16, 32, 48] {
            let keys = 37;
            let p0: Vec<f32> = pseudo((1, keys, lanes), 7)
                .iter()
                .map(|x| x * 20.0)
                .collect();
            let mut p = p0.clone();
            let mut inv = vec![0f32; lanes];
            softmax_lanes(&mut p, lanes, &mut inv).expect("softmax runs");
            for r in 0..lanes {
                let row: Vec<f64> = (0..keys).map(|j| p0[j * lanes + r] as f64).collect();
                let mx = row.iter().copied().fold(f64::MIN, f64::max);
                let sum: f64 = row.iter().map(|x| (x - mx).exp()).sum();
                for j in 0..keys {
                    let want = (row[j] - mx).exp() / sum;
                    let got = p[j * lanes + r] as f64 * inv[r] as f64;
                    assert!((got - want).abs() < 1e-6, "lanes {lanes} row {r} key {j}");
                }
            }
        }
        assert!(softmax_lanes(&mut [0.0; 13], 12, &mut [0.0; 12]).is_err());
    }

    #[test]
    fn runs_heads_on_a_thread_pool_with_the_same_result() {
        let pool = Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(pool, || check(4, 130, 130, 32, true));
    }

    /// `attend` on plain (head, token, feature) Q, K, V with a gated bias; the output.
    fn gated(
        [q, k, v]: [&Tensor; 3],
        bias: Operand,
        gate: Operand,
        diagonals: bool,
        path: Path,
    ) -> TractResult<Tensor> {
        let plain = Layout {
            axes: [0, 1, 2],
            rank: 3,
        };
        let out = Tensor::zero::<f32>(q.shape())?;
        attend_on(
            path,
            plain.operand(q)?,
            plain.operand(k)?,
            plain.operand(v)?,
            Some(ScoreBias::Gated {
                bias,
                gate,
                diagonals,
            }),
            0.125,
            plain.operand(&out)?,
        )?;
        Ok(out)
    }

    /// `gated`'s output against `want`: the largest |difference|.
    fn gated_diff(
        qkv: [&Tensor; 3],
        bias: Operand,
        gate: Operand,
        diagonals: bool,
        path: Path,
        want: &[Array2<f32>],
    ) -> f32 {
        let out = gated(qkv, bias, gate, diagonals, path).expect("attention runs");
        let o = out.to_plain_array_view::<f32>().expect("f32");
        let o = o
            .into_dimensionality::<tract_ndarray::Ix3>()
            .expect("rank 3");
        max_diff(o.outer_iter(), want)
    }

    /// gate × bias, the bias stored key-major (the vector path) or query-major, the gate per
    /// head or one for all heads, against the plain implementation given the product.
    #[test]
    fn a_gated_bias_adds_the_gate_times_the_bias() {
        let (h, n, m, d) = (3, 37, 29, 16);
        let q = pseudo((h, n, d), 11) * 4.0;
        let k = pseudo((h, m, d), 12) * 4.0;
        let v = pseudo((h, m, d), 13);
        let b = pseudo((h, n, m), 14) * 3.0;
        let (qt, kt, vt) = (
            q.clone().into_tensor(),
            k.clone().into_tensor(),
            v.clone().into_tensor(),
        );
        let plain = Layout {
            axes: [0, 1, 2],
            rank: 3,
        };
        for gate_heads in [h, 1] {
            let g = pseudo((gate_heads, n, 1), 15) + 1.5;
            let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
                g[(hh % gate_heads, i, 0)] * b[(hh, i, j)]
            });
            let want = naive(&q, &k, &v, Some(&product), 0.125);
            let gt = g.clone().into_tensor();
            // (head, query, key) stored as (head, key, query): the query axis contiguous.
            let key_major = b
                .view()
                .permuted_axes([0, 2, 1])
                .as_standard_layout()
                .into_owned()
                .into_tensor();
            let query_major = b.clone().into_tensor();
            let layouts = [
                (
                    &key_major,
                    Layout {
                        axes: [0, 2, 1],
                        rank: 3,
                    },
                ),
                (&query_major, plain.clone()),
            ];
            for ((bt, bias_layout), path) in layouts
                .iter()
                .flat_map(|l| f32_paths().into_iter().map(move |p| (l, p)))
            {
                let diff = gated_diff(
                    [&qt, &kt, &vt],
                    bias_layout.operand(bt).expect("bias"),
                    plain.operand(&gt).expect("gate"),
                    false,
                    path,
                    &want,
                );
                assert!(
                    diff < 2e-5,
                    "{path:?} gate heads {gate_heads}, bias axes {:?}: max |diff| {diff}",
                    bias_layout.axes
                );
            }
        }
    }

    /// A bias that depends on k − q alone, given as its diagonals, against the plain
    /// implementation given the whole gated table; per-head and shared diagonals.
    #[test]
    fn a_gated_bias_given_by_its_diagonals_is_the_whole_table() {
        let (h, n, m, d) = (3, 37, 29, 16);
        let q = pseudo((h, n, d), 21) * 4.0;
        let k = pseudo((h, m, d), 22) * 4.0;
        let v = pseudo((h, m, d), 23);
        let plain = Layout {
            axes: [0, 1, 2],
            rank: 3,
        };
        let (qt, kt, vt) = (
            q.clone().into_tensor(),
            k.clone().into_tensor(),
            v.clone().into_tensor(),
        );
        let g = pseudo((h, n, 1), 25) + 1.5;
        let gt = g.clone().into_tensor();
        for table_heads in [h, 1] {
            let diag = pseudo((table_heads, 1, n + m - 1), 24) * 3.0;
            let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
                g[(hh, i, 0)] * diag[(hh % table_heads, 0, i + m - 1 - j)]
            });
            let want = naive(&q, &k, &v, Some(&product), 0.125);
            let dt = diag.clone().into_tensor();
            for path in f32_paths() {
                let diff = gated_diff(
                    [&qt, &kt, &vt],
                    plain.operand(&dt).expect("diagonals"),
                    plain.operand(&gt).expect("gate"),
                    true,
                    path,
                    &want,
                );
                assert!(
                    diff < 2e-5,
                    "{path:?} table heads {table_heads}: max |diff| {diff}"
                );
            }
        }
        // Diagonals of the wrong length are refused, not read out of bounds.
        let short = pseudo((h, 1, n + m - 2), 26).into_tensor();
        for path in f32_paths() {
            let refused = gated(
                [&qt, &kt, &vt],
                plain.operand(&short).expect("diagonals"),
                plain.operand(&gt).expect("gate"),
                true,
                path,
            );
            assert!(refused.is_err(), "{path:?}");
        }
    }

    /// `x` rounded to bfloat16 as the bf16 path rounds it, as an f32.
    fn bf16_round(x: f32) -> f32 {
        f32::from_bits(bf16(x) << 16)
    }

    /// `naive` with the bf16 path's roundings: Q, K, V and each exp(s − max) rounded to
    /// bfloat16 for the products.
    fn naive_bf16(
        q: &Array3<f32>,
        k: &Array3<f32>,
        v: &Array3<f32>,
        bias: Option<&Array3<f32>>,
        scale: f32,
    ) -> Vec<Array2<f32>> {
        naive_rounded(q, k, v, bias, scale, Some(bf16_round))
    }

    /// The bf16 products against the plain implementation with the same roundings (where
    /// the CPU runs them), across block and tile edges, odd key and feature counts, layouts
    /// with and without contiguous features, and an added bias; and against f32 within
    /// bfloat16's precision. Without AVX-512 BF16, `Precision::Bf16` is the f32 path.
    #[test]
    fn bf16_products_match_the_plain_implementation_with_the_same_roundings() {
        let cases = [
            (3, 5, 5, 16, false, [0, 1, 2]),
            (2, 95, 97, 64, true, [0, 1, 2]),
            (2, 130, 301, 64, false, [1, 0, 2]),
            (1, 49, 33, 40, true, [1, 0, 2]),
            (2, 7, 13, 7, true, [0, 1, 2]),
            (2, 50, 21, 24, true, [2, 1, 0]),
        ];
        for (h, n, m, d, with_bias, perm) in cases {
            let q = pseudo((h, n, d), 31) * 4.0;
            let k = pseudo((h, m, d), 32) * 4.0;
            let v = pseudo((h, m, d), 33);
            let b = pseudo((h, n, m), 34) * 3.0;
            let bias = with_bias.then_some(&b);
            let got = run(
                &q,
                &k,
                &v,
                bias,
                0.125,
                perm,
                Path::for_precision(Precision::Bf16),
            );
            let case = format!("h{h} n{n} m{m} d{d} bias {with_bias} layout {perm:?}");
            if !Precision::Bf16.runs_bf16() {
                let f32_path = run(
                    &q,
                    &k,
                    &v,
                    bias,
                    0.125,
                    perm,
                    Path::for_precision(Precision::F32),
                );
                assert_eq!(got, f32_path, "{case}: not the f32 path");
                continue;
            }
            let same = max_diff(
                got.iter().map(|g| g.view()),
                &naive_bf16(&q, &k, &v, bias, 0.125),
            );
            let exact = max_diff(
                got.iter().map(|g| g.view()),
                &naive(&q, &k, &v, bias, 0.125),
            );
            println!("{case}: vs same roundings {same:.1e}, vs f32 {exact:.1e}");
            assert!(
                same < 2e-4,
                "{case}: max |diff| {same} with the same roundings"
            );
            assert!(exact < 5e-3, "{case}: max |diff| {exact} from f32");
        }
    }

    /// BEATs' gated bias by its diagonals, on the bf16 path: the same bias as the f32 path.
    #[test]
    fn bf16_products_take_a_gated_bias_by_its_diagonals() {
        let (h, n, m, d) = (2, 53, 53, 64);
        let q = pseudo((h, n, d), 41) * 4.0;
        let k = pseudo((h, m, d), 42) * 4.0;
        let v = pseudo((h, m, d), 43);
        let g = pseudo((h, n, 1), 45) + 1.5;
        let diag = pseudo((1, 1, n + m - 1), 44) * 3.0;
        let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
            g[(hh, i, 0)] * diag[(0, 0, i + m - 1 - j)]
        });
        let want = if Precision::Bf16.runs_bf16() {
            naive_bf16(&q, &k, &v, Some(&product), 0.125)
        } else {
            naive(&q, &k, &v, Some(&product), 0.125)
        };
        let plain = Layout {
            axes: [0, 1, 2],
            rank: 3,
        };
        let [qt, kt, vt, gt, dt] = [q, k, v, g, diag].map(|a| a.into_tensor());
        let diff = gated_diff(
            [&qt, &kt, &vt],
            plain.operand(&dt).expect("diagonals"),
            plain.operand(&gt).expect("gate"),
            true,
            Path::for_precision(Precision::Bf16),
            &want,
        );
        assert!(diff < 1e-3, "max |diff| {diff}");
    }

    #[test]
    fn bf16_rounds_to_nearest_even_as_the_instructions_do() {
        // 1 + 2⁻⁸ is halfway between two bfloat16 values: ties go to the even one (1.0);
        // 1 + 3·2⁻⁸ to 1 + 2⁻⁶ (even); just above halfway rounds up.
        assert_eq!(bf16_round(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(bf16_round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(
            bf16_round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        assert!(bf16_round(f32::NAN).is_nan());
        assert_eq!(bf16_round(-2.5), -2.5);
    }
}

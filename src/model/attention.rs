//! Fused attention on the CPU: softmax(Q·Kᵀ·scale + bias)·V head by head, in row blocks that
//! stay in cache, on tract's own matrix kernels — no heads × tokens × tokens tensor.
//!
//! tract runs the two attention products of AST/BEATs as batched products of two activations
//! that write (and page-fault in) a 70 MB score tensor per layer; this op computes a block of
//! query rows at a time (scores → softmax → ·V) and normalises the softmax inside the second
//! product's store. `fuse.rs` puts it in place of the matched subgraph at load time.

// tract-linalg's matrix-kernel entry points (`run`, `c_view`, `wrap`) are `unsafe fn`s: they
// trust the caller for shapes and strides. Every call below passes tensors this module
// allocated with exactly the shapes given to the kernel, checked by the unit tests against a
// plain implementation.
#![allow(unsafe_code)]

use tract_linalg::mmm::{AsInputValue, FusedSpec, MMMInputFormat, MatMatMul};
use tract_linalg::multithread::{current_tract_executor, Executor};
use tract_linalg::routines::Func;
use tract_linalg::BinOp;
use tract_onnx::prelude::tract_ndarray::{ArrayView3, ArrayViewD, Axis, Ix3};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

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
    /// The operand viewed as (head, token, feature), dropping its size-1 axes.
    fn view<'a>(&self, v: ArrayViewD<'a, f32>) -> TractResult<ArrayView3<'a, f32>> {
        ensure!(
            v.ndim() == self.rank,
            "operand rank {} != {}",
            v.ndim(),
            self.rank
        );
        let mut order: Vec<usize> = self.axes.to_vec();
        order.extend((0..self.rank).filter(|a| !self.axes.contains(a)));
        let mut v = v.permuted_axes(order);
        while v.ndim() > 3 {
            ensure!(
                v.shape()[3] == 1,
                "attention operand has an extra axis of size > 1"
            );
            v.index_axis_inplace(Axis(3), 0);
        }
        Ok(v.into_dimensionality::<Ix3>()?)
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
    /// Output layout (head, query token, feature).
    pub out: Layout,
    /// Output shape.
    pub out_shape: TVec<usize>,
    /// Factor on Q·Kᵀ before the bias is added.
    pub scale: f32,
}

impl Eq for FusedAttention {}

impl Op for FusedAttention {
    fn name(&self) -> StaticName {
        "FusedAttention".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale={} bias={}",
            self.scale,
            self.bias.is_some()
        )])
    }

    op_as_typed_op!();
}

impl TypedOp for FusedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3 + self.bias.is_some() as usize);
        ensure!(inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    as_op!();
}

impl EvalOp for FusedAttention {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let q = self.q.view(inputs[0].to_plain_array_view::<f32>()?)?;
        let k = self.k.view(inputs[1].to_plain_array_view::<f32>()?)?;
        let v = self.v.view(inputs[2].to_plain_array_view::<f32>()?)?;
        let bias = match (&self.bias, inputs.get(3)) {
            (Some(layout), Some(b)) => Some(layout.view(b.to_plain_array_view::<f32>()?)?),
            _ => None,
        };
        let heads = attend(q, k, v, bias, self.scale)?;
        let mut out = Tensor::zero::<f32>(&self.out_shape)?;
        {
            let mut plain = out.try_as_plain_ram_mut()?;
            let view = plain.to_array_view_mut::<f32>()?;
            let mut order: Vec<usize> = self.out.axes.to_vec();
            order.extend((0..self.out.rank).filter(|a| !self.out.axes.contains(a)));
            let mut view = view.permuted_axes(order);
            while view.ndim() > 3 {
                view.index_axis_inplace(Axis(3), 0);
            }
            let mut view = view.into_dimensionality::<Ix3>()?;
            for (h, head) in heads.iter().enumerate() {
                view.index_axis_mut(Axis(0), h).assign(head);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

/// Query rows per block: the block's scores (rows × keys) stay in L2 for the second product.
const BLOCK_ROWS: usize = 96;

/// Block heights are a multiple of this: the query rows are the kernels' columns (12 in the
/// AVX-512 f32 kernel).
const ROW_ALIGN: usize = 12;

/// (blocks, rows per block) covering `n` query rows with the least padding, blocks near
/// `BLOCK_ROWS` rows.
fn blocking(n: usize) -> (usize, usize) {
    let around = n.div_ceil(BLOCK_ROWS).max(1);
    (around.saturating_sub(1).max(1)..=around + 1)
        .map(|b| (b, n.div_ceil(b).next_multiple_of(ROW_ALIGN)))
        .min_by_key(|&(b, rows)| (b * rows, b))
        .unwrap_or((1, n.next_multiple_of(ROW_ALIGN)))
}

/// softmax(Q·Kᵀ·scale + bias)·V for each head; Q (h, n, d), K and V (h, m, d), bias (h or 1,
/// n, m). Returns one (n, d) array per head. Heads run in parallel on tract's executor.
pub fn attend(
    q: ArrayView3<f32>,
    k: ArrayView3<f32>,
    v: ArrayView3<f32>,
    bias: Option<ArrayView3<f32>>,
    scale: f32,
) -> TractResult<Vec<tract_ndarray::Array2<f32>>> {
    let (heads, n, d) = q.dim();
    let (kh, m, kd) = k.dim();
    ensure!(
        kh == heads && kd == d && v.dim() == (heads, m, d),
        "Q/K/V shapes disagree"
    );
    if let Some(b) = &bias {
        ensure!(
            (b.dim().0 == heads || b.dim().0 == 1) && b.dim().1 == n && b.dim().2 == m,
            "bias shape {:?} does not fit scores ({heads}, {n}, {m})",
            b.dim()
        );
    }
    let (blocks, rows) = blocking(n);
    let kernels = Kernels::new(rows, m, d)?;
    let one_head = |h: usize| -> TractResult<tract_ndarray::Array2<f32>> {
        let bias_h = bias
            .as_ref()
            .map(|b| b.index_axis(Axis(0), h.min(b.dim().0 - 1)));
        kernels.head(
            q.index_axis(Axis(0), h),
            k.index_axis(Axis(0), h),
            v.index_axis(Axis(0), h),
            bias_h,
            scale,
            blocks,
        )
    };
    match current_tract_executor() {
        Executor::MultiThread(pool) if heads > 1 => pool.install(|| {
            use rayon::prelude::*;
            (0..heads).into_par_iter().map(one_head).collect()
        }),
        _ => (0..heads).map(one_head).collect(),
    }
}

/// The kernels of one evaluation: Q·Kᵀ (rows × d · d × m) and P·V (rows × m · m × d), and the
/// row softmax pieces.
struct Kernels {
    rows: usize,
    m: usize,
    d: usize,
    qk: Box<dyn MatMatMul>,
    pv: Box<dyn MatMatMul>,
    max: Box<dyn tract_linalg::reduce::Reduce<f32>>,
    exp_sum: Box<dyn tract_linalg::reduce::MapReduce<f32, f32>>,
}

impl Kernels {
    fn new(rows: usize, m: usize, d: usize) -> TractResult<Self> {
        let pick = |mm: usize, kk: usize| {
            tract_linalg::MmmDispatch::native()
                .preferred_kernel(f32::datum_type(), Some(mm), Some(kk), Some(rows))
                .context("no f32 matrix kernel on this machine")
        };
        // Both products are computed transposed (the query rows are the kernel's columns), so
        // that the kernel's row axis is the contiguous axis of what it stores: Sᵀ = K·Qᵀ
        // stores whole runs of keys of a score row, Oᵀ = Vᵀ·Pᵀ whole runs of features.
        Ok(Self {
            rows,
            m,
            d,
            qk: pick(m, d)?,
            pv: pick(d, m)?,
            max: Func::ReduceMax.reduce_f32()?,
            exp_sum: Func::Softmax2.map_reduce_f32()?,
        })
    }

    fn formats(mmm: &dyn MatMatMul) -> (&dyn MMMInputFormat, &dyn MMMInputFormat) {
        let (a, b) = &mmm.packings()[0];
        (&**a, &**b)
    }

    /// One head: Q (n, d), K and V (m, d), bias (n, m).
    fn head(
        &self,
        q: tract_ndarray::ArrayView2<f32>,
        k: tract_ndarray::ArrayView2<f32>,
        v: tract_ndarray::ArrayView2<f32>,
        bias: Option<tract_ndarray::ArrayView2<f32>>,
        scale: f32,
        blocks: usize,
    ) -> TractResult<tract_ndarray::Array2<f32>> {
        let (n, d, m, rows) = (q.dim().0, self.d, self.m, self.rows);
        let k_t = tensor_of(k.to_owned());
        let v_t = tensor_of(v.to_owned());
        let (ka_fmt, qb_fmt) = Self::formats(&*self.qk);
        let (va_fmt, pb_fmt) = Self::formats(&*self.pv);
        // K as the left operand of K·Qᵀ: m = key token (axis 0), k = feature (axis 1).
        let k_packed = ka_fmt.prepare_one(&k_t, 1, 0)?;
        // V as the left operand of Vᵀ·Pᵀ: m = feature (axis 1), k = key token (axis 0).
        let v_packed = va_fmt.prepare_one(&v_t, 0, 1)?;
        let mut q_block = Tensor::zero::<f32>(&[rows, d])?;
        let mut scores = Tensor::zero::<f32>(&[rows, m])?;
        let mut inv_sum = Tensor::zero::<f32>(&[rows])?;
        let mut out_block = Tensor::zero::<f32>(&[rows, d])?;
        let mut out = tract_ndarray::Array2::<f32>::zeros((n, d));
        for block in 0..blocks {
            let r0 = block * rows;
            let valid = rows.min(n.saturating_sub(r0));
            if valid == 0 {
                break;
            }
            {
                let mut qb = q_block.to_plain_array_view_mut::<f32>()?;
                qb.fill(0.0);
                let mut qb = qb.into_dimensionality::<tract_ndarray::Ix2>()?;
                let src = q.slice(tract_ndarray::s![r0..r0 + valid, ..]);
                qb.slice_mut(tract_ndarray::s![..valid, ..])
                    .zip_mut_with(&src, |o, x| *o = x * scale);
            }
            // Qᵀ as the right operand: n = query row (axis 0), k = feature (axis 1).
            let q_packed = qb_fmt.prepare_one(&q_block, 1, 0)?;
            // SAFETY: `scores` is a (rows, m) tensor; the product is m × d · d × rows, its
            // row axis stored along the scores' axis 1 and its column axis along axis 0.
            unsafe {
                let store = self.qk.c_view(Some(1), Some(0)).wrap(&scores.view_mut());
                self.qk.run(
                    m,
                    rows,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&*k_packed),
                            b: AsInputValue::Borrowed(&*q_packed),
                            packing: 0,
                        },
                        FusedSpec::Store(store),
                    ],
                )?;
            }
            {
                let mut s = scores.try_as_plain_ram_mut()?;
                let s = s.as_slice_mut::<f32>()?;
                let mut inv = inv_sum.try_as_plain_ram_mut()?;
                let inv = inv.as_slice_mut::<f32>()?;
                for (r, row) in s.chunks_exact_mut(m).enumerate() {
                    if let (Some(b), true) = (&bias, r < valid) {
                        for (x, y) in row.iter_mut().zip(b.row(r0 + r)) {
                            *x += y;
                        }
                    }
                    let max = self.max.run(row)?;
                    let sum = self.exp_sum.run_with_params(row, max)?;
                    inv[r] = sum.recip();
                }
            }
            // Pᵀ as the right operand: n = query row (axis 0), k = key token (axis 1).
            let p_packed = pb_fmt.prepare_one(&scores, 1, 0)?;
            // SAFETY: `out_block` is (rows, d), `inv_sum` has one value per query row (the
            // product's columns), and the product is d × m · m × rows.
            unsafe {
                let store = self.pv.c_view(Some(1), Some(0)).wrap(&out_block.view_mut());
                self.pv.run(
                    d,
                    rows,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&*v_packed),
                            b: AsInputValue::Borrowed(&*p_packed),
                            packing: 0,
                        },
                        FusedSpec::BinPerCol(inv_sum.view(), BinOp::Mul),
                        FusedSpec::Store(store),
                    ],
                )?;
            }
            let ob = out_block.to_plain_array_view::<f32>()?;
            let ob = ob.into_dimensionality::<tract_ndarray::Ix2>()?;
            out.slice_mut(tract_ndarray::s![r0..r0 + valid, ..])
                .assign(&ob.slice(tract_ndarray::s![..valid, ..]));
        }
        Ok(out)
    }
}

fn tensor_of(a: tract_ndarray::Array2<f32>) -> Tensor {
    a.into_tensor()
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
        let (h, n, d) = q.dim();
        let m = k.dim().1;
        (0..h)
            .map(|h| {
                let mut o = Array2::zeros((n, d));
                for i in 0..n {
                    let mut s: Vec<f64> = (0..m)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|e| q[(h, i, e)] as f64 * k[(h, j, e)] as f64)
                                .sum();
                            dot * scale as f64 + bias.map_or(0.0, |b| b[(h, i, j)] as f64)
                        })
                        .collect();
                    let mx = s.iter().copied().fold(f64::MIN, f64::max);
                    s.iter_mut().for_each(|x| *x = (*x - mx).exp());
                    let sum: f64 = s.iter().sum();
                    for e in 0..d {
                        o[(i, e)] =
                            ((0..m).map(|j| s[j] * v[(h, j, e)] as f64).sum::<f64>() / sum) as f32;
                    }
                }
                o
            })
            .collect()
    }

    fn check(h: usize, n: usize, m: usize, d: usize, with_bias: bool) {
        let q = pseudo((h, n, d), 1) * 4.0;
        let k = pseudo((h, m, d), 2) * 4.0;
        let v = pseudo((h, m, d), 3);
        let b = pseudo((h, n, m), 4) * 3.0;
        let bias = with_bias.then_some(&b);
        let got = attend(q.view(), k.view(), v.view(), bias.map(|b| b.view()), 0.125)
            .expect("attention runs");
        let want = naive(&q, &k, &v, bias, 0.125);
        for (g, w) in got.iter().zip(&want) {
            let diff = (g - w).iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(
                diff < 2e-5,
                "h{h} n{n} m{m} d{d} bias {with_bias}: max |diff| {diff}"
            );
        }
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
    fn blocks_cover_the_rows_with_little_padding() {
        for n in [1, 5, 102, 496, 1214, 5000] {
            let (b, rows) = blocking(n);
            assert!(
                b * rows >= n && b * rows < n + b * ROW_ALIGN,
                "{n}: {b} × {rows}"
            );
            assert!(
                rows <= 2 * BLOCK_ROWS + ROW_ALIGN,
                "{n}: {rows} rows per block"
            );
        }
    }

    #[test]
    fn runs_heads_on_a_thread_pool_with_the_same_result() {
        let pool = Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(pool, || check(4, 130, 130, 32, true));
    }
}

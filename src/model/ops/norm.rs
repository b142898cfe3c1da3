//! Load-time rewrite: a layer norm's mean, centring and RMS scaling in one pass over each row.
//!
//! tract declutters an ONNX `LayerNormalization` over the last axis into a row sum, a product
//! by 1/n (the mean), a subtraction that writes the centred tensor, and `RmsNorm` on it: three
//! sweeps of the activations (3.7 MB for AST), ~1.4 ms a layer norm, 25 of them a window.
//! `CenteredRmsNorm` does the same per row while the row is in the L1 cache, with the same
//! kernels and operations (tract-linalg's row sum, `sum * (1/n)`, `x - mean`, its `rms_norm`
//! kernel): the same bits, read once and written once.

use tract_linalg::routines::Func;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, RmsNorm};

/// `RmsNorm(x - sum(x) * recip)` along the last axis of an f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct CenteredRmsNorm {
    /// The factor that makes a row sum its mean (1/n in a layer norm).
    pub recip: f32,
    /// `RmsNorm`'s epsilon.
    pub eps: f32,
}

impl Eq for CenteredRmsNorm {}

impl std::hash::Hash for CenteredRmsNorm {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.recip.to_bits(), self.eps.to_bits()).hash(state);
    }
}

impl Op for CenteredRmsNorm {
    fn name(&self) -> StaticName {
        "CenteredRmsNorm".into()
    }

    op_as_typed_op!();
}

impl TypedOp for CenteredRmsNorm {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        ensure!(inputs[0].rank() > 0);
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl EvalOp for CenteredRmsNorm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        ensure!(x.datum_type() == f32::datum_type() && x.rank() > 0);
        let n = x.shape()[x.rank() - 1];
        // SAFETY: every value is written below (each row in full) before the tensor is read.
        #[allow(unsafe_code)]
        let mut out = unsafe { Tensor::uninitialized::<f32>(x.shape())? };
        if n == 0 {
            return Ok(tvec!(out.into_tvalue()));
        }
        let src = x.try_as_plain_ram()?;
        let src = src.as_slice::<f32>()?;
        let sum = Func::ReduceSum.reduce_f32()?;
        let rms_norm = tract_linalg::routines::rms_norm_f32()?;
        {
            let mut plain = out.try_as_plain_ram_mut()?;
            let dst = plain.as_slice_mut::<f32>()?;
            let total = dst.len();
            tract_linalg::multithread::par_chunks_mut(dst, n, total, |first, chunk| {
                let rows = src[first * n..].chunks_exact(n);
                for (row, x) in chunk.chunks_exact_mut(n).zip(rows) {
                    // tract's Reduce<Sum> uses the kernel from 4 values on, a plain sum below.
                    let s: f32 = if n >= 4 {
                        sum.run_with_params(x, ())?
                    } else {
                        x.iter().sum()
                    };
                    let mean = s * self.recip;
                    for (y, &v) in row.iter_mut().zip(x) {
                        *y = v - mean;
                    }
                    rms_norm(row, self.eps);
                }
                Ok(())
            })?;
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

/// Replaces each `RmsNorm` (last axis, f32) of `x - sum(x) * c` whose sum, product and
/// difference have no other reader; returns how many.
pub fn fuse_layer_norms(model: &mut TypedModel) -> TractResult<usize> {
    let mut patches = vec![];
    for norm in model.nodes() {
        let Some(rms) = norm.op_as::<RmsNorm>() else {
            continue;
        };
        let Some(found) = centred_input(model, norm, rms)? else {
            continue;
        };
        let (x, recip, eps) = found;
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, x)?;
        let out = patch.wire_node(&norm.name, CenteredRmsNorm { recip, eps }, &[tap])?;
        patch.shunt_outside(model, norm.id.into(), out[0])?;
        patches.push(patch);
    }
    let fused = patches.len();
    for patch in patches {
        patch.apply(model)?;
    }
    // The replaced nodes are left unconnected; the optimisation that follows drops them.
    Ok(fused)
}

/// For an `RmsNorm` node fed by `x - Reduce<Sum>(x) * c` (c one f32 constant), the outlet of
/// `x`, c and epsilon.
fn centred_input(
    model: &TypedModel,
    norm: &TypedNode,
    rms: &RmsNorm,
) -> TractResult<Option<(OutletId, f32, f32)>> {
    let only_reader = |outlet: OutletId| {
        model.node(outlet.node).outputs[outlet.slot]
            .successors
            .len()
            == 1
            && !model.outputs.contains(&outlet)
    };
    let bin = |node: &TypedNode, name: &str| {
        node.op_as::<TypedBinOp>()
            .is_some_and(|b| b.0.name() == name && node.inputs.len() == 2)
    };
    let sub = model.node(norm.inputs[0].node);
    let fact = model.outlet_fact(norm.inputs[0])?;
    if fact.datum_type != f32::datum_type()
        || rms.axis + 1 != fact.rank()
        || rms.eps.len() != 1
        || !bin(sub, "Sub")
        || !only_reader(norm.inputs[0])
    {
        return Ok(None);
    }
    let (x, mean) = (sub.inputs[0], sub.inputs[1]);
    let mul = model.node(mean.node);
    if !bin(mul, "Mul") || !only_reader(mean) || model.outlet_fact(x)?.shape != fact.shape {
        return Ok(None);
    }
    // The sum on either side of the product, a one-value constant on the other.
    for (s, c) in [(0, 1), (1, 0)] {
        let sum = model.node(mul.inputs[s].node);
        let is_sum = sum.op_as::<Reduce>().is_some_and(|r| {
            r.reducer == Reducer::Sum && r.axes.len() == 1 && r.axes[0] == rms.axis
        });
        let konst = model.outlet_fact(mul.inputs[c])?.konst.clone();
        let recip = konst
            .filter(|k| k.len() == 1 && k.datum_type() == f32::datum_type())
            .map(|k| k.cast_to_scalar::<f32>())
            .transpose()?;
        if is_sum && sum.inputs[0] == x && only_reader(mul.inputs[s]) {
            if let Some(recip) = recip {
                return Ok(Some((x, recip, rms.eps.cast_to_scalar::<f32>()?)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::multithread::{multithread_tract_scope, Executor};
    use tract_onnx::tract_core::ops::math::{mul, sub};

    /// A layer norm as tract declutters one: `RmsNorm(x - Reduce<Sum>(x) * (1/n))` over the
    /// last axis of a [1, rows, n] source; `sum_read_elsewhere` also makes the sum an output.
    fn model(rows: usize, n: usize, sum_read_elsewhere: bool) -> TractResult<TypedModel> {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, rows, n]))?;
        let reduce = Reduce::new(tvec!(2), Reducer::Sum);
        let s = m.wire_node("sum", reduce, &[x])?;
        let recip = m.add_const("recip", tensor3(&[[[1.0f32 / n as f32]]]))?;
        let mean = m.wire_node("mean", mul(), &[s[0], recip])?;
        let d = m.wire_node("d", sub(), &[x, mean[0]])?;
        let eps = Arc::new(tensor0(1e-12f32));
        let y = m.wire_node("norm", RmsNorm { axis: 2, eps }, &d)?;
        let mut outputs = vec![y[0]];
        if sum_read_elsewhere {
            outputs.push(s[0]);
        }
        m.select_output_outlets(&outputs)?;
        Ok(m)
    }

    /// Values with a large common offset per row, so that centring matters.
    fn input(rows: usize, n: usize) -> TValue {
        let v: Vec<f32> = (0..rows * n)
            .map(|i| (i / n) as f32 * 3.5 + ((i * 7919) % 1013) as f32 / 97.0 - 5.0)
            .collect();
        tract_ndarray::Array3::from_shape_vec((1, rows, n), v)
            .expect("shape")
            .into_tvalue()
    }

    fn run(m: TypedModel, rows: usize, n: usize) -> TractResult<Vec<u32>> {
        super::super::optimised_output_bits(m, input(rows, n))
    }

    #[test]
    fn fused_layer_norm_gives_tracts_bits_on_one_and_two_threads() -> TractResult<()> {
        // AST's rows, a row length that leaves a remainder for the sum kernel, one below it.
        for (rows, n) in [(1214, 768), (37, 771), (5, 3)] {
            let plain = run(model(rows, n, false)?, rows, n)?;
            let mut fused = model(rows, n, false)?;
            assert_eq!(fuse_layer_norms(&mut fused)?, 1);
            let fused = fused.into_decluttered()?;
            assert!(fused.nodes().iter().any(|n| n.op_is::<CenteredRmsNorm>()));
            assert!(!fused.nodes().iter().any(|n| n.op_is::<Reduce>()));
            assert_eq!(
                run(fused.clone(), rows, n)?,
                plain,
                "{rows} x {n}, one thread"
            );
            let two = multithread_tract_scope(Executor::multithread(2), || run(fused, rows, n))?;
            assert_eq!(two, plain, "{rows} x {n}, two threads");
        }
        Ok(())
    }

    #[test]
    fn a_sum_read_elsewhere_is_left_alone() -> TractResult<()> {
        let mut m = model(4, 16, true)?;
        assert_eq!(fuse_layer_norms(&mut m)?, 0);
        Ok(())
    }
}

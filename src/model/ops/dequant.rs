//! Load-time rewrite: an integer product's i32 → f32 cast and its scale become one pass in the product's own buffer.
//!
//! Dynamically quantised models (onnxruntime's `quantize_dynamic`) turn each integer product's
//! i32 result into floats with a Cast, then multiply it by a scale computed at run time (the
//! activation's scale times the weight's). tract runs the two as separate passes that each
//! write a new tensor the size of the product — 15 MB for an AST MLP layer, the i32 and both
//! f32 copies alive at once. `ScaledCast` converts and scales in place, on the current
//! executor's threads. Each value is `(x as f32) * scale`, the same two roundings as before.
//! Where the scaled product's only reader is an exact GELU (the MLP's up-projection), the GELU
//! is applied in the same pass, with tract's own erf kernel and the same operations as tract's
//! `GeluExact`: the same bits, one sweep of the 15 MB tensor fewer.

use tract_linalg::routines::Func;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::GeluExact;

/// `(x as f32) * scale` for an i32 tensor x and a one-element f32 scale, then GELU
/// (`0.5 · v · (1 + erf(v / √2))`, as tract's `GeluExact` computes it) where `gelu` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScaledCast {
    /// Apply the exact GELU to the scaled values.
    pub gelu: bool,
}

/// Values per erf call in the GELU pass, as tract's `GeluExact` takes them.
const GELU_CHUNK: usize = 1024;

impl Op for ScaledCast {
    fn name(&self) -> StaticName {
        if self.gelu {
            "ScaledCastGelu".into()
        } else {
            "ScaledCast".into()
        }
    }

    op_as_typed_op!();
}

impl TypedOp for ScaledCast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2);
        ensure!(inputs[0].datum_type == i32::datum_type());
        ensure!(inputs[1].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl EvalOp for ScaledCast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, scale) = args_2!(inputs);
        let scale = {
            let s = scale.try_as_plain_ram()?;
            let s = s.as_slice::<f32>()?;
            ensure!(s.len() == 1, "scale has {} values, not one", s.len());
            s[0]
        };
        // The product's own buffer when nothing else reads it (the plan hands over the last
        // reference), a copy otherwise.
        let mut t = x.into_tensor();
        ensure!(
            t.datum_type() == i32::datum_type(),
            "ScaledCast of {:?}",
            t.datum_type()
        );
        let erf = if self.gelu {
            Some(Func::Erf.ew_f32()?)
        } else {
            None
        };
        {
            let mut plain = t.try_as_plain_ram_mut()?;
            let v = plain.as_slice_mut::<i32>()?;
            tract_linalg::multithread::par_chunks_mut(v, 1, v.len(), |_, chunk| {
                let Some(erf) = &erf else {
                    for x in chunk {
                        *x = ((*x as f32) * scale).to_bits() as i32;
                    }
                    return Ok(());
                };
                let inv_sqrt2 = (2.0f32).sqrt().recip();
                let (mut v, mut e) = ([0f32; GELU_CHUNK], [0f32; GELU_CHUNK]);
                for xs in chunk.chunks_mut(GELU_CHUNK) {
                    let (v, e) = (&mut v[..xs.len()], &mut e[..xs.len()]);
                    for ((v, e), x) in v.iter_mut().zip(e.iter_mut()).zip(xs.iter()) {
                        *v = (*x as f32) * scale;
                        *e = *v * inv_sqrt2;
                    }
                    erf.run(e)?;
                    for ((x, v), e) in xs.iter_mut().zip(v.iter()).zip(e.iter()) {
                        *x = ((*v * 0.5) * (*e + 1.0)).to_bits() as i32;
                    }
                }
                Ok(())
            })?;
        }
        // SAFETY: every i32 now holds the bits of an f32, and the two types have one size
        // and alignment.
        #[allow(unsafe_code)]
        unsafe {
            t.set_datum_type(f32::datum_type())
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

/// Replaces every Cast(i32 → f32) (not itself a model output) whose only reader multiplies it by a one-element f32 into a
/// result of the same shape, and the exact GELU that is that product's only reader, if any;
/// returns how many casts.
pub fn fuse_scaled_casts(model: &mut TypedModel) -> TractResult<usize> {
    let mut patches = vec![];
    for cast in model.nodes() {
        let to_f32 = cast
            .op_as::<Cast>()
            .is_some_and(|c| c.to == f32::datum_type());
        if !to_f32 || model.outlet_fact(cast.inputs[0])?.datum_type != i32::datum_type() {
            continue;
        }
        let readers = &cast.outputs[0].successors;
        if readers.len() != 1 || model.outputs.contains(&cast.id.into()) {
            continue;
        }
        let mul = model.node(readers[0].node);
        if mul
            .op_as::<TypedBinOp>()
            .is_none_or(|b| b.0.name() != "Mul")
        {
            continue;
        }
        let scale = mul.inputs[1 - readers[0].slot];
        let scale_fact = model.outlet_fact(scale)?;
        let one_value = scale_fact
            .shape
            .as_concrete()
            .is_some_and(|s| s.iter().product::<usize>() == 1);
        if scale_fact.datum_type != f32::datum_type()
            || !one_value
            || model.outlet_fact(mul.id.into())?.shape != model.outlet_fact(cast.id.into())?.shape
        {
            continue;
        }
        // An exact GELU as the scaled product's only reader goes into the same pass.
        let gelu = match &*mul.outputs[0].successors {
            [only] if !model.outputs.contains(&mul.id.into()) => {
                let g = model.node(only.node);
                g.op_as::<ElementWiseOp>()
                    .is_some_and(|e| e.0.is::<GeluExact>() && e.1.is_none())
                    .then_some(g)
            }
            _ => None,
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, cast.inputs[0])?;
        let s = patch.tap_model(model, scale)?;
        let op = ScaledCast {
            gelu: gelu.is_some(),
        };
        let out = patch.wire_node(&cast.name, op, &[x, s])?;
        let replaced = gelu.map_or(mul.id, |g| g.id);
        patch.shunt_outside(model, replaced.into(), out[0])?;
        patches.push(patch);
    }
    let fused = patches.len();
    for patch in patches {
        patch.apply(model)?;
    }
    // The replaced Cast and Mul are left unconnected; the optimisation that follows drops them.
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::multithread::{multithread_tract_scope, Executor};
    use tract_onnx::tract_core::ops::math::mul;
    use tract_onnx::tract_core::ops::nn::gelu_exact::gelu_exact;

    /// i32 source → Cast(f32) → Mul(scale, a [1, 1] constant); `second_reader` also makes the
    /// cast an output of the model.
    fn model(rows: usize, second_reader: bool) -> TractResult<TypedModel> {
        model_with(rows, second_reader, false)
    }

    /// As `model`, with an exact GELU after the Mul where `gelu` is set (the Mul's only reader,
    /// unless `second_reader` also makes the Mul an output).
    fn model_with(rows: usize, second_reader: bool, gelu: bool) -> TractResult<TypedModel> {
        let mut m = TypedModel::default();
        let x = m.add_source("x", i32::fact([rows, 7]))?;
        let c = m.wire_node(
            "cast",
            Cast {
                to: f32::datum_type(),
            },
            &[x],
        )?;
        let s = m.add_const("scale", tensor2(&[[0.0371f32]]))?;
        let y = m.wire_node("mul", mul(), &[c[0], s])?;
        // The last node, and the node before it (the second reader's output).
        let (last, before) = if gelu {
            (m.wire_node("gelu", gelu_exact(), &[y[0]])?[0], y[0])
        } else {
            (y[0], c[0])
        };
        let outputs = if second_reader {
            vec![last, before]
        } else {
            vec![last]
        };
        m.select_output_outlets(&outputs)?;
        Ok(m)
    }

    fn input(rows: usize) -> TValue {
        let mut v: Vec<i32> = (0..rows as i64 * 7)
            .map(|i| ((i * 7919) % 200_003 - 100_000) as i32)
            .collect();
        // Values an f32 cannot hold exactly, at both ends of the range.
        v[0] = i32::MAX;
        v[1] = i32::MIN;
        v[2] = 16_777_217;
        tensor1(&v)
            .into_shape(&[rows, 7])
            .expect("shape")
            .into_tvalue()
    }

    fn run(m: TypedModel, rows: usize) -> TractResult<Vec<u32>> {
        super::super::optimised_output_bits(m, input(rows))
    }

    #[test]
    fn fused_cast_and_scale_give_the_same_bits_on_one_and_two_threads() -> TractResult<()> {
        for rows in [3, 100_000] {
            let plain = run(model(rows, false)?, rows)?;
            let mut fused = model(rows, false)?;
            assert_eq!(fuse_scaled_casts(&mut fused)?, 1);
            assert!(fused.nodes().iter().any(|n| n.op_is::<ScaledCast>()));
            assert!(!fused.nodes().iter().any(|n| n.op_is::<Cast>()));
            assert_eq!(run(fused.clone(), rows)?, plain, "{rows} rows, one thread");
            let two = multithread_tract_scope(Executor::multithread(2), || run(fused, rows))?;
            assert_eq!(two, plain, "{rows} rows, two threads");
        }
        Ok(())
    }

    #[test]
    fn a_gelu_after_the_scale_gives_the_same_bits_in_the_same_pass() -> TractResult<()> {
        // Rows of 7: GELU chunks and thread parts that do not fall on rows.
        for rows in [3, 100_000] {
            let plain = run(model_with(rows, false, true)?, rows)?;
            let mut fused = model_with(rows, false, true)?;
            assert_eq!(fuse_scaled_casts(&mut fused)?, 1);
            let fused = fused.into_decluttered()?;
            assert!(fused
                .nodes()
                .iter()
                .any(|n| n.op_as::<ScaledCast>().is_some_and(|s| s.gelu)));
            assert!(!fused.nodes().iter().any(|n| n.op_is::<ElementWiseOp>()));
            assert_eq!(run(fused.clone(), rows)?, plain, "{rows} rows, one thread");
            let two = multithread_tract_scope(Executor::multithread(2), || run(fused, rows))?;
            assert_eq!(two, plain, "{rows} rows, two threads");
        }
        // The scaled product read elsewhere too: the GELU stays on its own.
        let mut m = model_with(3, true, true)?;
        assert_eq!(fuse_scaled_casts(&mut m)?, 1);
        assert!(m
            .nodes()
            .iter()
            .any(|n| n.op_as::<ScaledCast>().is_some_and(|s| !s.gelu)));
        Ok(())
    }

    #[test]
    fn a_cast_read_elsewhere_is_left_alone() -> TractResult<()> {
        let mut m = model(3, true)?;
        assert_eq!(fuse_scaled_casts(&mut m)?, 0);
        Ok(())
    }
}

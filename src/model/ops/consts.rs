//! Load-time folding of constant shape arithmetic: tensors of symbolic integers computed as plain integers before tract's declutter.
//!
//! A graph that derives positions from its input's shape (BEATs' relative-position buckets:
//! `Range` over the token count, then a tokens × tokens chain of `Sub`, `Abs`, `Where`, `Min`)
//! is constant once the input shape is fixed, but tract types those values as `TDim`, a
//! symbolic integer of 32 bytes, and its declutter folds the chain one node at a time, several
//! 496 × 496 `TDim` tensors alive at once: the load's peak memory (docs/benchmarks-history.md, *Memory*).
//! Here, when a model has such a chain, every node computable from constants is evaluated in
//! graph order with `TDim` values held as `i64`, each value dropped after its last reader,
//! and the values that the rest of the graph reads become constants of their declared type.

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::konst::Const;

/// Largest value folded here (in its declared type, a `TDim` counted as 8 bytes); a larger
/// one is left to the graph, its inputs becoming constants.
const LARGEST_FOLDED: usize = 4 << 20;

/// A chain counts as shape arithmetic from this many `TDim` values in one tensor.
const TDIM_CHAIN_FROM: usize = 1 << 16;

/// Folds the model's constant subgraphs when one of them computes a large `TDim` tensor;
/// returns how many of the graph's values became constants (0: the model is unchanged).
/// On an error (an op that cannot be computed out of a plan, a `TDim` that is not a plain
/// integer) the model is left as it was.
pub fn fold_shape_arithmetic(model: &mut TypedModel) -> TractResult<usize> {
    let order = model.eval_order()?;
    let mut computable = vec![false; model.nodes().len()];
    let mut worth_it = false;
    for &id in &order {
        let node = model.node(id);
        if node.op_is::<Const>() || node.inputs.is_empty() {
            continue;
        }
        // Computable from constants, and fed by the shape arithmetic (a `TDim` value, or a
        // node computed from one): other constant subgraphs (weights reshaped, cast) are
        // left to tract, which folds them in place.
        let inputs_known = node
            .inputs
            .iter()
            .all(|i| computable[i.node] || model.node(i.node).op_is::<Const>());
        let fed = node
            .outputs
            .iter()
            .any(|o| o.fact.datum_type == TDim::datum_type())
            || node.inputs.iter().any(|i| {
                computable[i.node]
                    || model
                        .outlet_fact(*i)
                        .is_ok_and(|f| f.datum_type == TDim::datum_type())
            });
        let small = node.outputs.iter().all(|o| {
            let size = if o.fact.datum_type == TDim::datum_type() {
                8
            } else {
                o.fact.datum_type.size_of()
            };
            o.fact
                .shape
                .as_concrete()
                .is_some_and(|s| s.iter().product::<usize>() * size <= LARGEST_FOLDED)
        });
        computable[id] = inputs_known && fed && small;
        worth_it |= computable[id]
            && node.outputs.iter().any(|o| {
                o.fact.datum_type == TDim::datum_type()
                    && o.fact
                        .shape
                        .as_concrete()
                        .is_some_and(|s| s.iter().product::<usize>() >= TDIM_CHAIN_FROM)
            });
    }
    if !worth_it {
        return Ok(0);
    }
    // Readers among the folded nodes, so that each value is dropped once they have run; the
    // values read by any other node (or a model output) are kept as the result.
    let mut readers: HashMap<OutletId, usize> = HashMap::new();
    let mut kept: HashSet<OutletId> = HashSet::new();
    for &id in &order {
        if !computable[id] {
            for i in &model.node(id).inputs {
                if computable[i.node] {
                    kept.insert(*i);
                }
            }
            continue;
        }
        for i in &model.node(id).inputs {
            *readers.entry(*i).or_default() += 1;
        }
    }
    for o in model.output_outlets()? {
        if computable[o.node] {
            kept.insert(*o);
        }
    }
    let mut values: HashMap<OutletId, TValue> = HashMap::new();
    let mut results: Vec<(OutletId, Tensor)> = Vec::new();
    for &id in &order {
        if !computable[id] {
            continue;
        }
        let node = model.node(id);
        let mut inputs = TVec::new();
        for i in &node.inputs {
            let value = match values.get(i) {
                Some(v) => v.clone(),
                None => as_integers(
                    model
                        .outlet_fact(*i)?
                        .konst
                        .clone()
                        .context("constant without a value")?,
                )?,
            };
            inputs.push(value);
            let left = readers.get_mut(i).context("reader count")?;
            *left -= 1;
            if *left == 0 && !kept.contains(i) {
                values.remove(i);
            }
        }
        let outputs = match cast_to_tdim(model, node, &inputs)? {
            Some(value) => tvec!(value),
            None => node
                .op
                .eval_out_of_plan(inputs)?
                .with_context(|| format!("{} cannot be computed out of a plan", node.name))?,
        };
        for (slot, value) in outputs.into_iter().enumerate() {
            let outlet = OutletId::new(id, slot);
            let value = as_integers(value.into_arc_tensor())?;
            if kept.contains(&outlet) {
                let declared = model.outlet_fact(outlet)?.datum_type;
                let value = if value.datum_type() == declared {
                    value.clone().into_tensor()
                } else {
                    value.cast_to_dt(declared)?.into_owned()
                };
                results.push((outlet, value));
            }
            if readers.contains_key(&outlet) {
                values.insert(outlet, value);
            }
        }
    }
    drop(values);
    let mut patch = TypedModelPatch::new("folded shape arithmetic");
    let folded = results.len();
    for (outlet, value) in results {
        let name = format!("{}.folded", model.node(outlet.node).name);
        let wire = patch.add_const(name, value)?;
        patch.shunt_outside(model, outlet, wire)?;
    }
    patch.apply(model)?;
    Ok(folded)
}

/// A cast to `TDim`, computed straight to its `i64` form: tract's own cast makes the `TDim`
/// tensor first (a 496 × 496 one is 7.9 MB, four times its integers). Numbers and booleans go
/// through `i32`, as tract casts them to `TDim`; a `TDim` (held as `i64`) stays as it is.
fn cast_to_tdim(
    model: &TypedModel,
    node: &TypedNode,
    inputs: &TVec<TValue>,
) -> TractResult<Option<TValue>> {
    let Some(cast) = node.op_as::<tract_onnx::tract_core::ops::cast::Cast>() else {
        return Ok(None);
    };
    if cast.to != TDim::datum_type() || inputs.len() != 1 {
        return Ok(None);
    }
    if model.outlet_fact(node.inputs[0])?.datum_type == TDim::datum_type() {
        return Ok(Some(inputs[0].clone()));
    }
    let ints = inputs[0].cast_to::<i32>()?;
    Ok(Some(ints.cast_to::<i64>()?.into_owned().into_tvalue()))
}

/// A `TDim` tensor of plain integers as `i64` (a quarter of the memory); others as they are.
fn as_integers(tensor: Arc<Tensor>) -> TractResult<TValue> {
    if tensor.datum_type() == TDim::datum_type() {
        Ok(tensor.cast_to::<i64>()?.into_owned().into_tvalue())
    } else {
        Ok(tensor.into_tvalue())
    }
}

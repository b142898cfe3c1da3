//! Load-time graph rewrite: finds the attention subgraphs of a decluttered model and puts the
//! fused attention op (`attention/`) in their place.
//!
//! Matched, walking back from each Softmax over one axis (every piece but the two products is
//! optional, and each intermediate result must have no other reader):
//!
//! ```text
//! EinSum(Q, K) → [Sub(·, ReduceMax(·))] → [Mul/Div by a scalar] → [Add(bias)] → Softmax → EinSum(·, V)
//! ```
//!
//! The row-max subtraction (BEATs) is dropped: softmax is invariant to a per-row shift. A bias
//! that is a constant times a per-query gate (BEATs' gated relative-position bias: one
//! heads × tokens × tokens table for every layer, times each layer's gate) goes into the op as
//! the two factors, the table computed once at load and stored as the op reads it fastest
//! (its diagonals when it depends on key − query alone, as BEATs' does, else key-major), so
//! the product is never stored whole. Any other shape of graph is left as it is, so a model
//! this does not recognise still runs.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

use super::attention::{FusedAttention, Layout, Precision};
use super::Attention;

/// Whether any product of `model` multiplies 8-bit integers: a quantised model, whose
/// attention may run its products in bfloat16 (`Precision::Bf16`).
fn has_integer_products(model: &TypedModel) -> TractResult<bool> {
    for node in model.nodes() {
        if node.op_is::<EinSum>() {
            for input in &node.inputs {
                let dt = model.outlet_fact(*input)?.datum_type.unquantized();
                if dt == u8::datum_type() || dt == i8::datum_type() {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Replaces every attention subgraph it recognises; returns how many. With `Attention::Auto`
/// in a quantised model (8-bit integer products) the fused ops take `Precision::Bf16`, else
/// f32.
pub fn fuse_attention(model: &mut TypedModel, attention: Attention) -> TractResult<usize> {
    let precision = if attention == Attention::Auto && has_integer_products(model)? {
        Precision::Bf16
    } else {
        Precision::F32
    };
    let softmaxes: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<Softmax>())
        .map(|n| n.id)
        .collect();
    let mut fused = 0;
    // Gated biases' tables, computed and stored once for every layer that reads them.
    let mut tables = HashMap::new();
    for id in softmaxes {
        if let Some(mut found) = Match::find(model, id) {
            found.op.precision = precision;
            found.apply(model, &mut tables)?;
            fused += 1;
        }
    }
    if fused > 0 {
        *model = std::mem::take(model).into_decluttered()?;
    }
    Ok(fused)
}

/// One recognised subgraph.
struct Match {
    q: OutletId,
    k: OutletId,
    v: OutletId,
    bias: Option<OutletId>,
    /// A gated bias: the constant table and the gate whose product is `bias`.
    gated: Option<(OutletId, OutletId)>,
    op: FusedAttention,
    output: OutletId,
    name: String,
}

/// The only reader of `outlet`, unless it has several or is a model output.
fn sole_reader(model: &TypedModel, outlet: OutletId) -> Option<usize> {
    let node = model.node(outlet.node);
    let succ = &node.outputs[outlet.slot].successors;
    if succ.len() != 1 || model.output_outlets().ok()?.contains(&outlet) {
        return None;
    }
    Some(succ[0].node)
}

fn bin_name(model: &TypedModel, node: usize) -> Option<String> {
    model
        .node(node)
        .op_as::<TypedBinOp>()
        .map(|b| b.0.name().to_string())
}

/// The f32 value of a constant scalar (any rank, one element).
fn scalar(model: &TypedModel, outlet: OutletId) -> Option<f32> {
    let k = model.outlet_fact(outlet).ok()?.konst.clone()?;
    if k.len() != 1 || k.datum_type() != f32::datum_type() {
        return None;
    }
    k.cast_to_scalar::<f32>().ok()
}

fn shape(model: &TypedModel, outlet: OutletId) -> Option<Vec<usize>> {
    Some(
        model
            .outlet_fact(outlet)
            .ok()?
            .shape
            .as_concrete()?
            .to_vec(),
    )
}

impl Match {
    fn find(model: &TypedModel, softmax: usize) -> Option<Match> {
        let sm = model.node(softmax);
        let op = sm.op_as::<Softmax>()?;
        if op.kind != SoftmaxKind::Softmax || op.quant_output_dt.is_some() || op.axes.len() != 1 {
            return None;
        }
        let sm_axis = op.axes[0];
        let scores_shape = shape(model, sm.inputs[0])?;
        if model.outlet_fact(sm.inputs[0]).ok()?.datum_type != f32::datum_type() {
            return None;
        }
        // Walk back from the softmax input.
        let mut at = sm.inputs[0];
        let mut bias = None;
        let mut scale = 1f32;
        if sole_reader(model, at)? != softmax {
            return None;
        }
        if bin_name(model, at.node).as_deref() == Some("Add") {
            let add = model.node(at.node);
            // The bias is the operand that does not lead back to the Q·K product.
            let (chain, b) = if Self::leads_to_product(model, add.inputs[0]) {
                (add.inputs[0], add.inputs[1])
            } else {
                (add.inputs[1], add.inputs[0])
            };
            let bshape = shape(model, b)?;
            if bshape.len() != scores_shape.len() {
                return None;
            }
            bias = Some(b);
            let add = at.node;
            at = chain;
            if sole_reader(model, at)? != add {
                return None;
            }
        }
        if let Some(name @ ("Mul" | "Div")) = bin_name(model, at.node).as_deref() {
            let node = model.node(at.node);
            let (chain, c) = match (scalar(model, node.inputs[0]), scalar(model, node.inputs[1])) {
                (_, Some(c)) => (node.inputs[0], c),
                (Some(c), None) if name == "Mul" => (node.inputs[1], c),
                _ => return None,
            };
            scale = if name == "Mul" { c } else { c.recip() };
            let mul = at.node;
            at = chain;
            if sole_reader(model, at)? != mul {
                return None;
            }
        }
        if bin_name(model, at.node).as_deref() == Some("Sub") {
            // (s - max(s over the softmax axis)): a per-row shift.
            let sub = model.node(at.node);
            let s = sub.inputs[0];
            let red = model.node(sub.inputs[1].node);
            let r = red.op_as::<Reduce>()?;
            if !matches!(r.reducer, Reducer::Max) || r.axes.as_slice() != [sm_axis] {
                return None;
            }
            if red.inputs[0] != s {
                return None;
            }
            let readers: Vec<usize> = model.node(s.node).outputs[s.slot]
                .successors
                .iter()
                .map(|i| i.node)
                .collect();
            if readers.len() != 2
                || !readers.contains(&red.id)
                || !readers.contains(&sub.id)
                || sole_reader(model, sub.inputs[1])? != sub.id
            {
                return None;
            }
            at = s;
        }
        // The Q·Kᵀ product.
        let qk_node = model.node(at.node);
        let qk = qk_node.op_as::<EinSum>()?;
        if qk.q_params.is_some() || qk_node.inputs.len() != 2 || at.slot != 0 {
            return None;
        }
        // The P·V product reading the softmax.
        let pv_id = sole_reader(model, OutletId::new(softmax, 0))?;
        let pv_node = model.node(pv_id);
        let pv = pv_node.op_as::<EinSum>()?;
        if pv.q_params.is_some() || pv_node.inputs.len() != 2 {
            return None;
        }
        let p_slot = pv_node
            .inputs
            .iter()
            .position(|i| *i == OutletId::new(softmax, 0))?;
        let v_slot = 1 - p_slot;

        // Axis roles in the scores: j = softmax axis (keys), i = queries, h = heads.
        let in_shapes: Vec<Vec<usize>> = qk_node
            .inputs
            .iter()
            .map(|i| shape(model, *i))
            .collect::<Option<_>>()?;
        let (mut h, mut i, mut j, mut d) = (None, None, None, None);
        let (mut k_slot, mut q_slot) = (None, None);
        let mut q_axes = [0usize; 3];
        let mut k_axes = [0usize; 3];
        for axis in qk.axes.iter_all_axes() {
            let outs = &axis.outputs[0];
            let ins: Vec<&[usize]> = axis.inputs.iter().map(|p| p.as_slice()).collect();
            let size = match (outs.first(), ins.iter().position(|p| !p.is_empty())) {
                (Some(&o), _) => scores_shape[o],
                (None, Some(slot)) => in_shapes[slot][ins[slot][0]],
                _ => 1,
            };
            if size == 1 {
                continue; // batch axes of one element play no part
            }
            match (outs.as_slice(), ins[0], ins[1]) {
                ([o], [a], [b]) => {
                    // In both operands and the scores: heads.
                    if h.replace(*o).is_some() {
                        return None;
                    }
                    q_axes[0] = *a;
                    k_axes[0] = *b;
                }
                ([o], [a], []) | ([o], [], [a]) => {
                    let slot = if ins[0].is_empty() { 1 } else { 0 };
                    if *o == sm_axis {
                        j = Some(*o);
                        k_slot = Some(slot);
                        k_axes[1] = *a;
                    } else {
                        i = Some(*o);
                        q_slot = Some(slot);
                        q_axes[1] = *a;
                    }
                }
                ([], [a], [b]) => {
                    if d.replace((*a, *b)).is_some() {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        let (h, i, j, d) = (h?, i?, j?, d?);
        // Whether `outlet` is (head or one, queries, keys or one if `one_key`), ones elsewhere.
        let fits = |outlet: OutletId, one_key: bool| {
            shape(model, outlet).is_some_and(|bs| {
                bs.len() == scores_shape.len()
                    && bs.iter().enumerate().all(|(ax, &n)| match ax {
                        _ if ax == j && one_key => n == 1,
                        _ if ax == i || ax == j => n == scores_shape[ax],
                        _ if ax == h => n == 1 || n == scores_shape[ax],
                        _ => n == 1,
                    })
            })
        };
        if bias.is_some_and(|b| !fits(b, false)) {
            return None;
        }
        let mut gated = None;
        if let Some(b) = bias {
            let mul = model.node(b.node);
            if bin_name(model, b.node).as_deref() == Some("Mul") && sole_reader(model, b).is_some()
            {
                gated = [(0, 1), (1, 0)]
                    .map(|(t, g)| (mul.inputs[t], mul.inputs[g]))
                    .into_iter()
                    .find(|&(table, g)| {
                        fits(table, false) && fits(g, true) && is_constant(model, table, 4)
                    });
            }
        }
        let (q_slot, k_slot) = (q_slot?, k_slot?);
        if q_slot == k_slot {
            return None;
        }
        // d positions are (slot 0, slot 1).
        let (d_q, d_k) = if q_slot == 0 { d } else { (d.1, d.0) };
        if q_slot == 1 {
            // q_axes[0]/k_axes[0] were filled as (slot 0, slot 1).
            std::mem::swap(&mut q_axes[0], &mut k_axes[0]);
        }
        q_axes[2] = d_q;
        k_axes[2] = d_k;

        // Axis roles in P·V.
        let v_shape = shape(model, pv_node.inputs[v_slot])?;
        let out_shape = shape(model, OutletId::new(pv_id, 0))?;
        let mut v_axes = [usize::MAX; 3];
        let mut out_axes = [usize::MAX; 3];
        for axis in pv.axes.iter_all_axes() {
            let p = axis.inputs[p_slot].as_slice();
            let vv = axis.inputs[v_slot].as_slice();
            let o = axis.outputs[0].as_slice();
            let size = p
                .iter()
                .map(|&a| scores_shape[a])
                .chain(vv.iter().map(|&a| v_shape[a]))
                .chain(o.iter().map(|&a| out_shape[a]))
                .max()
                .unwrap_or(1);
            if size == 1 {
                continue;
            }
            match (p, vv, o) {
                ([p], [v], [o]) if *p == h => {
                    v_axes[0] = *v;
                    out_axes[0] = *o;
                }
                ([p], [], [o]) if *p == i => out_axes[1] = *o,
                ([p], [v], []) if *p == j => v_axes[1] = *v,
                ([], [v], [o]) => {
                    if v_axes[2] != usize::MAX {
                        return None;
                    }
                    v_axes[2] = *v;
                    out_axes[2] = *o;
                }
                _ => return None,
            }
        }
        if v_axes.contains(&usize::MAX) || out_axes.contains(&usize::MAX) {
            return None;
        }
        let layout = |axes: [usize; 3], rank: usize| Layout { axes, rank };
        let op = FusedAttention {
            q: layout(q_axes, in_shapes[q_slot].len()),
            k: layout(k_axes, in_shapes[k_slot].len()),
            v: layout(v_axes, v_shape.len()),
            // As the graph has it; `apply` makes a gated bias two inputs.
            bias: bias.map(|_| layout([h, i, j], scores_shape.len())),
            gate: None,
            bias_diagonals: false,
            out: layout(out_axes, out_shape.len()),
            out_shape: out_shape.into(),
            scale,
            precision: Precision::F32,
        };
        Some(Match {
            q: qk_node.inputs[q_slot],
            k: qk_node.inputs[k_slot],
            v: pv_node.inputs[v_slot],
            bias,
            gated,
            op,
            output: OutletId::new(pv_id, 0),
            name: pv_node.name.clone(),
        })
    }

    /// Whether `outlet` comes from the Q·K product through the optional Mul/Div/Sub steps.
    fn leads_to_product(model: &TypedModel, outlet: OutletId) -> bool {
        let mut at = outlet;
        for _ in 0..3 {
            let node = model.node(at.node);
            if node.op_is::<EinSum>() {
                return true;
            }
            match bin_name(model, at.node).as_deref() {
                Some("Mul" | "Div" | "Sub") => at = node.inputs[0],
                _ => return false,
            }
        }
        model.node(at.node).op_is::<EinSum>()
    }

    /// Puts the op in place; a gated bias whose table cannot be computed here is taken as the
    /// graph's product instead.
    fn apply(
        mut self,
        model: &mut TypedModel,
        tables: &mut HashMap<OutletId, Option<(OutletId, bool)>>,
    ) -> TractResult<()> {
        let mut inputs = vec![self.q, self.k, self.v];
        inputs.extend(self.bias);
        if let (Some((table, gate)), Some(layout)) = (self.gated, self.op.bias.clone()) {
            let stored = match tables.get(&table) {
                Some(&stored) => stored,
                None => {
                    let value =
                        evaluate(model, table, 4).and_then(|t| stored_table(&t, layout.axes));
                    let stored = match value {
                        Ok((value, diagonals)) => {
                            let form = if diagonals { "diagonals" } else { "key_major" };
                            let name = format!("{}.{form}", model.node(table.node).name);
                            Some((model.add_const(name, value)?, diagonals))
                        }
                        Err(_) => None,
                    };
                    tables.insert(table, stored);
                    stored
                }
            };
            if let Some((stored, diagonals)) = stored {
                inputs[3] = stored;
                inputs.push(gate);
                // The table is stored (head, 1, diagonal) or (head, key, query), see
                // `stored_table`; the gate is (head, query, one) at the scores' axes.
                self.op.bias = Some(Layout {
                    axes: if diagonals { [0, 1, 2] } else { [0, 2, 1] },
                    rank: 3,
                });
                self.op.gate = Some(layout);
                self.op.bias_diagonals = diagonals;
            }
        }
        let mut patch = TypedModelPatch::new("fused attention");
        let inputs = inputs
            .into_iter()
            .map(|i| patch.tap_model(model, i))
            .collect::<TractResult<Vec<_>>>()?;
        let out = patch.wire_node(format!("{}.fused_attention", self.name), self.op, &inputs)?[0];
        patch.shunt_outside(model, self.output, out)?;
        patch.apply(model)
    }
}

/// Whether `outlet` is a constant or computed from constants alone within `depth` steps.
fn is_constant(model: &TypedModel, outlet: OutletId, depth: usize) -> bool {
    let Ok(fact) = model.outlet_fact(outlet) else {
        return false;
    };
    if fact.konst.is_some() {
        return true;
    }
    let node = model.node(outlet.node);
    depth > 0
        && !node.inputs.is_empty()
        && node
            .inputs
            .iter()
            .all(|i| is_constant(model, *i, depth - 1))
}

/// The value of an outlet that `is_constant`, computed here (constants shared, not copied).
fn evaluate(model: &TypedModel, outlet: OutletId, depth: usize) -> TractResult<TValue> {
    let fact = model.outlet_fact(outlet)?;
    if let Some(k) = &fact.konst {
        return Ok(k.clone().into_tvalue());
    }
    ensure!(depth > 0, "not a constant within reach");
    let node = model.node(outlet.node);
    let inputs = node
        .inputs
        .iter()
        .map(|i| evaluate(model, *i, depth - 1))
        .collect::<TractResult<TVec<_>>>()?;
    let mut out = node
        .op
        .eval_out_of_plan(inputs)?
        .with_context(|| format!("{} cannot be computed out of a plan", node.name))?;
    ensure!(outlet.slot < out.len());
    Ok(out.swap_remove(outlet.slot))
}

/// A (head, query, key) table — at axes `[h, i, j]` of a tensor whose other axes have size
/// one — as the op reads it a vector of queries at a time: when every value depends on
/// key − query alone (a relative-position table), its diagonals, (head, 1, n + m − 1) with
/// (q, k) at q − k + m − 1 (true); otherwise the whole table, contiguous (head, key, query)
/// (false).
fn stored_table(table: &Tensor, [h, i, j]: [usize; 3]) -> TractResult<(Tensor, bool)> {
    let view = table.to_plain_array_view::<f32>()?;
    let (heads, queries, keys) = (view.shape()[h], view.shape()[i], view.shape()[j]);
    let mut perm: Vec<usize> = vec![h, i, j];
    perm.extend((0..view.ndim()).filter(|a| ![h, i, j].contains(a)));
    let mut hqk = view.permuted_axes(perm);
    while hqk.ndim() > 3 {
        let last = tract_ndarray::Axis(hqk.ndim() - 1);
        hqk = hqk.index_axis_move(last, 0);
    }
    let hqk = hqk.into_dimensionality::<tract_ndarray::Ix3>()?;
    debug_assert_eq!(hqk.dim(), (heads, queries, keys));
    if let Some(diagonals) = diagonals(&hqk) {
        return Ok((diagonals.into_tensor(), true));
    }
    let moved = hqk
        .permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned();
    Ok((moved.into_tensor(), false))
}

/// The diagonals of every head's (query, key) table, (head, 1, n + m − 1) with (q, k) at
/// q − k + m − 1, if each diagonal holds one value (bit for bit); else None.
fn diagonals(table: &tract_ndarray::ArrayView3<f32>) -> Option<tract_ndarray::Array3<f32>> {
    let (heads, n, m) = table.dim();
    if n == 0 || m == 0 {
        return None;
    }
    // Diagonal t starts at the first key (query t − m + 1) or at the first query (key m − 1 − t).
    let diagonals = tract_ndarray::Array3::from_shape_fn((heads, 1, n + m - 1), |(h, _, t)| {
        let (q, k) = if t + 1 >= m {
            (t + 1 - m, 0)
        } else {
            (0, m - 1 - t)
        };
        table[(h, q, k)]
    });
    let same = table
        .indexed_iter()
        .all(|((h, q, k), x)| x.to_bits() == diagonals[(h, 0, q + m - 1 - k)].to_bits());
    same.then_some(diagonals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A (1, query, head, key) table: axes [h, i, j] = [2, 1, 3], as a graph may hold it.
    fn table(
        heads: usize,
        n: usize,
        m: usize,
        value: impl Fn(usize, usize, usize) -> f32,
    ) -> Tensor {
        tract_ndarray::Array4::from_shape_fn((1, n, heads, m), |(_, q, h, k)| value(h, q, k))
            .into_tensor()
    }

    #[test]
    fn a_table_of_key_minus_query_is_stored_as_its_diagonals() {
        let (heads, n, m) = (3, 5, 4);
        let rel =
            |h: usize, q: usize, k: usize| (h * 100) as f32 + ((k as f32 - q as f32) * 1.5).sin();
        let (stored, diagonals) =
            stored_table(&table(heads, n, m, rel), [2, 1, 3]).expect("stored");
        assert!(diagonals);
        assert_eq!(stored.shape(), &[heads, 1, n + m - 1]);
        let d = stored.to_plain_array_view::<f32>().expect("f32");
        for (h, q, k) in
            (0..heads).flat_map(|h| (0..n).flat_map(move |q| (0..m).map(move |k| (h, q, k))))
        {
            assert_eq!(d[[h, 0, q + m - 1 - k]], rel(h, q, k), "({h}, {q}, {k})");
        }
    }

    #[test]
    fn any_other_table_is_stored_whole_and_key_major() {
        let (heads, n, m) = (2, 4, 6);
        let any = |h: usize, q: usize, k: usize| (h * 100 + q * 10 + k) as f32;
        let (stored, diagonals) =
            stored_table(&table(heads, n, m, any), [2, 1, 3]).expect("stored");
        assert!(!diagonals);
        assert_eq!(stored.shape(), &[heads, m, n]);
        let t = stored.to_plain_array_view::<f32>().expect("f32");
        assert_eq!(t[[1, 5, 3]], any(1, 3, 5));
        // One value off its diagonal is enough to keep the whole table.
        let almost = |h: usize, q: usize, k: usize| {
            if (h, q, k) == (1, 3, 2) {
                0.25
            } else {
                k as f32 - q as f32
            }
        };
        let (_, diagonals) = stored_table(&table(heads, n, m, almost), [2, 1, 3]).expect("stored");
        assert!(!diagonals);
    }
}

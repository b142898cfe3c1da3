//! The op's operands seen as (head, token, feature) over their tensors, in place, and the
//! biases added to a block of scores.

#![allow(unsafe_code)]

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
    /// `tensor` seen as (head, token, feature), in place: no copy, whatever its layout.
    pub(super) fn operand<'a>(&self, tensor: &'a Tensor) -> TractResult<Operand<'a>> {
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
    pub(super) tensor: &'a Tensor,
    pub(super) dims: [usize; 3],
    pub(super) strides: [isize; 3],
}

/// Rows of one head of an operand: where they start and their (token, feature) shape and
/// strides, for a `TensorView` over the operand's tensor.
pub(super) struct Rows {
    pub(super) offset_bytes: isize,
    pub(super) shape: [usize; 2],
    pub(super) strides: [isize; 2],
}

impl Operand<'_> {
    /// Tokens `from..from + len` of head `h` (head 0 if the operand has one for all).
    pub(super) fn rows(&self, h: usize, from: usize, len: usize) -> Rows {
        let h = if self.dims[0] == 1 { 0 } else { h };
        debug_assert!(h < self.dims[0] && from + len <= self.dims[1]);
        Rows {
            offset_bytes: (h as isize * self.strides[0] + from as isize * self.strides[1]) * 4,
            shape: [len, self.dims[2]],
            strides: [self.strides[1], self.strides[2]],
        }
    }

    /// The view of `rows` (taken from this operand, so inside its tensor).
    pub(super) fn view<'v>(&'v self, rows: &'v Rows) -> TensorView<'v> {
        // SAFETY: `rows` comes from `Operand::rows`, whose head and token range lie inside
        // this operand's dims, read from the tensor's own shape and strides.
        unsafe {
            TensorView::from_bytes(self.tensor, rows.offset_bytes, &rows.shape, &rows.strides)
        }
    }

    /// `rows` as a flat view from their first value to their last, for a kernel store given
    /// its strides apart: tract-linalg bounds a partial tile's reads of an added operand by
    /// the view's number of values, as if it were dense.
    pub(super) fn span<'v>(&'v self, rows: &'v Rows, len: &'v [usize; 1]) -> TensorView<'v> {
        // SAFETY: as in `view`; `len` is `Rows::span_len`, the values up to the last one.
        unsafe { TensorView::from_bytes(self.tensor, rows.offset_bytes, len, &[1]) }
    }
}

impl Rows {
    /// Values from the first of these rows to the last (strides are non-negative here).
    pub(super) fn span_len(&self) -> [usize; 1] {
        let last = (self.shape[0].max(1) - 1) as isize * self.strides[0]
            + (self.shape[1].max(1) - 1) as isize * self.strides[1];
        [last as usize + 1]
    }
}

/// The bias of the scores as the kernels take it.
pub(super) enum Bias<'a> {
    /// Added by the kernel as it stores the scores.
    Added(Operand<'a>),
    /// gate × bias, added to each block of scores before the softmax (`add_gated_bias`).
    Gated(Plain<'a>, Plain<'a>),
}

/// An operand's values as a slice: value (h, i, j) at `origin + h·s0 + i·s1 + j·s2` for the
/// strides `s`, with its (head, token, feature) sizes.
pub(super) struct Plain<'a> {
    pub(super) values: &'a [f32],
    pub(super) dims: [usize; 3],
    pub(super) origin: isize,
    pub(super) strides: [isize; 3],
}

impl<'a> Operand<'a> {
    /// The operand's values as a slice (its tensor is plain memory, its strides positive).
    pub(super) fn plain(&self) -> TractResult<Plain<'a>> {
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
    pub(super) fn diagonals(&self, m: usize) -> TractResult<Plain<'a>> {
        let mut table = self.plain()?;
        let [h, _, along] = table.strides;
        let len = table.dims[2];
        table.dims = [table.dims[0], len + 1 - m, m];
        table.origin = (m as isize - 1) * along;
        table.strides = [h, along, -along];
        Ok(table)
    }
}

/// Adds bias(h, r0 + r, j) to the block's score of row r and key j, stored at
/// `p[j·lanes + r]`, for the block's `rows` rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the AVX-512 tiles' alone
pub(super) fn add_bias(
    p: &mut [f32],
    lanes: usize,
    bias: &Plain,
    h: usize,
    r0: usize,
    rows: usize,
) {
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
pub(super) fn add_gated_bias(
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

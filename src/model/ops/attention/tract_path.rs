//! The attention on tract-linalg's matrix kernels: the path of every CPU without AVX-512.

#![allow(unsafe_code)]

use tract_linalg::mmm::{
    AsInputValue, FusedSpec, MMMInputFormat, MMMInputValue, MatMatMul, PackedExoticFact,
};
use tract_linalg::pack::PackedFormat;
use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::operand::{add_gated_bias, Bias, Operand};
use super::softmax::softmax_lanes;

/// The scores' kernel runs both products, one block of query rows at a time — as many rows as
/// the kernel's tile height, its "lanes" — except where a narrower kernel of the same height
/// (`NARROWER`) pads P·V's d features less. Q·Kᵀ stores the block's scores straight in the
/// kernel's packed left-operand layout (key-major, the block's rows side by side), so the
/// softmax reads and writes whole vectors of lanes, and P·V takes the probabilities as they
/// are, without a packing pass. The operands are packed, and the output stored, straight
/// from and to the op's tensors, in their own layouts.
pub(super) struct Kernels {
    m: usize,
    /// The scores' kernel (Q·Kᵀ).
    pub(super) mmm: Box<dyn MatMatMul>,
    /// The kernels' left-operand packing: Q blocks, and the probabilities' layout.
    a_fmt: PackedFormat,
    /// The scores' right-operand packing (K).
    b_fmt: Box<dyn MMMInputFormat>,
    /// P·V's kernel: the scores' one, or a narrower one with the same left-operand packing.
    pub(super) pv: Box<dyn MatMatMul>,
    /// P·V's right-operand packing (V).
    pv_b_fmt: Box<dyn MMMInputFormat>,
}

/// A wide f32 kernel and a narrower one of the same height and packing, for P·V where the
/// head's d is a multiple of the narrower width but not of the wider: AST's and BEATs' d = 64
/// pads to 72 on a 12-column tile (11 % of P·V's work wasted), to 64 on an 8-column one.
const NARROWER: &[(&str, &str)] = &[("avx512_mmm_f32_32x12", "avx512_mmm_f32_32x8")];

impl Kernels {
    pub(super) fn new(n: usize, m: usize, d: usize) -> TractResult<Self> {
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
    pub(super) fn plain_left(mmm: &dyn MatMatMul) -> TractResult<PackedFormat> {
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
    pub(super) fn head(
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
pub(super) struct ProbabilityPanel {
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

//! soundsentry patch: products with a long k run as a few passes over k-slices of their packed
//! operands, each pass adding to the output the one before stored.
//!
//! A tile's A and B panels grow with k: at k = 3072 an f32 16 × 12 tile reads 344 KB per tile,
//! far past L1, and such products ran ~15 % below the kernel's speed at k = 768 on an Intel
//! Xeon with AVX-512 (i8 panels are a quarter of that and were not helped: they stay whole).
//! Here each pass is an ordinary product over k / passes: the first stores its partial sums, the
//! others start their tiles from the stored values (`AddUnicast` before the `AddMatMul`) and add
//! the next k-slice to them, and only the last pass applies the product's other fused ops. The
//! accumulator starts each pass at exactly the value the single pass had reached, and the kernels
//! add k in order, so the result is the same bits.

use super::*;
use crate::LADatum;
use crate::pack::{PackedFormat, PackedI8K4};
use std::fmt;

/// A tile's A and B panels (bytes over the whole k) above which a product is split: past L1 and
/// well into L2 (f32 tiles at k ≥ 1,463 for 16 × 12, k ≥ 931 for 32 × 12; i8 products stay
/// whole).
const SPLIT_ABOVE: usize = 160 << 10;
/// The most bytes of panels a tile reads in one pass (an f32 16 × 12 tile: k = 877).
const PASS_BYTES: usize = 96 << 10;
// A pass must fit under the split size, or a slice would be split again into itself.
const _: () = assert!(PASS_BYTES < SPLIT_ABOVE);

/// The k-slices `[start, end)` of a product with this spec list, or `None` when it is not
/// split: short panels, or a form this does not handle (see `splittable`).
pub(crate) fn k_slices<TI: LADatum>(
    m: usize,
    n: usize,
    specs: &[FusedSpec],
) -> Option<Vec<(usize, usize)>> {
    let (a, b) = splittable::<TI>(m, n, specs)?;
    let k = a.k();
    let bytes = k * (step_bytes(a.format()) + step_bytes(b.format()));
    if bytes <= SPLIT_ABOVE || b.k() != k || !split_pays(m * n * TI::datum_type().size_of()) {
        return None;
    }
    let passes = bytes.div_ceil(PASS_BYTES);
    // Slices start on a multiple of 8 values of k (whole 4-value groups of packed i8).
    let len = k.div_ceil(passes).next_multiple_of(8);
    Some((0..k).step_by(len).map(|s| (s, (s + len).min(k))).collect())
}

/// Whether k-slices pay on this CPU for an output of `c_bytes`. Measured on an Intel Xeon with
/// AVX-512, where they did (k = 3,072: 116–118 → 125–127 GFLOP/s, with a 3.7 MB output), and on
/// an AMD EPYC (Zen 5, 1 MB L2), where AST's MLP down-projection (3.7 MB) ran faster whole (the
/// kernel alone 188–192 GFLOP/s split against 218–231 whole; 30.4–38.0 → 25.7–26.1 ms a layer):
/// every pass re-reads and rewrites the output. On AMD the split is kept only where that output
/// stays in L2 (attention's P·V blocks, 32 × 64 values); there it was not measured either way.
fn split_pays(c_bytes: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::x86_64::vendor() != crate::x86_64::Vendor::Amd
            || c_bytes <= crate::cache::cache_info().l2
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = c_bytes;
        true
    }
}

/// Bytes of one k step of one panel of a format `splittable` accepts: r packed values.
fn step_bytes(format: &dyn MMMInputFormat) -> usize {
    match format.downcast_ref::<PackedFormat>() {
        Some(p) => p.r * p.dt.size_of(),
        None => format.r(),
    }
}

/// The product's A and B when `specs` is one `AddMatMul` of two eagerly packed operands in a
/// plain k-major layout, first, and one `Store` of accumulator-typed values, last, that no
/// `AddUnicast` reads from, and whose `item_count` covers every value of the m × n output:
/// a border tile's `AddUnicast` reads only offsets below it (zeros past it), so the later
/// passes would not see the partial sums of an output whose rows are spread wider than its
/// count of values (one head's rows among the others' in an attention output).
fn splittable<'s, TI: LADatum>(
    m: usize,
    n: usize,
    specs: &'s [FusedSpec],
) -> Option<(&'s dyn MMMInputValue, &'s dyn MMMInputValue)> {
    let (FusedSpec::AddMatMul { a, b, .. }, FusedSpec::Store(c)) = (specs.first()?, specs.last()?)
    else {
        return None;
    };
    let matmuls = specs.iter().filter(|s| matches!(s, FusedSpec::AddMatMul { .. })).count();
    let stores = specs.iter().filter(|s| matches!(s, FusedSpec::Store(_))).count();
    let reads_c = specs.iter().any(|s| matches!(s, FusedSpec::AddUnicast(u) if u.ptr == c.ptr));
    let plain = |v: &dyn MMMInputValue| {
        v.scratch_panel_buffer_layout().is_none()
            && (v.format().is::<PackedFormat>() || v.format().is::<PackedI8K4>())
    };
    let span = |len: usize, stride: isize| (len.max(1) - 1) as isize * stride;
    let covered = c.row_byte_stride >= 0
        && c.col_byte_stride >= 0
        && span(m, c.row_byte_stride) + span(n, c.col_byte_stride)
            < (c.item_count * c.item_size) as isize;
    let (a, b) = (&**a, &**b);
    (matmuls == 1
        && covered
        && stores == 1
        && !reads_c
        && c.item_size == TI::datum_type().size_of()
        && plain(a)
        && plain(b))
    .then_some((a, b))
}

/// The spec lists of the passes: `specs` with its operands cut to each k-slice; every pass but
/// the first starts from the stored output, every pass but the last stores only.
pub(crate) fn passes(
    specs: &[FusedSpec],
    slices: &[(usize, usize)],
) -> TractResult<Vec<(Vec<KSlice>, usize)>> {
    let FusedSpec::AddMatMul { a, b, packing } = &specs[0] else {
        bail!("k-slices of a spec list without a leading product")
    };
    slices
        .iter()
        .map(|&(s, e)| Ok((vec![KSlice::new(&**a, s, e)?, KSlice::new(&**b, s, e)?], *packing)))
        .collect()
}

/// One pass's spec list, over the k-slices `ab` (A then B) made by `passes`.
pub(crate) fn pass_specs<'t>(
    specs: &[FusedSpec<'t>],
    ab: &'t [KSlice],
    packing: usize,
    first: bool,
    last: bool,
) -> Vec<FusedSpec<'t>> {
    let Some(FusedSpec::Store(c)) = specs.last() else { unreachable!("checked by splittable") };
    let c = *c;
    let mut out = Vec::with_capacity(specs.len() + 1);
    if !first {
        out.push(FusedSpec::AddUnicast(c));
    }
    out.push(FusedSpec::AddMatMul {
        a: AsInputValue::Borrowed(&ab[0]),
        b: AsInputValue::Borrowed(&ab[1]),
        packing,
    });
    if last {
        out.extend(specs[1..].iter().cloned());
    } else {
        out.push(FusedSpec::Store(c));
    }
    out
}

/// Values `k_start..k_end` of every panel of an eagerly packed, k-major operand: the panels'
/// own memory, read from a later start for a shorter k.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct KSlice {
    panels: Vec<*const u8>,
    fact: PackedExoticFact,
}

// SAFETY: the panel pointers are only read, during the passes of one product, while the
// operand they point into is borrowed by the caller of `run_with_scratch_space`.
unsafe impl Send for KSlice {}
// SAFETY: as above.
unsafe impl Sync for KSlice {}

impl KSlice {
    fn new(v: &dyn MMMInputValue, k_start: usize, k_end: usize) -> TractResult<KSlice> {
        let format = v.format();
        ensure!(
            format.is::<PackedFormat>() || k_start % 4 == 0,
            "i8 panels are cut on whole groups of 4"
        );
        let step = step_bytes(format);
        let panels = (0..v.panels_count())
            .map(|i| Ok(v.panel_bytes(i, None)?.wrapping_add(k_start * step)))
            .collect::<TractResult<_>>()?;
        let fact = PackedExoticFact {
            format: dyn_clone::clone_box(format),
            mn: v.mn().to_dim(),
            k: k_end - k_start,
        };
        Ok(KSlice { panels, fact })
    }
}

impl fmt::Display for KSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (format, panels, k) = (&self.fact.format, self.panels.len(), self.fact.k);
        write!(f, "k-slice of {format} ({panels} panels, k = {k})")
    }
}

impl MMMInputValue for KSlice {
    fn format(&self) -> &dyn MMMInputFormat {
        &*self.fact.format
    }
    fn scratch_panel_buffer_layout(&self) -> Option<std::alloc::Layout> {
        None
    }
    fn panel_bytes(&self, i: usize, _buffer: Option<*mut u8>) -> TractResult<*const u8> {
        self.panels.get(i).copied().with_context(|| format!("no panel {i} in {self}"))
    }
    fn panels_count(&self) -> usize {
        self.panels.len()
    }
    fn mn(&self) -> usize {
        self.fact.mn.to_usize().unwrap_or(0)
    }
    fn k(&self) -> usize {
        self.fact.k
    }
    fn exotic_fact(&self) -> &dyn ExoticFact {
        &self.fact
    }
    fn extract_at_mn_f16(&self, _: usize, _: &mut [f16]) -> TractResult<()> {
        bail!("a k-slice is not extracted")
    }
    fn extract_at_mn_f32(&self, _: usize, _: &mut [f32]) -> TractResult<()> {
        bail!("a k-slice is not extracted")
    }
}

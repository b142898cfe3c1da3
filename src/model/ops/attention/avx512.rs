//! Attention's two products on AVX-512 register tiles: f32 with fused multiply-adds, or
//! bfloat16 with `vdpbf16ps` (AVX-512 BF16) for models whose other products are int8.
//!
//! Both work like `Kernels::head`'s path on tract's kernels: 48 query rows at a time, their
//! scores stored key-major (`p[j·48 + r]`) so the softmax runs on whole vectors of rows, the
//! normalisation applied as P·V's results are stored. Q·Kᵀ runs on tiles of 48 rows (three
//! vectors) × 8 keys, P·V on tiles of 64 features (four vectors) × 6 rows: 24 sums in
//! registers each, P·V's stored straight into the output rows. The operands are packed from
//! the op's tensors with the rows a few ahead prefetched: Q and K rows lie a whole token row
//! (all heads) apart, and waiting for them cost as much as the products.
//!
//! In bfloat16, Q, K, V and the softmax's exp values are rounded (to nearest, ties to even)
//! in pairs along the products' k axis, the layout `vdpbf16ps` multiplies: each 32-bit lane
//! holds two consecutive k values, and one instruction adds both products to an f32 sum —
//! twice the f32 multiply-adds per instruction. Scores, bias, softmax and normalisation stay
//! f32 in both.

// Raw pointers into buffers this module sizes itself (the packed operands, the block's
// scores) and into the op's output tensor, at offsets `attend` has checked against the
// operands' shapes; the intrinsics run only after `available` has found the CPU features.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::operand::{add_bias, add_gated_bias, Bias, Operand, Plain};
use super::softmax::{bf16, softmax_lanes};

/// Query rows per block: three vectors of f32.
const LANES: usize = 48;
/// Keys per Q·Kᵀ tile.
const KEYS: usize = 8;
/// Query rows per P·V tile.
const ROWS: usize = 6;
/// How many rows ahead the packing prefetches.
const AHEAD: usize = 6;

/// Whether this CPU has the instructions of the f32 (`bf16` false) or bfloat16 path.
pub fn available(bf16: bool) -> bool {
    match bf16 {
        false => crate::model::kernels::avx512f(),
        true => crate::model::kernels::avx512_bf16(),
    }
}

/// Two values as one pair lane: `lo` in the low half (the even k), `hi` in the high half.
fn pair(lo: f32, hi: f32) -> u32 {
    bf16(lo) | (bf16(hi) << 16)
}

impl Plain<'_> {
    /// Where value (h, t, f) is; head 0 if the operand has one for all.
    fn index(&self, h: usize, t: usize, f: usize) -> usize {
        let h = if self.dims[0] == 1 { 0 } else { h };
        let [s0, s1, s2] = self.strides;
        (self.origin + h as isize * s0 + t as isize * s1 + f as isize * s2) as usize
    }

    /// Value (h, t, f).
    fn at(&self, h: usize, t: usize, f: usize) -> f32 {
        self.values[self.index(h, t, f)]
    }
}

/// One head's operands, as `head` passes them to the kernels.
struct Head<'a> {
    h: usize,
    q: Plain<'a>,
    k: Plain<'a>,
    v: Plain<'a>,
    bias: Option<&'a Bias<'a>>,
    added: Option<Plain<'a>>,
    scale: f32,
    out: Plain<'a>,
    out_ptr: *mut f32,
}

/// One head: softmax(Q·Kᵀ·scale + bias)·V, Q and `out` (n, d), K and V (m, d), with f32 or
/// (`bf16`) bfloat16 products; `available(bf16)` must be true.
#[allow(clippy::too_many_arguments)]
pub fn head(
    h: usize,
    q: &Operand,
    k: &Operand,
    v: &Operand,
    bias: Option<&Bias>,
    scale: f32,
    out: &Operand,
    bf16: bool,
) -> TractResult<()> {
    ensure!(
        available(bf16),
        "AVX-512 attention on a CPU without its instructions"
    );
    let added = match bias {
        Some(Bias::Added(b)) => Some(b.plain()?),
        _ => None,
    };
    let head = Head {
        h,
        q: q.plain()?,
        k: k.plain()?,
        v: v.plain()?,
        bias,
        added,
        scale,
        out: out.plain()?,
        out_ptr: out.tensor.as_ptr::<f32>()? as *mut f32,
    };
    // SAFETY: the CPU has the path's instructions (checked above); `head`'s operands are
    // the op's, their shapes checked by `attend`, and this head's output rows are written by
    // this call alone.
    unsafe {
        if bf16 {
            head_bf16(&head)
        } else {
            head_f32(&head)
        }
    }
}

/// `run` with the f32 path's instructions.
///
/// # Safety
/// The CPU has AVX-512F (`available(false)`); `head`'s operands are the op's, checked by
/// `attend`, and its output rows are written by this call alone.
#[target_feature(enable = "avx512f")]
unsafe fn head_f32(head: &Head) -> TractResult<()> {
    run::<false>(head)
}

/// `run` with the bfloat16 path's instructions.
///
/// # Safety
/// The CPU has AVX-512F, BW and BF16 (`available(true)`); otherwise as `head_f32`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn head_bf16(head: &Head) -> TractResult<()> {
    run::<true>(head)
}

/// `head`'s work, compiled into each of the two callers above with their instructions: the
/// k axis of both products in words of one f32 or (BF16) a pair of bfloat16 values.
///
/// # Safety
/// Called only from `head_f32`/`head_bf16`, whose instructions it is inlined with; the
/// operands' shapes were checked by `attend` and every pointer it derives stays inside them.
#[inline(always)]
unsafe fn run<const BF16: bool>(x: &Head) -> TractResult<()> {
    let h = x.h;
    let [_, n, d] = x.q.dims;
    let m = x.k.dims[1];
    let per = |len: usize| if BF16 { len.div_ceil(2) } else { len };
    // Words per row of Q and K along features, and rows of V (keys, or pairs of keys).
    let (dw, kv) = (per(d), per(m));
    let dv = d.div_ceil(16);
    // K as tiles of KEYS keys: [tile][feature word][key].
    let tiles = m.div_ceil(KEYS);
    let mut kp = vec![0u32; tiles * dw * KEYS];
    let mut row = vec![0u32; dw];
    for j in 0..m {
        let (t, c) = (j / KEYS, j % KEYS);
        row_words::<BF16>(&x.k, h, j, d, &mut row);
        for (w, word) in row.iter().enumerate() {
            kp[(t * dw + w) * KEYS + c] = *word;
        }
    }
    // V as [key word][feature], d padded to whole vectors.
    let width = dv * 16;
    let mut vp = vec![0u32; kv * width];
    for (jw, lanes) in vp.chunks_exact_mut(width).enumerate() {
        if BF16 {
            key_pairs(&x.v, h, 2 * jw, m, d, lanes);
        } else {
            row_words::<false>(&x.v, h, jw, d, &mut lanes[..d]);
        }
    }
    let mut qp = vec![0u32; dw * LANES];
    let mut p = vec![0f32; m * LANES];
    let mut pp = vec![0u32; if BF16 { kv * LANES } else { 0 }];
    let mut inv_sum = [0f32; LANES];
    let mut gates = [0f32; LANES];
    let [_, s1, sf] = x.out.strides;
    let base = x.out.index(h, 0, 0) as isize;
    for r0 in (0..n).step_by(LANES) {
        let rows = LANES.min(n - r0);
        // The block's rows as [feature word][row]; rows past n stay zero.
        for r in 0..LANES {
            if r < rows {
                row_words::<BF16>(&x.q, h, r0 + r, d, &mut row);
            } else {
                row.fill(0);
            }
            for (w, word) in row.iter().enumerate() {
                qp[w * LANES + r] = *word;
            }
        }
        scores::<BF16>(&qp, &kp, dw, m, x.scale, &mut p);
        match (x.bias, &x.added) {
            (Some(Bias::Gated(b, g)), _) => add_gated_bias(&mut p, &mut gates, b, g, h, r0, rows),
            (_, Some(b)) => add_bias(&mut p, LANES, b, h, r0, rows),
            _ => {}
        }
        softmax_lanes(&mut p, LANES, &mut inv_sum)?;
        let probs: &[u32] = if BF16 {
            to_pairs(&p, m, &mut pp);
            &pp
        } else {
            std::slice::from_raw_parts(p.as_ptr() as *const u32, p.len())
        };
        let store = Store {
            ptr: x.out_ptr,
            base: base + r0 as isize * s1,
            row_stride: s1,
            feature_stride: sf,
            rows,
            d,
        };
        weighted::<BF16>(probs, &vp, kv, dv, &inv_sum, &store);
    }
    Ok(())
}

/// Row t of head h of `x` (d features) as words: the values' bits, or (BF16) ⌈d/2⌉ pairs of
/// consecutive features; the rows AHEAD further on are prefetched.
///
/// # Safety
/// The caller's instructions are `run`'s; t < the operand's tokens and d ≤ its features, and
/// `out` holds d words (⌈d/2⌉ pairs in BF16).
#[inline(always)]
unsafe fn row_words<const BF16: bool>(x: &Plain, h: usize, t: usize, d: usize, out: &mut [u32]) {
    debug_assert!(out.len() == if BF16 { d.div_ceil(2) } else { d });
    if x.strides[2] != 1 {
        for (w, o) in out.iter_mut().enumerate() {
            *o = if BF16 {
                let hi = if 2 * w + 1 < d {
                    x.at(h, t, 2 * w + 1)
                } else {
                    0.0
                };
                pair(x.at(h, t, 2 * w), hi)
            } else {
                x.at(h, t, w).to_bits()
            };
        }
        return;
    }
    let first = x.index(h, t, 0);
    let values = &x.values[first..first + d];
    // Rows are read one after another, each in its own cache lines: ask for a later one now.
    if t + AHEAD < x.dims[1] {
        prefetch(x, x.index(h, t + AHEAD, 0), d);
    }
    if !BF16 {
        for (o, v) in out.iter_mut().zip(values) {
            *o = v.to_bits();
        }
        return;
    }
    for (chunk, o) in values.chunks(16).zip(out.chunks_mut(8)) {
        let mask: __mmask16 = if chunk.len() == 16 {
            !0
        } else {
            (1 << chunk.len()) - 1
        };
        let f = _mm512_maskz_loadu_ps(mask, chunk.as_ptr());
        // 16 bf16 words, in order: 8 pairs of consecutive features (a zero past d).
        let words: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(f));
        let mut lanes = [0u32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut _, words);
        o.copy_from_slice(&lanes[..o.len()]);
    }
}

/// Asks for the cache lines of `len` values of `x` from `at` (all inside `x.values`).
///
/// # Safety
/// `at..at + len` lies inside `x.values` (prefetching reads nothing, but the address is
/// formed from the slice).
#[inline(always)]
unsafe fn prefetch(x: &Plain, at: usize, len: usize) {
    for i in (0..len).step_by(16) {
        if let Some(v) = x.values.get(at + i) {
            _mm_prefetch::<_MM_HINT_T0>(v as *const f32 as *const i8);
        }
    }
}

/// Keys j and j + 1 of head h of `x` (m keys, d features) as bfloat16 pairs of keys, one
/// per feature, into `out` (at least d lanes); key j + 1 is zero when j + 1 = m.
///
/// # Safety
/// The caller's instructions are `head_bf16`'s; j < m, d ≤ the operand's features, and `out`
/// holds at least d lanes.
#[inline(always)]
unsafe fn key_pairs(x: &Plain, h: usize, j: usize, m: usize, d: usize, out: &mut [u32]) {
    debug_assert!(out.len() >= d);
    let second = j + 1 < m;
    if x.strides[2] != 1 {
        for (f, o) in out[..d].iter_mut().enumerate() {
            let hi = if second { x.at(h, j + 1, f) } else { 0.0 };
            *o = pair(x.at(h, j, f), hi);
        }
        return;
    }
    if j + 2 + AHEAD < m {
        prefetch(x, x.index(h, j + AHEAD, 0), d);
        prefetch(x, x.index(h, j + 1 + AHEAD, 0), d);
    }
    let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _);
    let lo_at = x.index(h, j, 0);
    let hi_at = if second { x.index(h, j + 1, 0) } else { lo_at };
    for f in (0..d).step_by(16) {
        let mask: __mmask16 = if d - f >= 16 { !0 } else { (1 << (d - f)) - 1 };
        let lo = _mm512_maskz_loadu_ps(mask, x.values[lo_at + f..].as_ptr());
        let hi = if second {
            _mm512_maskz_loadu_ps(mask, x.values[hi_at + f..].as_ptr())
        } else {
            _mm512_setzero_ps()
        };
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_mask_storeu_epi32(
            out.as_mut_ptr().add(f) as *mut _,
            mask,
            _mm512_permutexvar_epi16(idx, both),
        );
    }
}

/// Where P·V's results go: value (r, f) of the block at `ptr + base + r·row_stride +
/// f·feature_stride`, for r < rows and f < d.
struct Store {
    ptr: *mut f32,
    base: isize,
    row_stride: isize,
    feature_stride: isize,
    rows: usize,
    d: usize,
}

/// V × B sums: for each of the k steps, sum (v, c) adds lane by lane the products of `a`'s
/// vector v (at `a + step·a_step + 16v`) with the word `b[step·b_step + c]` broadcast — f32
/// values, or (BF16) pairs of bfloat16 values whose two products both go into the sum.
///
/// # Safety
/// AVX-512F (and with BF16, AVX-512 BF16) present; `a` and `b` point at `steps` steps of
/// `a_step` and `b_step` words inside buffers `run` sized for them.
#[inline(always)]
unsafe fn tile<const V: usize, const B: usize, const BF16: bool>(
    a: *const u32,
    a_step: usize,
    b: *const u32,
    b_step: usize,
    k: usize,
) -> [[__m512; B]; V] {
    let mut acc = [[_mm512_setzero_ps(); B]; V];
    for step in 0..k {
        let a_k = a.add(step * a_step);
        let mut av = [_mm512_setzero_si512(); V];
        for (i, x) in av.iter_mut().enumerate() {
            *x = _mm512_loadu_si512(a_k.add(16 * i) as *const _);
        }
        let b_k = b.add(step * b_step);
        // Column by column, each broadcast used by the V rows of sums (a register tile).
        #[allow(clippy::needless_range_loop)]
        for c in 0..B {
            let bc = _mm512_set1_epi32(*b_k.add(c) as i32);
            for i in 0..V {
                acc[i][c] = if BF16 {
                    _mm512_dpbf16_ps(
                        acc[i][c],
                        std::mem::transmute::<__m512i, __m512bh>(av[i]),
                        std::mem::transmute::<__m512i, __m512bh>(bc),
                    )
                } else {
                    _mm512_fmadd_ps(
                        _mm512_castsi512_ps(av[i]),
                        _mm512_castsi512_ps(bc),
                        acc[i][c],
                    )
                };
            }
        }
    }
    acc
}

/// The block's scores Q·Kᵀ·scale into `p` (key-major, LANES rows per key), for m keys, from
/// `qp` ([word][row]) and `kp` ([tile][word][key]), dw words per row.
///
/// # Safety
/// As `tile`: `qp`, `kp` and `p` are `run`'s buffers, sized for LANES rows, m keys and dw
/// words.
#[inline(always)]
unsafe fn scores<const BF16: bool>(
    qp: &[u32],
    kp: &[u32],
    dw: usize,
    m: usize,
    scale: f32,
    p: &mut [f32],
) {
    debug_assert!(qp.len() >= dw * LANES && kp.len() >= m.div_ceil(KEYS) * dw * KEYS);
    debug_assert!(p.len() >= m * LANES);
    let s = _mm512_set1_ps(scale);
    for t in 0..m.div_ceil(KEYS) {
        let at = kp.as_ptr().add(t * dw * KEYS);
        let acc = tile::<3, KEYS, BF16>(qp.as_ptr(), LANES, at, KEYS, dw);
        for c in 0..KEYS.min(m - t * KEYS) {
            let at = p.as_mut_ptr().add((t * KEYS + c) * LANES);
            for (i, sums) in acc.iter().enumerate() {
                _mm512_storeu_ps(at.add(16 * i), _mm512_mul_ps(sums[c], s));
            }
        }
    }
}

/// Word order that interleaves a vector's two halves: word 2i ← i, 2i + 1 ← 16 + i.
const INTERLEAVE: [u16; 32] = {
    let mut idx = [0u16; 32];
    let mut i = 0;
    while i < 16 {
        idx[2 * i] = i as u16;
        idx[2 * i + 1] = 16 + i as u16;
        i += 1;
    }
    idx
};

/// The block's probabilities (key-major f32, m keys) as bf16 pairs of consecutive keys,
/// [key pair][row]; an odd m's last pair has a zero high half.
///
/// # Safety
/// AVX-512F and BW present; `p` holds m·LANES values and `pp` ⌈m/2⌉·LANES words.
#[inline(always)]
unsafe fn to_pairs(p: &[f32], m: usize, pp: &mut [u32]) {
    debug_assert!(p.len() >= m * LANES && pp.len() >= m.div_ceil(2) * LANES);
    let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _);
    for jj in 0..m.div_ceil(2) {
        for i in 0..LANES / 16 {
            let lo = _mm512_loadu_ps(p.as_ptr().add(2 * jj * LANES + 16 * i));
            let hi = if 2 * jj + 1 < m {
                _mm512_loadu_ps(p.as_ptr().add((2 * jj + 1) * LANES + 16 * i))
            } else {
                _mm512_setzero_ps()
            };
            // Words 0..16 from `lo`, 16..32 from `hi`; then interleaved into pairs.
            let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            let lanes = _mm512_permutexvar_epi16(idx, both);
            _mm512_storeu_si512(pp.as_mut_ptr().add(jj * LANES + 16 * i) as *mut _, lanes);
        }
    }
}

/// P·V for the block: out(r, f) = inv_sum[r] · Σⱼ P(r, j)·V(j, f), from `probs` ([key
/// word][row]) and `vp` ([key word][feature], dv vectors of features), for kv key words.
///
/// # Safety
/// As `tile`; `store` describes rows and features inside the op's output tensor, each
/// written by this head alone.
#[inline(always)]
unsafe fn weighted<const BF16: bool>(
    probs: &[u32],
    vp: &[u32],
    kv: usize,
    dv: usize,
    inv_sum: &[f32; LANES],
    store: &Store,
) {
    debug_assert!(probs.len() >= kv * LANES && vp.len() >= kv * dv * 16);
    let width = dv * 16;
    let mut f0 = 0;
    while f0 < dv {
        let vecs = (dv - f0).min(4);
        for r0 in (0..store.rows).step_by(ROWS) {
            let (a, b) = (vp.as_ptr().add(f0 * 16), probs.as_ptr().add(r0));
            match vecs {
                4 => put(
                    &tile::<4, ROWS, BF16>(a, width, b, LANES, kv),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                3 => put(
                    &tile::<3, ROWS, BF16>(a, width, b, LANES, kv),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                2 => put(
                    &tile::<2, ROWS, BF16>(a, width, b, LANES, kv),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                _ => put(
                    &tile::<1, ROWS, BF16>(a, width, b, LANES, kv),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
            }
        }
        f0 += vecs;
    }
}

/// Stores a P·V tile: sums (i, c) are features (f0 + i)·16.. of block row r0 + c, scaled by
/// the row's inverse sum; rows past `store.rows` and features past d are dropped.
///
/// # Safety
/// AVX-512F present; the stored rows r0..r0 + store.rows and features below d lie inside the
/// output tensor (`store`), written by this head alone.
#[inline(always)]
unsafe fn put<const V: usize>(
    acc: &[[__m512; ROWS]; V],
    f0: usize,
    r0: usize,
    inv_sum: &[f32; LANES],
    store: &Store,
) {
    for c in 0..ROWS.min(store.rows - r0) {
        let r = r0 + c;
        let scale = _mm512_set1_ps(inv_sum[r]);
        let row = store.ptr.offset(store.base + r as isize * store.row_stride);
        for (i, sums) in acc.iter().enumerate() {
            let f = (f0 + i) * 16;
            let valid = store.d.saturating_sub(f).min(16);
            let x = _mm512_mul_ps(sums[c], scale);
            if store.feature_stride == 1 {
                let mask: __mmask16 = if valid == 16 { !0 } else { (1 << valid) - 1 };
                _mm512_mask_storeu_ps(row.add(f), mask, x);
            } else {
                let mut vals = [0f32; 16];
                _mm512_storeu_ps(vals.as_mut_ptr(), x);
                for (e, val) in vals.iter().enumerate().take(valid) {
                    *row.offset((f + e) as isize * store.feature_stride) = *val;
                }
            }
        }
    }
}

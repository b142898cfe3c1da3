//! Attention's two products in bfloat16 on AVX-512 BF16, for models whose other products are
//! already int8: twice the f32 kernels' multiply-adds per instruction, f32 sums and softmax.
//!
//! Q, K, V and the softmax's probabilities are rounded to bfloat16 (8 significant bits, round
//! to nearest even) in pairs along the products' k axis, the layout `vdpbf16ps` multiplies:
//! each 32-bit lane holds two consecutive k values, and one instruction adds both products to
//! an f32 sum. The scores, the bias, the softmax and its normalisation stay in f32, as in
//! `attend`'s f32 path; so does the block structure: 48 query rows at a time, their scores
//! stored key-major (`p[j·48 + r]`) so the softmax runs on whole vectors of rows.
//!
//! Q·Kᵀ runs on tiles of 48 rows (three vectors) × 8 keys, P·V on tiles of 64 features (four
//! vectors) × 6 rows: both keep 24 sums in registers, and P·V's sums are stored straight into
//! the output rows, normalised as they go.

// Raw pointers into buffers this module sizes itself (the packed operands, the block's
// scores) and into the op's output tensor, at offsets `attend` has checked against the
// operands' shapes; the intrinsics run only after `available` has found the CPU features.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::{add_bias, add_gated_bias, softmax_lanes, Bias, Operand, Plain};

/// Query rows per block: three vectors of f32.
const LANES: usize = 48;
/// Keys per Q·Kᵀ tile.
const KEYS: usize = 8;
/// Query rows per P·V tile.
const ROWS: usize = 6;

/// Whether this CPU has the instructions this module runs on.
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512bf16")
}

/// `x` rounded to bfloat16 (to nearest, ties to even), as its 16 bits.
fn bf16(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40;
    }
    (b + 0x7fff + ((b >> 16) & 1)) >> 16
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

/// One head: softmax(Q·Kᵀ·scale + bias)·V, Q and `out` (n, d), K and V (m, d), in bf16
/// products (see the module's comment). `available` must be true.
pub fn head(
    h: usize,
    q: &Operand,
    k: &Operand,
    v: &Operand,
    bias: Option<&Bias>,
    scale: f32,
    out: &Operand,
) -> TractResult<()> {
    ensure!(available(), "bf16 attention on a CPU without AVX-512 BF16");
    let [_, n, d] = q.dims;
    let m = k.dims[1];
    let (q, k, v) = (q.plain()?, k.plain()?, v.plain()?);
    let added = match bias {
        Some(Bias::Added(b)) => Some(b.plain()?),
        _ => None,
    };
    let dp = d.div_ceil(2);
    let dv = d.div_ceil(16);
    // K as tiles of KEYS keys: [tile][feature pair][key].
    let tiles = m.div_ceil(KEYS);
    let mut kp = vec![0u32; tiles * dp * KEYS];
    let mut row = vec![0u32; dp];
    for j in 0..m {
        let (t, c) = (j / KEYS, j % KEYS);
        // SAFETY: `available` holds; `row` has dp lanes.
        unsafe { row_pairs(&k, h, j, d, &mut row) };
        for (p, x) in row.iter().enumerate() {
            kp[(t * dp + p) * KEYS + c] = *x;
        }
    }
    // V as [key pair][feature], d padded to whole vectors.
    let pairs = m.div_ceil(2);
    let width = dv * 16;
    let mut vp = vec![0u32; pairs * width];
    for (jj, lanes) in vp.chunks_exact_mut(width).enumerate() {
        // SAFETY: `available` holds; `lanes` has dv·16 ≥ d lanes.
        unsafe { key_pairs(&v, h, 2 * jj, m, d, lanes) };
    }
    let out_plain = out.plain()?;
    let out_ptr = out.tensor.as_ptr::<f32>()? as *mut f32;
    let mut qp = vec![0u32; dp * LANES];
    let mut p = vec![0f32; m * LANES];
    let mut pp = vec![0u32; pairs * LANES];
    let mut inv_sum = [0f32; LANES];
    let mut gates = [0f32; LANES];
    for r0 in (0..n).step_by(LANES) {
        let rows = LANES.min(n - r0);
        // The block's rows as [feature pair][row]; rows past n stay zero.
        for r in 0..LANES {
            if r < rows {
                // SAFETY: `available` holds; `row` has dp lanes.
                unsafe { row_pairs(&q, h, r0 + r, d, &mut row) };
            } else {
                row.fill(0);
            }
            for (p, x) in row.iter().enumerate() {
                qp[p * LANES + r] = *x;
            }
        }
        // SAFETY: `available` holds; `qp` has dp·LANES lanes, `kp` dp·KEYS per tile, `p`
        // m·LANES values.
        unsafe { scores(&qp, &kp, dp, m, scale, &mut p) };
        match bias {
            Some(Bias::Gated(b, g)) => add_gated_bias(&mut p, &mut gates, b, g, h, r0, rows),
            Some(Bias::Added(_)) => {
                if let Some(b) = &added {
                    add_bias(&mut p, LANES, b, h, r0, rows)
                }
            }
            None => {}
        }
        softmax_lanes(&mut p, LANES, &mut inv_sum)?;
        // SAFETY: `available` holds; `pp` has ⌈m/2⌉·LANES lanes for `p`'s m·LANES values.
        unsafe { to_pairs(&p, m, &mut pp) };
        // Where output row r0 + r, feature f lands: out_ptr + row(r) + f·sf.
        let [_, s1, sf] = out_plain.strides;
        let base = out_plain.origin
            + if out_plain.dims[0] == 1 {
                0
            } else {
                h as isize * out_plain.strides[0]
            };
        let store = Store {
            ptr: out_ptr,
            base: base + r0 as isize * s1,
            row_stride: s1,
            feature_stride: sf,
            rows,
            d,
        };
        // SAFETY: `available` holds; `vp` has ⌈m/2⌉ pair rows of dv·16 lanes and `pp` as
        // above; `store` covers rows r0..r0 + rows of head h, inside the output tensor (its
        // shape checked by `attend`), which no other head or block writes.
        unsafe { weighted(&pp, &vp, pairs, dv, &inv_sum, &store) };
    }
    Ok(())
}

/// Row t of head h of `x` (d features) as dp = ⌈d/2⌉ pairs of consecutive features.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn row_pairs(x: &Plain, h: usize, t: usize, d: usize, out: &mut [u32]) {
    debug_assert!(out.len() == d.div_ceil(2));
    if x.strides[2] != 1 {
        for (p, o) in out.iter_mut().enumerate() {
            let hi = if 2 * p + 1 < d {
                x.at(h, t, 2 * p + 1)
            } else {
                0.0
            };
            *o = pair(x.at(h, t, 2 * p), hi);
        }
        return;
    }
    let first = x.index(h, t, 0);
    let values = &x.values[first..first + d];
    // Rows are read one after another, each in its own cache lines: ask for a later one now.
    if t + AHEAD < x.dims[1] {
        prefetch(x, x.index(h, t + AHEAD, 0), d);
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

/// How many rows ahead `row_pairs` and `key_pairs` prefetch.
const AHEAD: usize = 6;

/// Asks for the cache lines of `len` values of `x` from `at` (all inside `x.values`).
#[inline]
#[target_feature(enable = "avx512f")]
fn prefetch(x: &Plain, at: usize, len: usize) {
    for i in (0..len).step_by(16) {
        if let Some(v) = x.values.get(at + i) {
            _mm_prefetch::<_MM_HINT_T0>(v as *const f32 as *const i8);
        }
    }
}

/// Keys j and j + 1 of head h of `x` (m keys, d features) as pairs of keys, one per feature,
/// into `out` (at least d lanes); key j + 1 is zero when j + 1 = m.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
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

/// V × B sums of pair products: sum (v, c) adds, for each of the k steps, lane by lane, the
/// pair products of `a`'s vector v (at `a + step·a_step + 16v`) with the pair `b[step·b_step
/// + c]` broadcast.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn tile<const V: usize, const B: usize>(
    a: *const u32,
    a_step: usize,
    b: *const u32,
    b_step: usize,
    k: usize,
) -> [[__m512; B]; V] {
    let mut acc = [[_mm512_setzero_ps(); B]; V];
    let zero = std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512());
    for step in 0..k {
        let a_k = a.add(step * a_step);
        let mut av = [zero; V];
        for (i, x) in av.iter_mut().enumerate() {
            *x = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                a_k.add(16 * i) as *const _
            ));
        }
        let b_k = b.add(step * b_step);
        // Column by column, each broadcast used by the V rows of sums (a register tile).
        #[allow(clippy::needless_range_loop)]
        for c in 0..B {
            let bc =
                std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*b_k.add(c) as i32));
            for i in 0..V {
                acc[i][c] = _mm512_dpbf16_ps(acc[i][c], av[i], bc);
            }
        }
    }
    acc
}

/// The block's scores Q·Kᵀ·scale into `p` (key-major, LANES rows per key), for m keys.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn scores(qp: &[u32], kp: &[u32], dp: usize, m: usize, scale: f32, p: &mut [f32]) {
    debug_assert!(qp.len() >= dp * LANES && kp.len() >= m.div_ceil(KEYS) * dp * KEYS);
    debug_assert!(p.len() >= m * LANES);
    let s = _mm512_set1_ps(scale);
    for t in 0..m.div_ceil(KEYS) {
        let acc = tile::<3, KEYS>(qp.as_ptr(), LANES, kp.as_ptr().add(t * dp * KEYS), KEYS, dp);
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
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
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

/// P·V for the block: out(r, f) = inv_sum[r] · Σⱼ P(r, j)·V(j, f), from `pp` ([key pair]
/// [row]) and `vp` ([key pair][feature], dv vectors of features), for `pairs` key pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn weighted(
    pp: &[u32],
    vp: &[u32],
    pairs: usize,
    dv: usize,
    inv_sum: &[f32; LANES],
    store: &Store,
) {
    debug_assert!(pp.len() >= pairs * LANES && vp.len() >= pairs * dv * 16);
    let width = dv * 16;
    let mut f0 = 0;
    while f0 < dv {
        let vecs = (dv - f0).min(4);
        for r0 in (0..store.rows).step_by(ROWS) {
            let (a, b) = (vp.as_ptr().add(f0 * 16), pp.as_ptr().add(r0));
            match vecs {
                4 => put(
                    &tile::<4, ROWS>(a, width, b, LANES, pairs),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                3 => put(
                    &tile::<3, ROWS>(a, width, b, LANES, pairs),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                2 => put(
                    &tile::<2, ROWS>(a, width, b, LANES, pairs),
                    f0,
                    r0,
                    inv_sum,
                    store,
                ),
                _ => put(
                    &tile::<1, ROWS>(a, width, b, LANES, pairs),
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
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
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

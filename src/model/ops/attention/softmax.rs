//! The softmax of a block of scores, its exp, and bfloat16 rounding: the numerics both
//! kernel paths share.

#![allow(unsafe_code)]

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `x` rounded to bfloat16 (to nearest, ties to even, as `vcvtneps2bf16`), as its 16 bits;
/// a NaN stays a NaN.
#[cfg(any(target_arch = "x86_64", test))]
pub(super) fn bf16(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40;
    }
    (b + 0x7fff + ((b >> 16) & 1)) >> 16
}

/// Row softmax of a key-major block (`p[j·lanes + r]` is row r's score for key j), in place;
/// `inv_sum[r]` gets 1 / Σⱼ exp(p − max) of row r.
pub(super) fn softmax_lanes(p: &mut [f32], lanes: usize, inv_sum: &mut [f32]) -> TractResult<()> {
    ensure!(p.len().is_multiple_of(lanes) && inv_sum.len() == lanes);
    match lanes {
        4 => softmax_dispatch::<4>(p, inv_sum),
        8 => softmax_dispatch::<8>(p, inv_sum),
        16 => softmax_dispatch::<16>(p, inv_sum),
        32 => softmax_dispatch::<32>(p, inv_sum),
        48 => softmax_dispatch::<48>(p, inv_sum),
        64 => softmax_dispatch::<64>(p, inv_sum),
        _ => softmax_any(p, lanes, inv_sum),
    }
    Ok(())
}

/// `softmax_block` compiled for the widest vector unit this CPU has.
pub(super) fn softmax_dispatch<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::model::kernels::avx512f() {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { softmax_avx512::<L>(p, inv_sum) };
        }
        if crate::model::kernels::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { softmax_avx2::<L>(p, inv_sum) };
        }
    }
    // Every aarch64 CPU has fused multiply-add; elsewhere `mul_add` would be a library call.
    softmax_block::<L, { cfg!(target_arch = "aarch64") }>(p, inv_sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) fn softmax_avx512<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    softmax_block::<L, true>(p, inv_sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn softmax_avx2<const L: usize>(p: &mut [f32], inv_sum: &mut [f32]) {
    softmax_block::<L, true>(p, inv_sum)
}

/// The softmax of `softmax_lanes`, each loop over the L rows one vector operation; FMA: with
/// fused multiply-adds.
#[inline(always)]
pub(super) fn softmax_block<const L: usize, const FMA: bool>(p: &mut [f32], inv_sum: &mut [f32]) {
    let (keys, _) = p.as_chunks_mut::<L>();
    let mut max = [f32::NEG_INFINITY; L];
    for key in keys.iter() {
        for l in 0..L {
            max[l] = if key[l] > max[l] { key[l] } else { max[l] };
        }
    }
    let mut sum = [0f32; L];
    for key in keys.iter_mut() {
        for l in 0..L {
            let e = exp_nonpositive::<FMA>(key[l] - max[l]);
            key[l] = e;
            sum[l] += e;
        }
    }
    for (inv, s) in inv_sum.iter_mut().zip(sum) {
        *inv = s.recip();
    }
}

/// `softmax_block` for a block height without its own instance (scalar loops).
pub(super) fn softmax_any(p: &mut [f32], lanes: usize, inv_sum: &mut [f32]) {
    let mut max = vec![f32::NEG_INFINITY; lanes];
    for key in p.chunks_exact(lanes) {
        for (m, x) in max.iter_mut().zip(key) {
            *m = m.max(*x);
        }
    }
    inv_sum.fill(0.0);
    for key in p.chunks_exact_mut(lanes) {
        for ((x, m), s) in key.iter_mut().zip(&max).zip(inv_sum.iter_mut()) {
            *x = exp_nonpositive::<false>(*x - m);
            *s += *x;
        }
    }
    for s in inv_sum.iter_mut() {
        *s = s.recip();
    }
}

/// eˣ for x ≤ 0 (Cephes' expf: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial for eʳ,
/// 2ⁿ from the exponent bits; within 2 ulp), written so that it vectorises: no calls, no
/// branches. Below −87 (where eˣ < 2⁻¹²⁵) it returns e⁻⁸⁷. FMA: a·b + c as one fused
/// operation, for targets that have it.
#[inline(always)]
pub(super) fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = if x < -87.0 { -87.0 } else { x };
    let t = fma(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = fma(n, 2.121_944_4e-4, fma(n, -0.693_359_4, x));
    let mut y = 1.987_569_1e-4;
    y = fma(y, r, 1.398_199_9e-3);
    y = fma(y, r, 8.333_452e-3);
    y = fma(y, r, 4.166_579_6e-2);
    y = fma(y, r, 1.666_666_5e-1);
    y = fma(y, r, 0.5);
    let y = fma(y, r * r, r + 1.0);
    let n = t.to_bits().wrapping_sub(ROUND.to_bits());
    y * f32::from_bits(n.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::attention::tests::pseudo;

    #[test]
    pub(super) fn exp_is_within_two_ulp_where_it_matters() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            for got in [exp_nonpositive::<false>(x), exp_nonpositive::<true>(x)] {
                worst = worst.max(((got as f64 - want) / want).abs());
            }
        }
        assert!(worst < 2.0 * f32::EPSILON as f64, "relative error {worst}");
        assert_eq!(exp_nonpositive::<false>(0.0), 1.0);
        assert!(exp_nonpositive::<false>(-1000.0) > 0.0);
        assert!(exp_nonpositive::<false>(f32::NAN).is_nan());
    }

    #[test]
    pub(super) fn softmax_of_a_key_major_block_matches_the_row_by_row_one() {
        for lanes in [4, 8, 12, 16, 32, 48] {
            let keys = 37;
            let p0: Vec<f32> = pseudo((1, keys, lanes), 7)
                .iter()
                .map(|x| x * 20.0)
                .collect();
            let mut p = p0.clone();
            let mut inv = vec![0f32; lanes];
            softmax_lanes(&mut p, lanes, &mut inv).expect("softmax runs");
            for r in 0..lanes {
                let row: Vec<f64> = (0..keys).map(|j| p0[j * lanes + r] as f64).collect();
                let mx = row.iter().copied().fold(f64::MIN, f64::max);
                let sum: f64 = row.iter().map(|x| (x - mx).exp()).sum();
                for j in 0..keys {
                    let want = (row[j] - mx).exp() / sum;
                    let got = p[j * lanes + r] as f64 * inv[r] as f64;
                    assert!((got - want).abs() < 1e-6, "lanes {lanes} row {r} key {j}");
                }
            }
        }
        assert!(softmax_lanes(&mut [0.0; 13], 12, &mut [0.0; 12]).is_err());
    }

    /// `x` rounded to bfloat16, as an f32.
    pub(super) fn bf16_round(x: f32) -> f32 {
        f32::from_bits(bf16(x) << 16)
    }

    #[test]
    pub(super) fn bf16_rounds_to_nearest_even_as_the_instructions_do() {
        // 1 + 2⁻⁸ is halfway between two bfloat16 values: ties go to the even one (1.0);
        // 1 + 3·2⁻⁸ to 1 + 2⁻⁶ (even); just above halfway rounds up.
        assert_eq!(bf16_round(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(bf16_round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(
            bf16_round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        assert!(bf16_round(f32::NAN).is_nan());
        assert_eq!(bf16_round(-2.5), -2.5);
    }
}

//! Non-finite samples (NaN, ±Inf) become silence where audio enters, so no filter state or
//! model input is ever poisoned by one; they are counted (`nonfinite_samples_total`) and the
//! first is logged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static NONFINITE_TOTAL: AtomicU64 = AtomicU64::new(0);
static LOGGED: AtomicBool = AtomicBool::new(false);

/// Replaces every NaN or infinite sample of `samples` with 0.0; returns how many there were.
/// Every source calls it on the samples it hands on (files, raw PCM, capture).
pub fn replace_nonfinite(samples: &mut [f32]) -> u64 {
    let mut n = 0u64;
    for x in samples.iter_mut() {
        if !x.is_finite() {
            *x = 0.0;
            n += 1;
        }
    }
    if n > 0 {
        NONFINITE_TOTAL.fetch_add(n, Ordering::Relaxed);
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                samples = n,
                "non-finite audio samples (NaN or infinity) replaced by silence; \
                 further ones are only counted (nonfinite_samples_total)"
            );
        }
    }
    n
}

/// Non-finite samples replaced since the process started.
pub fn nonfinite_total() -> u64 {
    NONFINITE_TOTAL.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinities_become_zero_and_are_counted() {
        let before = nonfinite_total();
        let mut s = [0.5, f32::NAN, f32::INFINITY, -0.25, f32::NEG_INFINITY];
        assert_eq!(replace_nonfinite(&mut s), 3);
        assert_eq!(s, [0.5, 0.0, 0.0, -0.25, 0.0]);
        // Other tests may replace samples at the same time; the total only grows.
        assert!(nonfinite_total() >= before + 3);
    }
}

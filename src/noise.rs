//! A small deterministic noise generator (a 64-bit LCG) for the tests, benches and probes,
//! and the initial weights of a trained head.
//!
//! Repeatable by seed and fast; not for anything where randomness matters.

/// Knuth's MMIX linear congruential generator.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next state, all 64 bits (the high ones are the better ones).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// The next value, uniform in [-0.5, 0.5) on a grid of 2⁻²⁴.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// `n` values uniform in [-amplitude/2, amplitude/2).
    pub fn samples(&mut self, n: usize, amplitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * amplitude).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Noise;

    #[test]
    fn noise_is_repeatable_centred_and_bounded() {
        let a = Noise::new(7).samples(10_000, 1.0);
        assert_eq!(a, Noise::new(7).samples(10_000, 1.0));
        assert_ne!(a, Noise::new(8).samples(10_000, 1.0));
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }
}

//! The level meter: weights the audio (A, C, Z), time-weights A (F and S), and sums it into
//! 125 ms blocks, the unit every reported level is built from.
//!
//! Levels are mean squares relative to full scale until they are reported; [`to_db`] turns one
//! into dB with the full-scale-sine convention (a sine of amplitude 1.0 is 0 dBFS) plus the
//! calibration offset.

use super::bands::{BandBank, BandBlock, BandScale};
use super::weighting::Weighter;

/// Blocks per second (125 ms blocks).
pub const BLOCKS_PER_S: u32 = 8;

/// dB of a mean square relative to full scale, with a full-scale sine at 0 dB (its mean
/// square is ½, so 10·log10(ms) + 3.0103), plus `offset` (dBFS → dB SPL when calibrated).
pub fn to_db(mean_square: f64, offset: f64) -> f64 {
    10.0 * mean_square.max(1e-30).log10() + 10.0 * 2f64.log10() + offset
}

/// One 125 ms block (shorter only at the end of a stream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    /// Block number since the stream start.
    pub index: u64,
    /// Seconds from the stream start to the block's first sample.
    pub start_s: f64,
    /// Seconds of audio in the block (0.125 except for the last block of a stream).
    pub seconds: f64,
    /// Mean square of the A-, C- and Z-weighted signal.
    pub a: f64,
    /// C-weighted mean square.
    pub c: f64,
    /// Z-weighted mean square.
    pub z: f64,
    /// Highest F-time-weighted A mean square in the block.
    pub af_max: f64,
    /// Lowest F-time-weighted A mean square in the block; `None` while the F average is
    /// still settling after the start (the first 5 time constants, 0.625 s).
    pub af_min: Option<f64>,
    /// Highest S-time-weighted A mean square in the block.
    pub as_max: f64,
    /// The band mean squares, when the meter has bands.
    pub bands: Option<BandBlock>,
}

impl Block {
    /// Seconds from the stream start to the end of the block.
    pub fn end_s(&self) -> f64 {
        self.start_s + self.seconds
    }
}

/// Streams samples at the capture rate into [`Block`]s.
#[derive(Debug, Clone)]
pub struct Meter {
    rate: u32,
    weighter: Weighter,
    /// Per-sample smoothing factors of the F (125 ms) and S (1 s) exponential averages.
    k_fast: f64,
    k_slow: f64,
    fast: f64,
    slow: f64,
    /// Samples before the F minimum is tracked.
    settle: u64,
    samples: u64,
    index: u64,
    /// Seconds by which the first block is shorter (blocks then end on multiples of 125 ms
    /// after `phase`).
    phase: f64,
    /// Sample numbers where the current block starts and ends.
    block_start: u64,
    block_end: u64,
    acc: Acc,
    bands: Option<Box<BandBank>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    n: u64,
    a: f64,
    c: f64,
    z: f64,
    af_max: f64,
    af_min: Option<f64>,
    as_max: f64,
}

impl Meter {
    /// A meter for audio at `rate` Hz (at least 8 kHz; see [`super::weighting::MIN_RATE`]),
    /// blocks from the stream start.
    pub fn new(rate: u32) -> Self {
        Self::with_phase(rate, 0.0)
    }

    /// A meter whose first block is `phase` seconds long (0 < phase < 0.125; 0: a whole
    /// block), so that the later blocks line up with a clock (see
    /// [`super::clock::Clock::block_phase`]).
    pub fn with_phase(rate: u32, phase: f64) -> Self {
        let fs = f64::from(rate);
        let mut m = Self {
            rate,
            weighter: Weighter::new(rate),
            k_fast: 1.0 - (-1.0 / (0.125 * fs)).exp(),
            k_slow: 1.0 - (-1.0 / fs).exp(),
            fast: 0.0,
            slow: 0.0,
            settle: (5.0 * 0.125 * fs).round() as u64,
            samples: 0,
            index: 0,
            phase: phase.clamp(0.0, 0.125),
            block_start: 0,
            block_end: 0,
            acc: Acc::default(),
            bands: None,
        };
        m.block_end = m.boundary();
        m
    }

    /// The same meter measuring `scale` bands too (each block then carries them).
    pub fn with_bands(mut self, scale: BandScale) -> Self {
        self.bands = Some(Box::new(BandBank::new(scale, self.rate)));
        self
    }

    /// The sample rate the filters are designed for.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The sample where the current block ends: the nearest to (index + 1)/8 s, less
    /// (0.125 − phase) when a phase is set, and at least one sample after its start.
    fn boundary(&self) -> u64 {
        let shift = if self.phase > 0.0 {
            0.125 - self.phase
        } else {
            0.0
        };
        let t = (self.index + 1) as f64 / f64::from(BLOCKS_PER_S) - shift;
        ((t * f64::from(self.rate)).round() as u64).max(self.block_start + 1)
    }

    /// Feeds mono samples; appends each completed block to `out`.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<Block>) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = ((self.block_end - self.samples) as usize).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.run(now);
            rest = later;
            if self.samples == self.block_end {
                out.push(self.close());
            }
        }
    }

    /// Ends the stream: the partial block, if any, goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<Block>) {
        if self.acc.n > 0 {
            out.push(self.close());
        }
    }

    fn run(&mut self, samples: &[f32]) {
        let mut acc = self.acc;
        let (kf, ks) = (self.k_fast, self.k_slow);
        let (mut fast, mut slow) = (self.fast, self.slow);
        let mut settle = self.settle.saturating_sub(self.samples);
        for &x in samples {
            let (a, c, z) = self.weighter.step(f64::from(x));
            let a2 = a * a;
            acc.a += a2;
            acc.c += c * c;
            acc.z += z * z;
            fast += (a2 - fast) * kf;
            slow += (a2 - slow) * ks;
            acc.af_max = acc.af_max.max(fast);
            acc.as_max = acc.as_max.max(slow);
            if settle == 0 {
                acc.af_min = Some(acc.af_min.map_or(fast, |m| m.min(fast)));
            } else {
                settle -= 1;
            }
        }
        acc.n += samples.len() as u64;
        self.samples += samples.len() as u64;
        if let Some(b) = self.bands.as_mut() {
            b.process(samples);
        }
        (self.fast, self.slow, self.acc) = (fast, slow, acc);
    }

    fn close(&mut self) -> Block {
        let acc = std::mem::take(&mut self.acc);
        let n = acc.n.max(1) as f64;
        let block = Block {
            index: self.index,
            start_s: self.block_start as f64 / f64::from(self.rate),
            seconds: acc.n as f64 / f64::from(self.rate),
            a: acc.a / n,
            c: acc.c / n,
            z: acc.z / n,
            af_max: acc.af_max,
            af_min: acc.af_min,
            as_max: acc.as_max,
            bands: self.bands.as_mut().map(|b| b.take()),
        };
        self.index += 1;
        self.block_start = self.samples;
        self.block_end = self.boundary();
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, f: f64, amplitude: f64, seconds: f64) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn blocks_are_125_ms_at_any_rate_and_chunking_does_not_matter() {
        for rate in [44_100, 48_000, 16_000] {
            let x = sine(rate, 440.0, 0.3, 2.0);
            let mut whole = Vec::new();
            let mut m = Meter::new(rate);
            m.process(&x, &mut whole);
            m.finish(&mut whole);
            assert_eq!(whole.len(), 16);
            let total: f64 = whole.iter().map(|b| b.seconds).sum();
            assert!((total - 2.0).abs() < 1e-9);
            let mut chunked = Vec::new();
            let mut m = Meter::new(rate);
            for c in x.chunks(977) {
                m.process(c, &mut chunked);
            }
            m.finish(&mut chunked);
            assert_eq!(whole, chunked);
        }
    }

    #[test]
    fn a_phase_shortens_the_first_block_only() {
        let mut m = Meter::with_phase(48_000, 0.05);
        let mut blocks = Vec::new();
        m.process(&vec![0.1; 48_000], &mut blocks);
        assert!((blocks[0].seconds - 0.05).abs() < 1e-9);
        assert!(
            (blocks[1].start_s - 0.05).abs() < 1e-9 && (blocks[1].seconds - 0.125).abs() < 1e-9
        );
        // 0.05 + 7 × 0.125 = 0.925 s closed; the last 75 ms wait for more audio.
        assert_eq!(blocks.len(), 8);
        assert!((blocks[7].start_s - 0.8).abs() < 1e-9);
    }

    #[test]
    fn full_scale_sine_is_zero_dbfs() {
        assert!((to_db(0.5, 0.0)).abs() < 1e-9);
        assert!((to_db(0.5, 94.0) - 94.0).abs() < 1e-9);
    }
}

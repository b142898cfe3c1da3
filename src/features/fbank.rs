//! Incremental Kaldi fbank, equal to `torchaudio.compliance.kaldi.fbank` (snip_edges, no dither).
//!
//! Audio arrives in chunks of any size; every frame is computed once, as soon as its
//! last sample is in, so chunked output equals whole-signal output bit for bit.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use super::mel::{mel_banks, Triangle};

/// Kaldi's log floor: `f32::EPSILON`, as torchaudio uses for float32 input.
const LOG_FLOOR: f64 = f32::EPSILON as f64;
const PREEMPHASIS: f64 = 0.97;

/// The analysis window applied to each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Symmetric Hann window (torchaudio "hanning"), used by AST.
    Hanning,
    /// Hann raised to the power 0.85 (Kaldi's default "povey"), used by BEATs.
    Povey,
}

/// Everything that defines an fbank frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FbankConfig {
    /// Sample rate of the input, Hz.
    pub sample_rate: u32,
    /// Window function.
    pub window: WindowKind,
    /// Factor applied to samples in [-1, 1] before analysis (1 for AST, 32768 for BEATs).
    pub waveform_scale: f32,
    /// Number of mel bins.
    pub mel_bins: usize,
    /// Frame length in milliseconds (25 for both models).
    pub frame_length_ms: f32,
    /// Frame shift in milliseconds (10 for both models).
    pub frame_shift_ms: f32,
    /// Lowest mel edge, Hz (Kaldi default 20).
    pub low_freq: f32,
    /// Highest mel edge, Hz; 0 or less means Nyquist plus this value, as in Kaldi.
    pub high_freq: f32,
}

impl FbankConfig {
    /// The AST setting: Hann window, waveform unscaled, 128 bins at 16 kHz.
    pub fn ast() -> Self {
        Self {
            sample_rate: 16_000,
            window: WindowKind::Hanning,
            waveform_scale: 1.0,
            mel_bins: 128,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            low_freq: 20.0,
            high_freq: 0.0,
        }
    }

    /// The BEATs setting: Povey window, waveform × 32768, 128 bins at 16 kHz.
    pub fn beats() -> Self {
        Self {
            window: WindowKind::Povey,
            waveform_scale: 32768.0,
            ..Self::ast()
        }
    }

    /// Frame length in samples.
    pub fn frame_length(&self) -> usize {
        (self.sample_rate as f64 * self.frame_length_ms as f64 * 0.001) as usize
    }

    /// Frame shift in samples.
    pub fn frame_shift(&self) -> usize {
        (self.sample_rate as f64 * self.frame_shift_ms as f64 * 0.001) as usize
    }

    /// Number of frames Kaldi (snip_edges) yields for `samples` samples.
    pub fn frames_for(&self, samples: usize) -> usize {
        let len = self.frame_length();
        if samples < len {
            0
        } else {
            1 + (samples - len) / self.frame_shift()
        }
    }
}

/// Why an fbank configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FbankError {
    /// Frame length, shift, or bins are zero or inconsistent.
    #[error("invalid fbank setting: {0}")]
    Invalid(String),
}

/// The incremental filterbank stage.
pub struct Fbank {
    cfg: FbankConfig,
    frame_len: usize,
    shift: usize,
    window: Vec<f64>,
    banks: Vec<Triangle>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// Samples received but not yet consumed by a frame shift.
    pending: Vec<f32>,
    frame: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
}

impl Fbank {
    /// Builds the stage: window, mel triangles and FFT plan are made once here.
    pub fn new(cfg: &FbankConfig) -> Result<Self, FbankError> {
        let frame_len = cfg.frame_length();
        let shift = cfg.frame_shift();
        if frame_len < 2 || shift == 0 || cfg.mel_bins == 0 {
            return Err(FbankError::Invalid(format!(
                "frame length {frame_len} samples, shift {shift} samples, {} mel bins",
                cfg.mel_bins
            )));
        }
        let nyquist = cfg.sample_rate as f32 / 2.0;
        let high = if cfg.high_freq <= 0.0 {
            nyquist + cfg.high_freq
        } else {
            cfg.high_freq
        };
        if !(0.0..nyquist).contains(&cfg.low_freq) || high <= cfg.low_freq || high > nyquist {
            return Err(FbankError::Invalid(format!(
                "mel range {}..{high} Hz must lie inside 0..{nyquist} Hz",
                cfg.low_freq
            )));
        }
        let fft_len = frame_len.next_power_of_two();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(fft_len);
        let banks = mel_banks(
            cfg.mel_bins,
            fft_len,
            cfg.sample_rate as f64,
            cfg.low_freq as f64,
            high as f64,
        );
        Ok(Self {
            window: window(cfg.window, frame_len),
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; fft_len / 2 + 1],
            cfg: cfg.clone(),
            frame_len,
            shift,
            banks,
            fft,
            pending: Vec::with_capacity(frame_len + shift),
        })
    }

    /// The configuration this stage was built from.
    pub fn config(&self) -> &FbankConfig {
        &self.cfg
    }

    /// Number of mel bins per frame.
    pub fn mel_bins(&self) -> usize {
        self.cfg.mel_bins
    }

    /// Feeds samples in [-1, 1] and appends every frame completed by them to `out`
    /// (row-major, `mel_bins` values per frame). Returns the number of frames added.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<f32>) -> usize {
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        let mut added = 0;
        while self.pending.len() - start >= self.frame_len {
            self.compute_frame(start, out);
            start += self.shift;
            added += 1;
        }
        self.pending.drain(..start.min(self.pending.len()));
        added
    }

    /// Forgets buffered samples, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    fn compute_frame(&mut self, start: usize, out: &mut Vec<f32>) {
        let n = self.frame_len;
        // The waveform is scaled in f32 as the models' preprocessing does; everything
        // after that runs in f64 so loud bins cannot drown quiet ones in rounding error.
        let scale = self.cfg.waveform_scale;
        let src = &self.pending[start..start + n];
        let frame = &mut self.frame[..];
        for (d, s) in frame.iter_mut().zip(src) {
            *d = (s * scale) as f64;
        }
        let mean = frame[..n].iter().sum::<f64>() / n as f64;
        frame[..n].iter_mut().for_each(|x| *x -= mean);
        // Pre-emphasis, back to front, with x[-1] := x[0].
        for i in (1..n).rev() {
            frame[i] -= PREEMPHASIS * frame[i - 1];
        }
        frame[0] -= PREEMPHASIS * frame[0];
        for (x, w) in frame[..n].iter_mut().zip(&self.window) {
            *x *= w;
        }
        frame[n..].iter_mut().for_each(|x| *x = 0.0);
        // The lengths come from the plan itself, so processing cannot fail.
        let _ = self
            .fft
            .process_with_scratch(frame, &mut self.spectrum, &mut self.scratch);
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.norm_sqr();
        }
        out.extend(self.banks.iter().map(|t| {
            let e: f64 = t
                .weights
                .iter()
                .zip(&self.power[t.first_bin..])
                .map(|(w, p)| w * p)
                .sum();
            e.max(LOG_FLOOR).ln() as f32
        }));
    }
}

/// The window function over `n` points, as torchaudio builds it (symmetric Hann).
fn window(kind: WindowKind, n: usize) -> Vec<f64> {
    let denom = (n - 1) as f64;
    (0..n)
        .map(|i| {
            let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / denom).cos();
            match kind {
                WindowKind::Hanning => hann,
                WindowKind::Povey => hann.powf(0.85),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(cfg: &FbankConfig, x: &[f32]) -> Vec<f32> {
        let mut fb = Fbank::new(cfg).expect("valid config");
        let mut out = Vec::new();
        fb.process(x, &mut out);
        out
    }

    #[test]
    fn frame_count_follows_snip_edges() {
        let cfg = FbankConfig::ast();
        for n in [0, 399, 400, 559, 560, 1737, 16000] {
            let frames = whole(&cfg, &vec![0.1; n]).len() / 128;
            assert_eq!(frames, cfg.frames_for(n), "n = {n}");
        }
        assert_eq!(cfg.frames_for(16000), 98);
    }

    #[test]
    fn silence_is_the_log_floor() {
        let out = whole(&FbankConfig::beats(), &[0.0; 800]);
        let floor = (f32::EPSILON as f64).ln() as f32;
        assert!(out.iter().all(|&v| v == floor));
    }

    #[test]
    fn rejects_nonsense() {
        let cfg = FbankConfig {
            mel_bins: 0,
            ..FbankConfig::ast()
        };
        assert!(Fbank::new(&cfg).is_err());
        let cfg = FbankConfig {
            low_freq: 9000.0,
            ..FbankConfig::ast()
        };
        assert!(Fbank::new(&cfg).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Streaming equals batch: any chunking gives the very same frames.
        #[test]
        fn chunked_equals_whole(
            seed in 0u64..1000,
            len in 0usize..3000,
            chunks in proptest::collection::vec(1usize..700, 1..20),
            beats in any::<bool>(),
        ) {
            let cfg = if beats { FbankConfig::beats() } else { FbankConfig::ast() };
            let x = crate::noise::Noise::new(seed).samples(len, 1.0);
            let expected = whole(&cfg, &x);
            let mut fb = Fbank::new(&cfg).expect("valid config");
            let mut got = Vec::new();
            let mut rest = &x[..];
            for c in chunks.iter().cycle() {
                if rest.is_empty() { break; }
                let (head, tail) = rest.split_at((*c).min(rest.len()));
                fb.process(head, &mut got);
                rest = tail;
            }
            prop_assert_eq!(got, expected);
        }
    }
}

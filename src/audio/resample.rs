//! Streaming resampler to the model rate (rubato FFT resampler, fixed input chunks).
//!
//! Input of any chunk size; the start-up delay is trimmed and `finish` flushes the tail, so
//! the output of a stream is exactly `ceil(n × out / in)` samples, aligned with the input.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// Lowest source rate the analysis takes: below it there is next to no audio band left for
/// a model, and a resampler from a few Hz would need absurd time and memory.
pub const MIN_SOURCE_RATE: u32 = 4_000;
/// Highest source rate the analysis takes (the fastest professional audio interfaces).
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Why a resampler cannot be built or run.
#[derive(Debug, thiserror::Error)]
#[error("resampling {from} Hz to {to} Hz: {msg}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    msg: String,
}

/// A mono streaming resampler; a pass-through when the rates are equal.
pub struct Resampler {
    from: u32,
    to: u32,
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    to_trim: usize,
    total_in: u64,
    total_out: u64,
}

impl Resampler {
    /// Builds a resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let err = |msg: String| ResampleError { from, to, msg };
        if from == 0 || to == 0 {
            return Err(err("sample rates must be > 0".into()));
        }
        if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&from) {
            return Err(err(format!(
                "the source rate must be from {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz"
            )));
        }
        let inner = if from == to {
            None
        } else {
            Some(
                Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input)
                    .map_err(|e| err(e.to_string()))?,
            )
        };
        let (out_len, to_trim) = inner
            .as_ref()
            .map(|r| (r.output_frames_max(), r.output_delay()))
            .unwrap_or((0, 0));
        Ok(Self {
            from,
            to,
            inner,
            pending: Vec::with_capacity(2 * CHUNK),
            out_buf: vec![0.0; out_len],
            to_trim,
            total_in: 0,
            total_out: 0,
        })
    }

    /// Feeds samples at the input rate; appends resampled samples to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.total_in += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.total_out += input.len() as u64;
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= CHUNK {
            self.run_chunk(start, None, out)?;
            start += CHUNK;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Flushes the tail at the end of a stream: the output then holds exactly
    /// `ceil(total_in × to / from)` samples. The resampler is ready for a new stream after.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if self.inner.is_some() {
            let expected = (self.total_in * self.to as u64).div_ceil(self.from as u64);
            let partial = self.pending.len();
            if partial > 0 {
                self.run_chunk(0, Some(partial), out)?;
            }
            self.pending.clear();
            // Zeros pushed through bring out what the filter delay still holds.
            while self.total_out < expected {
                self.run_chunk(0, Some(0), out)?;
            }
            let extra = (self.total_out - expected) as usize;
            out.truncate(out.len() - extra.min(out.len()));
            if let Some(r) = self.inner.as_mut() {
                r.reset();
                self.to_trim = r.output_delay();
            }
        }
        self.total_in = 0;
        self.total_out = 0;
        Ok(())
    }

    fn run_chunk(
        &mut self,
        start: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), ResampleError> {
        let (from, to) = (self.from, self.to);
        let err = |msg: String| ResampleError { from, to, msg };
        let Some(r) = self.inner.as_mut() else {
            return Ok(());
        };
        let len = partial.unwrap_or(CHUNK);
        let mut zeros = [0.0f32; 1];
        let input_slice: &[f32] = if len == 0 {
            &mut zeros[..]
        } else {
            &self.pending[start..start + len]
        };
        let input = InterleavedSlice::new(input_slice, 1, input_slice.len())
            .map_err(|e| err(e.to_string()))?;
        let cap = self.out_buf.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.out_buf, 1, cap).map_err(|e| err(e.to_string()))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: partial,
            active_channels_mask: None,
        };
        let (_, produced) = r
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| err(e.to_string()))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        out.extend_from_slice(&self.out_buf[skip..produced]);
        self.total_out += (produced - skip) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resample_in_chunks(x: &[f32], from: u32, to: u32, chunk: usize) -> Vec<f32> {
        let mut r = Resampler::new(from, to).expect("resampler");
        let mut out = Vec::new();
        for c in x.chunks(chunk) {
            r.process(c, &mut out).expect("process");
        }
        r.finish(&mut out).expect("finish");
        out
    }

    #[test]
    fn length_is_exact_and_chunking_does_not_matter() {
        let x: Vec<f32> = (0..44_100 + 37)
            .map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 44_100.0).sin())
            .collect();
        let a = resample_in_chunks(&x, 44_100, 16_000, 333);
        let b = resample_in_chunks(&x, 44_100, 16_000, 4096);
        assert_eq!(a.len(), (x.len() as u64 * 16_000).div_ceil(44_100) as usize);
        assert_eq!(a, b);
    }

    #[test]
    fn a_resampled_sine_keeps_its_phase_and_level() {
        let f = 1000.0f32;
        let x: Vec<f32> = (0..48_000)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * f / 48_000.0).sin())
            .collect();
        let y = resample_in_chunks(&x, 48_000, 16_000, 1000);
        // Compare away from the edges, where the filter sees the whole signal.
        let worst = (2000..14_000)
            .map(|i| {
                let want = 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * f / 16_000.0).sin();
                (y[i] - want).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "worst deviation {worst}");
    }

    #[test]
    fn equal_rates_pass_through() {
        let x = [0.1, 0.2, 0.3];
        assert_eq!(resample_in_chunks(&x, 16_000, 16_000, 2), x);
    }
}

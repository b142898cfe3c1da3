//! The analysis chain for a stream: resample → fbank or blocks of samples ([`Frames`]) →
//! rolling window → prepared model input.
//!
//! Inference is not done here: windows leave as prepared inputs, so the model can run on its
//! own thread and a slow model never delays the fbank.

use crate::audio::{ResampleError, Resampler};
use crate::features::{Blocks, Fbank, FbankError};
use crate::model::{prepare_window, Manifest};
use crate::window::FrameWindow;

/// One window ready for the model, with where it lies in the stream.
#[derive(Debug, Clone)]
pub struct Window {
    /// Seconds from the stream start to the end of the window's last frame.
    pub end_s: f64,
    /// Seconds from the stream start to the start of the audio new in this window.
    pub new_from_s: f64,
    /// Frames in the window before padding.
    pub frames: usize,
    /// The model input: `window_frames × frame values`, padded and normalised (or scaled).
    pub input: Vec<f32>,
}

/// Scores of one window, with where it lies in the stream.
#[derive(Debug, Clone)]
pub struct WindowScores {
    /// Seconds from the stream start to the end of the window's last frame.
    pub end_s: f64,
    /// Seconds from the stream start to the start of the audio new in this window.
    pub new_from_s: f64,
    /// Frames in the window before padding.
    pub frames: usize,
    /// One score per label, in [0, 1].
    pub scores: Vec<f32>,
}

impl WindowScores {
    /// Pairs a window's position with the scores the model gave it.
    pub fn new(window: &Window, scores: Vec<f32>) -> Self {
        Self {
            end_s: window.end_s,
            new_from_s: window.new_from_s,
            frames: window.frames,
            scores,
        }
    }
}

/// Why analysis of a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The resampler failed.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// The model's fbank settings are unusable.
    #[error("fbank: {0}")]
    Fbank(#[from] FbankError),
}

/// Samples at the source rate → the model's frames: log-mel frames, or for a waveform model
/// blocks of samples. The resample → frames chain that [`Analyzer`] and the offline commands
/// (`classify`, `fbank`, `embed`) share.
pub struct Frames {
    resampler: Resampler,
    stage: Stage,
    resampled: Vec<f32>,
}

enum Stage {
    Fbank(Fbank),
    Blocks(Blocks),
}

impl Frames {
    /// The chain for audio at `source_rate` Hz into `manifest`'s frames.
    pub fn new(manifest: &Manifest, source_rate: u32) -> Result<Self, AnalysisError> {
        let stage = match manifest.fbank_config() {
            Some(cfg) => Stage::Fbank(Fbank::new(&cfg)?),
            None => Stage::Blocks(Blocks::new(manifest.frame_bins(), manifest.sample_rate)),
        };
        Ok(Self {
            resampler: Resampler::new(source_rate, manifest.sample_rate)?,
            stage,
            resampled: Vec::new(),
        })
    }

    /// Feeds mono samples; appends the frames they complete to `out` (row-major,
    /// [`Frames::bins`] a frame) and returns how many.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<usize, AnalysisError> {
        self.resampled.clear();
        self.resampler.process(samples, &mut self.resampled)?;
        Ok(self.stage_process(out))
    }

    /// Ends the stream: the resampler's tail through the stage, its frames appended to `out`
    /// (a waveform model's last, unfinished block completed with silence).
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<usize, AnalysisError> {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled)?;
        let n = self.stage_process(out);
        Ok(n + match &mut self.stage {
            Stage::Fbank(_) => 0,
            Stage::Blocks(b) => b.finish(out),
        })
    }

    fn stage_process(&mut self, out: &mut Vec<f32>) -> usize {
        match &mut self.stage {
            Stage::Fbank(f) => f.process(&self.resampled, out),
            Stage::Blocks(b) => b.process(&self.resampled, out),
        }
    }

    /// Starts afresh (frame counts from zero).
    pub fn reset(&mut self) {
        match &mut self.stage {
            Stage::Fbank(f) => f.reset(),
            Stage::Blocks(b) => b.reset(),
        }
    }

    /// Values a frame: mel bins, or samples a block.
    pub fn bins(&self) -> usize {
        match &self.stage {
            Stage::Fbank(f) => f.mel_bins(),
            Stage::Blocks(b) => b.block(),
        }
    }

    /// Seconds between frame starts, and seconds a frame covers.
    pub fn frame_timing(&self) -> (f64, f64) {
        match &self.stage {
            Stage::Fbank(f) => {
                let cfg = f.config();
                let rate = cfg.sample_rate as f64;
                (
                    cfg.frame_shift() as f64 / rate,
                    cfg.frame_length() as f64 / rate,
                )
            }
            Stage::Blocks(b) => {
                let s = b.block() as f64 / f64::from(b.sample_rate());
                (s, s)
            }
        }
    }
}

/// Streams audio at the source rate into prepared model windows, every `hop_frames`.
pub struct Analyzer {
    manifest: Manifest,
    chain: Frames,
    window: FrameWindow,
    hop_frames: usize,
    since_last: usize,
    frames: Vec<f32>,
}

impl Analyzer {
    /// Builds the chain for audio arriving at `source_rate` Hz, emitting every `hop_frames`.
    pub fn new(
        manifest: &Manifest,
        source_rate: u32,
        hop_frames: usize,
    ) -> Result<Self, AnalysisError> {
        Ok(Self {
            chain: Frames::new(manifest, source_rate)?,
            window: FrameWindow::new(manifest.window_frames, manifest.frame_bins()),
            manifest: manifest.clone(),
            hop_frames: hop_frames.max(1),
            since_last: 0,
            frames: Vec::new(),
        })
    }

    /// Feeds mono samples at the source rate; calls `on_window` for each completed hop.
    pub fn process(
        &mut self,
        samples: &[f32],
        on_window: &mut dyn FnMut(Window),
    ) -> Result<(), AnalysisError> {
        self.frames.clear();
        let n = self.chain.process(samples, &mut self.frames)?;
        self.feed_frames(n, on_window);
        Ok(())
    }

    /// Ends the stream: flushes the resampler, emits the frames since the last window
    /// (if any), and resets for a new stream.
    pub fn finish(&mut self, on_window: &mut dyn FnMut(Window)) -> Result<(), AnalysisError> {
        self.frames.clear();
        let n = self.chain.finish(&mut self.frames)?;
        self.feed_frames(n, on_window);
        if self.since_last > 0 {
            self.emit(on_window);
        }
        self.chain.reset();
        Ok(())
    }

    /// Pushes the `n` new frames of `self.frames` into the window, emitting at each hop.
    fn feed_frames(&mut self, n: usize, on_window: &mut dyn FnMut(Window)) {
        let bins = self.chain.bins();
        // Push up to each hop boundary so every window sees exactly its frames.
        let mut done = 0;
        while done < n {
            let take = (self.hop_frames - self.since_last).min(n - done);
            self.window
                .push(&self.frames[done * bins..(done + take) * bins]);
            done += take;
            self.since_last += take;
            if self.since_last == self.hop_frames {
                self.emit(on_window);
            }
        }
    }

    fn emit(&mut self, on_window: &mut dyn FnMut(Window)) {
        let (shift, length) = self.chain.frame_timing();
        let total = self.window.total() as f64;
        let (view, frames) = self.window.latest();
        let new_frames = self.since_last as f64;
        self.since_last = 0;
        on_window(Window {
            end_s: (total - 1.0) * shift + length,
            new_from_s: ((total - new_frames) * shift).max(0.0),
            frames,
            input: prepare_window(&self.manifest, view, frames),
        });
    }
}

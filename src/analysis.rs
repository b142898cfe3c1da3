//! The analysis chain for a stream: resample → fbank ([`LogMel`]) → rolling window → prepared
//! model input.
//!
//! Inference is not done here: windows leave as prepared inputs, so the model can run on its
//! own thread and a slow model never delays the fbank.

use crate::audio::{ResampleError, Resampler};
use crate::features::{Fbank, FbankError};
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
    /// The model input: `window_frames × mel_bins`, padded and normalised.
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

/// Samples at the source rate → the model's log-mel frames: the resample → fbank chain that
/// [`Analyzer`] and the offline commands (`classify`, `fbank`) share.
pub struct LogMel {
    resampler: Resampler,
    fbank: Fbank,
    resampled: Vec<f32>,
}

impl LogMel {
    /// The chain for audio at `source_rate` Hz into `manifest`'s fbank.
    pub fn new(manifest: &Manifest, source_rate: u32) -> Result<Self, AnalysisError> {
        Ok(Self {
            resampler: Resampler::new(source_rate, manifest.sample_rate)?,
            fbank: Fbank::new(&manifest.fbank_config())?,
            resampled: Vec::new(),
        })
    }

    /// Feeds mono samples; appends the frames they complete to `out` (row-major, `mel_bins`
    /// a frame) and returns how many.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<usize, AnalysisError> {
        self.resampled.clear();
        self.resampler.process(samples, &mut self.resampled)?;
        Ok(self.fbank.process(&self.resampled, out))
    }

    /// Ends the stream: the resampler's tail through the fbank, its frames appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<usize, AnalysisError> {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled)?;
        Ok(self.fbank.process(&self.resampled, out))
    }

    /// Starts the fbank afresh (frame counts from zero).
    pub fn reset(&mut self) {
        self.fbank.reset();
    }

    /// The fbank, for its settings.
    pub fn fbank(&self) -> &Fbank {
        &self.fbank
    }
}

/// Streams audio at the source rate into prepared model windows, every `hop_frames`.
pub struct Analyzer {
    manifest: Manifest,
    log_mel: LogMel,
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
            log_mel: LogMel::new(manifest, source_rate)?,
            window: FrameWindow::new(manifest.window_frames, manifest.fbank.mel_bins),
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
        let n = self.log_mel.process(samples, &mut self.frames)?;
        self.feed_frames(n, on_window);
        Ok(())
    }

    /// Ends the stream: flushes the resampler, emits the frames since the last window
    /// (if any), and resets for a new stream.
    pub fn finish(&mut self, on_window: &mut dyn FnMut(Window)) -> Result<(), AnalysisError> {
        self.frames.clear();
        let n = self.log_mel.finish(&mut self.frames)?;
        self.feed_frames(n, on_window);
        if self.since_last > 0 {
            self.emit(on_window);
        }
        self.log_mel.reset();
        Ok(())
    }

    /// Pushes the `n` new frames of `self.frames` into the window, emitting at each hop.
    fn feed_frames(&mut self, n: usize, on_window: &mut dyn FnMut(Window)) {
        let bins = self.log_mel.fbank().mel_bins();
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
        let cfg = self.log_mel.fbank().config();
        let shift = cfg.frame_shift() as f64 / cfg.sample_rate as f64;
        let length = cfg.frame_length() as f64 / cfg.sample_rate as f64;
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

//! The analysis chain for a stream: resample → fbank → rolling window → prepared model input.
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

/// Streams audio at the source rate into prepared model windows, every `hop_frames`.
pub struct Analyzer {
    manifest: Manifest,
    resampler: Resampler,
    fbank: Fbank,
    window: FrameWindow,
    hop_frames: usize,
    since_last: usize,
    resampled: Vec<f32>,
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
            resampler: Resampler::new(source_rate, manifest.sample_rate)?,
            window: FrameWindow::new(manifest.window_frames, manifest.fbank.mel_bins),
            fbank: Fbank::new(&manifest.fbank_config())?,
            manifest: manifest.clone(),
            hop_frames: hop_frames.max(1),
            since_last: 0,
            resampled: Vec::new(),
            frames: Vec::new(),
        })
    }

    /// Feeds mono samples at the source rate; calls `on_window` for each completed hop.
    pub fn process(
        &mut self,
        samples: &[f32],
        on_window: &mut dyn FnMut(Window),
    ) -> Result<(), AnalysisError> {
        self.resampled.clear();
        self.resampler.process(samples, &mut self.resampled)?;
        self.feed_resampled(on_window);
        Ok(())
    }

    /// Ends the stream: flushes the resampler, emits the frames since the last window
    /// (if any), and resets for a new stream.
    pub fn finish(&mut self, on_window: &mut dyn FnMut(Window)) -> Result<(), AnalysisError> {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled)?;
        self.feed_resampled(on_window);
        if self.since_last > 0 {
            self.emit(on_window);
        }
        self.fbank.reset();
        Ok(())
    }

    fn feed_resampled(&mut self, on_window: &mut dyn FnMut(Window)) {
        self.frames.clear();
        let bins = self.fbank.mel_bins();
        let n = self.fbank.process(&self.resampled, &mut self.frames);
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
        let cfg = self.fbank.config();
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

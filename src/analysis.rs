//! The analysis chain for a stream: resample → fbank → rolling window → model → scores.

use crate::audio::{ResampleError, Resampler};
use crate::features::Fbank;
use crate::model::{Model, ModelError};
use crate::window::FrameWindow;

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

/// Why analysis of a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The resampler failed.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// The model failed on a window.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Streams audio at the source rate into windows of model scores, every `hop_frames`.
pub struct Analyzer<'m> {
    model: &'m Model,
    resampler: Resampler,
    fbank: Fbank,
    window: FrameWindow,
    hop_frames: usize,
    since_last: usize,
    resampled: Vec<f32>,
    frames: Vec<f32>,
}

impl<'m> Analyzer<'m> {
    /// Builds the chain for audio arriving at `source_rate` Hz, scoring every `hop_frames`.
    pub fn new(
        model: &'m Model,
        source_rate: u32,
        hop_frames: usize,
    ) -> Result<Self, AnalysisError> {
        let m = &model.manifest;
        let fbank = Fbank::new(&m.fbank_config())
            .map_err(|e| ModelError::Inference(format!("fbank: {e}")))?;
        Ok(Self {
            resampler: Resampler::new(source_rate, m.sample_rate)?,
            window: FrameWindow::new(m.window_frames, m.fbank.mel_bins),
            fbank,
            model,
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
        on_window: &mut dyn FnMut(WindowScores),
    ) -> Result<(), AnalysisError> {
        self.resampled.clear();
        self.resampler.process(samples, &mut self.resampled)?;
        self.feed_resampled(on_window)
    }

    /// Ends the stream: flushes the resampler, scores the frames since the last window
    /// (if any), and resets for a new stream.
    pub fn finish(&mut self, on_window: &mut dyn FnMut(WindowScores)) -> Result<(), AnalysisError> {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled)?;
        self.feed_resampled(on_window)?;
        if self.since_last > 0 {
            self.emit(on_window)?;
        }
        self.fbank.reset();
        Ok(())
    }

    /// Hops (in frames) between windows.
    pub fn hop_frames(&self) -> usize {
        self.hop_frames
    }

    fn feed_resampled(
        &mut self,
        on_window: &mut dyn FnMut(WindowScores),
    ) -> Result<(), AnalysisError> {
        self.frames.clear();
        let bins = self.fbank.mel_bins();
        let resampled = std::mem::take(&mut self.resampled);
        let n = self.fbank.process(&resampled, &mut self.frames);
        self.resampled = resampled;
        // Push frame by frame up to each hop boundary so every window sees exactly its frames.
        let mut done = 0;
        while done < n {
            let take = (self.hop_frames - self.since_last).min(n - done);
            self.window
                .push(&self.frames[done * bins..(done + take) * bins]);
            done += take;
            self.since_last += take;
            if self.since_last == self.hop_frames {
                self.emit(on_window)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, on_window: &mut dyn FnMut(WindowScores)) -> Result<(), AnalysisError> {
        let cfg = self.fbank.config();
        let shift = cfg.frame_shift() as f64 / cfg.sample_rate as f64;
        let length = cfg.frame_length() as f64 / cfg.sample_rate as f64;
        let total = self.window.total() as f64;
        let (view, frames) = self.window.latest();
        let scores = self.model.score(view, frames)?;
        let new_frames = self.since_last as f64;
        self.since_last = 0;
        on_window(WindowScores {
            end_s: (total - 1.0) * shift + length,
            new_from_s: ((total - new_frames) * shift).max(0.0),
            frames,
            scores,
        });
        Ok(())
    }
}

//! Offline classification: a file streamed through the model's frames into consecutive model
//! windows, scored as they fill; memory is bounded by one window, whatever the file's length.

use std::path::Path;

use anyhow::Context;

use serde::Serialize;

use crate::analysis::Frames;
use crate::audio::AudioFile;
use crate::model::{prepare_window, Manifest, Model};

pub use crate::aggregate::Aggregate;
use crate::aggregate::Aggregator;

/// What streaming a file gave.
#[derive(Debug, Clone, Copy)]
pub struct Streamed {
    /// Frames of the whole file (log-mel frames, or a waveform model's blocks).
    pub frames: usize,
    /// Windows handed on.
    pub windows: usize,
    /// Duration of the audio, seconds.
    pub duration_s: f64,
}

/// Decodes, downmixes, resamples and fbanks (or cuts into blocks) `path` for `manifest` chunk
/// by chunk, and calls `on_frames` with each run of new raw frames (row-major,
/// `manifest.frame_bins()` a frame) as it comes, then `progress` with the fraction of the file
/// read when its length is known.
pub fn stream_frames(
    manifest: &Manifest,
    path: &Path,
    progress: &mut dyn FnMut(f64),
    on_frames: &mut dyn FnMut(&[f32]) -> anyhow::Result<()>,
) -> anyhow::Result<Streamed> {
    let mut file = AudioFile::open(path)?;
    let mut chain =
        Frames::new(manifest, file.sample_rate()).with_context(|| path.display().to_string())?;
    let total = file.frames_hint();
    let (mut mono, mut data) = (Vec::new(), Vec::new());
    let (mut read, mut frames) = (0u64, 0usize);
    let mut more = true;
    while more {
        mono.clear();
        more = file.read_chunk(&mut mono)?;
        read += mono.len() as u64;
        data.clear();
        frames += chain.process(&mono, &mut data)?;
        if !more {
            frames += chain.finish(&mut data)?;
        }
        if !data.is_empty() {
            on_frames(&data)?;
        }
        if let Some(t) = total.filter(|&t| t > 0) {
            progress((read as f64 / t as f64).min(1.0));
        }
    }
    if frames == 0 {
        let frame_ms = match &manifest.fbank {
            Some(f) => f.frame_length_ms,
            None => (manifest.frame_shift_s() * 1000.0) as f32,
        };
        anyhow::bail!(
            "{}: too short: shorter than one {frame_ms} ms frame",
            path.display()
        );
    }
    Ok(Streamed {
        frames,
        windows: 0,
        duration_s: read as f64 / file.sample_rate() as f64,
    })
}

/// Streams `path` into consecutive, non-overlapping model windows of `window_frames` frames
/// and calls `on_window` with each prepared input as it fills (the last one with the frames
/// left: padded for a fixed-input model, as they are for a `dynamic_frames` one).
pub fn stream_windows(
    manifest: &Manifest,
    path: &Path,
    progress: &mut dyn FnMut(f64),
    on_window: &mut dyn FnMut(Vec<f32>) -> anyhow::Result<()>,
) -> anyhow::Result<Streamed> {
    let bins = manifest.frame_bins();
    let full = manifest.window_frames * bins;
    let mut window: Vec<f32> = Vec::with_capacity(full);
    let mut windows = 0;
    let mut streamed = stream_frames(manifest, path, progress, &mut |mut new| {
        while !new.is_empty() {
            let take = (full - window.len()).min(new.len());
            window.extend_from_slice(&new[..take]);
            new = &new[take..];
            if window.len() == full {
                on_window(prepare_window(manifest, &window, manifest.window_frames))?;
                windows += 1;
                window.clear();
            }
        }
        Ok(())
    })?;
    if !window.is_empty() {
        on_window(prepare_window(manifest, &window, window.len() / bins))?;
        windows += 1;
    }
    streamed.windows = windows;
    Ok(streamed)
}

/// Scores of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileScores {
    /// Seconds of audio.
    pub duration_s: f64,
    /// Windows scored.
    pub windows: usize,
    /// One aggregated score per label.
    pub scores: Vec<f32>,
}

/// Each label's window threshold: its own (model.toml `[thresholds]`), else `on`.
pub fn window_thresholds(model: &Model, on: f32) -> Vec<f32> {
    model
        .labels
        .iter()
        .map(|l| l.threshold.unwrap_or(on))
        .collect()
}

/// Scores a file in model-window chunks as they fill and aggregates them (`vote` counts a
/// window for a label at the label's own threshold, else 0.5).
pub fn classify_file(
    model: &Model,
    path: &Path,
    aggregate: Aggregate,
    progress: &mut dyn FnMut(f64),
) -> anyhow::Result<FileScores> {
    classify_file_windows(model, path, aggregate, progress, &mut |_| {})
}

/// As [`classify_file`], also handing each window's scores to `each` in order.
pub fn classify_file_windows(
    model: &Model,
    path: &Path,
    aggregate: Aggregate,
    progress: &mut dyn FnMut(f64),
    each: &mut dyn FnMut(&[f32]),
) -> anyhow::Result<FileScores> {
    let mut acc = Aggregator::new(window_thresholds(model, 0.5));
    let streamed = stream_windows(&model.manifest, path, progress, &mut |input| {
        let s = model.score_prepared(&input)?;
        each(&s);
        acc.push(&s);
        Ok(())
    })?;
    let acc = acc.scores(aggregate);
    Ok(FileScores {
        duration_s: streamed.duration_s,
        windows: streamed.windows,
        scores: acc,
    })
}

//! Offline classification: whole files scored in consecutive model-window chunks.

use std::path::Path;

use anyhow::Context;

use serde::Serialize;

use crate::audio::{AudioFile, Resampler};
use crate::features::Fbank;
use crate::model::{prepare_window, Model};

/// How chunk scores are combined into file scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean over chunks: how present a sound is over the file.
    Mean,
    /// Max over chunks: whether a sound occurs anywhere.
    Max,
}

/// Raw log-mel frames of a whole file, as the model's fbank sees it.
pub struct LogMel {
    /// Row-major `frames × bins`.
    pub data: Vec<f32>,
    /// Number of frames.
    pub frames: usize,
    /// Mel bins per frame.
    pub bins: usize,
    /// Duration of the audio, seconds.
    pub duration_s: f64,
}

/// Decodes, downmixes, resamples and fbanks a file for `model`, calling `progress` with
/// the fraction done when the file's length is known.
pub fn log_mel_of_file(
    model: &Model,
    path: &Path,
    progress: &mut dyn FnMut(f64),
) -> anyhow::Result<LogMel> {
    let m = &model.manifest;
    let mut file = AudioFile::open(path)?;
    let mut resampler = Resampler::new(file.sample_rate(), m.sample_rate)
        .with_context(|| path.display().to_string())?;
    let mut fbank = Fbank::new(&m.fbank_config())?;
    let total = file.frames_hint();
    let (mut mono, mut resampled, mut data) = (Vec::new(), Vec::new(), Vec::new());
    let mut read = 0u64;
    let mut more = true;
    while more {
        mono.clear();
        more = file.read_chunk(&mut mono)?;
        read += mono.len() as u64;
        resampled.clear();
        resampler.process(&mono, &mut resampled)?;
        if !more {
            resampler.finish(&mut resampled)?;
        }
        fbank.process(&resampled, &mut data);
        if let Some(t) = total.filter(|&t| t > 0) {
            progress(read as f64 / t as f64);
        }
    }
    let bins = fbank.mel_bins();
    let frames = data.len() / bins;
    if frames == 0 {
        anyhow::bail!(
            "{}: too short: shorter than one {} ms frame",
            path.display(),
            m.fbank.frame_length_ms
        );
    }
    Ok(LogMel {
        data,
        frames,
        bins,
        duration_s: read as f64 / file.sample_rate() as f64,
    })
}

/// The model inputs for a file: consecutive, non-overlapping windows; the last one padded.
pub fn windows_of(model: &Model, mel: &LogMel) -> Vec<Vec<f32>> {
    let w = model.manifest.window_frames;
    mel.data
        .chunks(w * mel.bins)
        .map(|c| prepare_window(&model.manifest, c, c.len() / mel.bins))
        .collect()
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

/// Scores a file in model-window chunks and aggregates them.
pub fn classify_file(
    model: &Model,
    path: &Path,
    aggregate: Aggregate,
    progress: &mut dyn FnMut(f64),
) -> anyhow::Result<FileScores> {
    let mel = log_mel_of_file(model, path, &mut |f| progress(0.5 * f))?;
    let windows = windows_of(model, &mel);
    let mut acc = vec![0.0f32; model.labels.len()];
    if aggregate == Aggregate::Max {
        acc.fill(f32::NEG_INFINITY);
    }
    for (i, input) in windows.iter().enumerate() {
        let s = model.score_prepared(input)?;
        for (a, x) in acc.iter_mut().zip(&s) {
            *a = match aggregate {
                Aggregate::Mean => *a + x,
                Aggregate::Max => a.max(*x),
            };
        }
        progress(0.5 + 0.5 * (i + 1) as f64 / windows.len() as f64);
    }
    if aggregate == Aggregate::Mean {
        let n = windows.len() as f32;
        acc.iter_mut().for_each(|a| *a /= n);
    }
    Ok(FileScores {
        duration_s: mel.duration_s,
        windows: windows.len(),
        scores: acc,
    })
}

/// Indices and scores of the `k` highest scores, best first (ties by label order).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_is_sorted_and_stable() {
        assert_eq!(
            top_k(&[0.1, 0.9, 0.5, 0.9], 3),
            [(1, 0.9), (3, 0.9), (2, 0.5)]
        );
    }
}

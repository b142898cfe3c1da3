//! Turns raw log-mel frames into the model input: pad or cut to the frames fed, then normalise.

use super::manifest::Manifest;

/// Builds the `manifest.frames_fed(frames) × mel_bins` input from `frames` raw log-mel frames.
///
/// A fixed-input model (AST) gets exactly `window_frames`: missing frames are zeros in log-mel
/// units appended at the end, and extra frames are cut, both before normalisation, exactly as
/// the AST feature extractor does. A `dynamic_frames` model (BEATs) gets the frames there are
/// (rounded down to its `frame_multiple`), as its own feature extraction does; only a window
/// shorter than one `frame_multiple` is padded, the same way, to one.
pub fn prepare_window(manifest: &Manifest, log_mel: &[f32], frames: usize) -> Vec<f32> {
    let bins = manifest.fbank.mel_bins;
    let want = manifest.frames_fed(frames);
    let used = frames.min(want).min(log_mel.len() / bins);
    let n = &manifest.normalize;
    let divisor = n.std * n.std_factor;
    let mut out = Vec::with_capacity(want * bins);
    out.extend(
        log_mel[..used * bins]
            .iter()
            .map(|&x| (x - n.mean) / divisor),
    );
    out.resize(want * bins, (0.0 - n.mean) / divisor);
    out
}

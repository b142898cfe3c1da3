//! Turns raw log-mel frames into the model input: pad or cut to the window, then normalise.

use super::Manifest;

/// Builds the `window_frames × mel_bins` input from `frames` raw log-mel frames.
///
/// Missing frames are zeros in log-mel units appended at the end, and extra frames are cut,
/// both before normalisation, exactly as the AST feature extractor does. Models that accept
/// any length (BEATs) get the same treatment so that one optimised plan serves every window.
pub fn prepare_window(manifest: &Manifest, log_mel: &[f32], frames: usize) -> Vec<f32> {
    let bins = manifest.fbank.mel_bins;
    let want = manifest.window_frames;
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

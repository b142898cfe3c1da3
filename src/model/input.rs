//! Turns raw frames into the model input: pad or cut to the frames fed, then normalise (log-mel)
//! or scale (samples).

use super::manifest::Manifest;

/// Builds the `manifest.frames_fed(frames) × frame_bins` input from `frames` raw frames.
///
/// A fixed-input model (AST) gets exactly `window_frames`: missing frames are zeros in log-mel
/// units appended at the end, and extra frames are cut, both before normalisation, exactly as
/// the AST feature extractor does. A `dynamic_frames` model (BEATs) gets the frames there are
/// (rounded down to its `frame_multiple`), as its own feature extraction does; only a window
/// shorter than one `frame_multiple` is padded, the same way, to one. A waveform model's
/// frames are blocks of samples: they are multiplied by `waveform.scale`, and missing samples
/// are silence (zeros) at the end, as BirdNET pads the end of a file.
pub fn prepare_window(manifest: &Manifest, raw: &[f32], frames: usize) -> Vec<f32> {
    let bins = manifest.frame_bins();
    let want = manifest.frames_fed(frames);
    let used = frames.min(want).min(raw.len() / bins);
    let raw = &raw[..used * bins];
    let mut out = Vec::with_capacity(want * bins);
    match (&manifest.normalize, &manifest.waveform) {
        (Some(n), _) => {
            let divisor = n.std * n.std_factor;
            out.extend(raw.iter().map(|&x| (x - n.mean) / divisor));
            out.resize(want * bins, (0.0 - n.mean) / divisor);
        }
        (None, w) => {
            let scale = w.as_ref().map_or(1.0, |w| w.scale);
            out.extend(raw.iter().map(|&x| x * scale));
            out.resize(want * bins, 0.0);
        }
    }
    out
}

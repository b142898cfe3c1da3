//! Audio in: decode files (WAV, FLAC, Ogg/Vorbis), downmix to mono, resample to the model rate.

mod decode;
mod finite;
mod resample;

pub use decode::{AudioError, AudioFile};
pub use finite::{nonfinite_total, replace_nonfinite};
pub use resample::{ResampleError, Resampler, MAX_SOURCE_RATE, MIN_SOURCE_RATE};

/// Averages interleaved frames of `channels` channels into mono, appending to `out`;
/// non-finite samples become silence (see [`replace_nonfinite`]).
pub fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    let start = out.len();
    if channels <= 1 {
        out.extend_from_slice(interleaved);
    } else {
        let scale = 1.0 / channels as f32;
        out.extend(
            interleaved
                .chunks_exact(channels)
                .map(|f| f.iter().sum::<f32>() * scale),
        );
    }
    replace_nonfinite(&mut out[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix_into(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, [0.5, 0.5, 0.0]);
    }
}

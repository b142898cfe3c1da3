//! Kaldi mel filterbank weights, stored sparsely (each triangle touches a few FFT bins).

/// Kaldi's mel scale: 1127 ln(1 + f / 700).
fn mel(freq: f64) -> f64 {
    1127.0 * (1.0 + freq / 700.0).ln()
}

/// One triangular filter: the first FFT bin it touches and its weights from there on.
#[derive(Debug, Clone)]
pub(crate) struct Triangle {
    pub first_bin: usize,
    pub weights: Vec<f64>,
}

/// Builds `num_bins` triangles exactly as `torchaudio.compliance.kaldi.get_mel_banks`
/// (without VTLN): points evenly spaced in mel between `low` and `high`, evaluated at
/// the centre frequency of FFT bins `0..fft_len/2`; the Nyquist bin gets no weight.
///
/// A triangle that covers no FFT bin (possible with 128 bins and a 512-point FFT)
/// stays empty, so its energy is 0 and its log is the floor, as in torchaudio.
pub(crate) fn mel_banks(
    num_bins: usize,
    fft_len: usize,
    sample_rate: f64,
    low: f64,
    high: f64,
) -> Vec<Triangle> {
    let num_fft_bins = fft_len / 2;
    let bin_width = sample_rate / fft_len as f64;
    let mel_low = mel(low);
    let mel_high = mel(high);
    let delta = (mel_high - mel_low) / (num_bins as f64 + 1.0);
    (0..num_bins)
        .map(|b| {
            let left = mel_low + b as f64 * delta;
            let centre = mel_low + (b as f64 + 1.0) * delta;
            let right = mel_low + (b as f64 + 2.0) * delta;
            let mut first_bin = None;
            let mut weights = Vec::new();
            for k in 0..num_fft_bins {
                let m = mel(bin_width * k as f64);
                let up = (m - left) / (centre - left);
                let down = (right - m) / (right - centre);
                let w = up.min(down).max(0.0);
                if w > 0.0 {
                    let first = *first_bin.get_or_insert(k);
                    // Triangles are convex, so non-zero weights are contiguous.
                    weights.resize(k - first, 0.0);
                    weights.push(w);
                }
            }
            Triangle {
                first_bin: first_bin.unwrap_or(0),
                weights,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_triangles_are_empty_at_128_bins() {
        // Kaldi refuses this setting; torchaudio yields empty filters for the lowest bins.
        let banks = mel_banks(128, 512, 16000.0, 20.0, 8000.0);
        assert_eq!(banks.len(), 128);
        // torchaudio's get_mel_banks(128, 512, 16000, 20, 0) leaves exactly bin 3 empty.
        let empty: Vec<usize> = (0..128).filter(|&b| banks[b].weights.is_empty()).collect();
        assert_eq!(empty, [3]);
    }

    #[test]
    fn weights_peak_below_one() {
        for t in mel_banks(80, 512, 16000.0, 20.0, 8000.0) {
            assert!(t.weights.iter().all(|&w| w > 0.0 && w <= 1.0));
            assert!(t.first_bin + t.weights.len() <= 256);
        }
    }
}

//! Calibration: the level of a 94 dB / 1 kHz calibrator tone in dBFS, checked to be a steady
//! 1 kHz tone well above the background, from which the dBFS → dB SPL offset follows.

use realfft::RealFftPlanner;

use super::meter::to_db;

/// A measured calibrator tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    /// Frequency of the tone, Hz.
    pub frequency_hz: f64,
    /// Level of the tone alone (the background removed), dBFS (full-scale sine = 0).
    pub dbfs: f64,
    /// Highest minus lowest level of the one-second segments, dB.
    pub spread_db: f64,
    /// Seconds measured.
    pub seconds: f64,
}

/// Why a recording is not a usable calibrator tone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// Too short.
    #[error("{0:.1} s of audio is too short: record the calibrator for at least 3 s")]
    TooShort(f64),
    /// Clipped samples.
    #[error(
        "the signal clips (peak {0:.3} of full scale): lower the input gain and measure again"
    )]
    Clipped(f64),
    /// Not 1 kHz.
    #[error("the loudest tone is at {0:.0} Hz; a sound calibrator gives 1000 Hz")]
    NotOneKilohertz(f64),
    /// Too much else.
    #[error("the tone is only {0:.0} % of the energy: the background is too loud or this is not a calibrator")]
    Noisy(f64),
    /// Level changes.
    #[error("the level varied by {0:.2} dB between seconds: hold the calibrator steady on the microphone")]
    Unsteady(f64),
}

/// Half-width of the band that counts as the tone, Hz.
const BAND_HZ: usize = 20;

/// Measures a calibrator tone in `samples` (mono, `rate` Hz). The first half second is
/// skipped (fitting the calibrator); the rest is cut into one-second segments, each measured
/// with a Hann-windowed spectrum: the tone is the energy within ±20 Hz of the peak.
pub fn measure_tone(samples: &[f32], rate: u32) -> Result<Tone, CalibrationError> {
    let n = rate as usize;
    let skip = n / 2;
    let seconds = samples.len().saturating_sub(skip) as f64 / f64::from(rate);
    if n == 0 || seconds < 2.5 {
        return Err(CalibrationError::TooShort(
            samples.len() as f64 / f64::from(rate.max(1)),
        ));
    }
    let peak = samples.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if peak >= 0.999 {
        return Err(CalibrationError::Clipped(f64::from(peak)));
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let hann: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let (mut input, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let mut segments = Vec::new();
    for seg in samples[skip..].chunks_exact(n) {
        let mean = seg.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let ms = seg
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        for ((d, &x), w) in input.iter_mut().zip(seg).zip(&hann) {
            *d = (f64::from(x) - mean) * w;
        }
        // The plan matches the buffers' lengths, so this cannot fail.
        let _ = fft.process(&mut input, &mut spectrum);
        let power: Vec<f64> = spectrum.iter().map(|c| c.norm_sqr()).collect();
        let bin_hz = f64::from(rate) / n as f64;
        let low = (20.0 / bin_hz).ceil() as usize;
        let k = (low..power.len())
            .max_by(|&a, &b| power[a].total_cmp(&power[b]))
            .unwrap_or(low);
        let band: f64 = power[k.saturating_sub(BAND_HZ)..(k + BAND_HZ + 1).min(power.len())]
            .iter()
            .sum();
        let total: f64 = power[1..].iter().sum();
        let fraction = band / total.max(1e-300);
        segments.push((k as f64 * bin_hz, fraction, ms * fraction));
    }
    let count = segments.len() as f64;
    let frequency_hz = segments.iter().map(|s| s.0).sum::<f64>() / count;
    if (frequency_hz - 1000.0).abs() > 20.0 {
        return Err(CalibrationError::NotOneKilohertz(frequency_hz));
    }
    let fraction = segments.iter().map(|s| s.1).fold(1.0, f64::min);
    if fraction < 0.9 {
        return Err(CalibrationError::Noisy(fraction * 100.0));
    }
    let levels: Vec<f64> = segments.iter().map(|s| to_db(s.2, 0.0)).collect();
    let spread_db = levels.iter().fold(f64::MIN, |m, &x| m.max(x))
        - levels.iter().fold(f64::MAX, |m, &x| m.min(x));
    if spread_db > 0.5 {
        return Err(CalibrationError::Unsteady(spread_db));
    }
    let mean_ms = segments.iter().map(|s| s.2).sum::<f64>() / count;
    Ok(Tone {
        frequency_hz,
        dbfs: to_db(mean_ms, 0.0),
        spread_db,
        seconds: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, f: f64, amplitude: f64, seconds: f64, noise: f64) -> Vec<f32> {
        let mut rng = crate::noise::Noise::new(1);
        (0..(seconds * f64::from(rate)) as usize)
            .map(|i| {
                let r = f64::from(rng.uniform());
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * f * t).sin() + noise * r) as f32
            })
            .collect()
    }

    #[test]
    fn a_calibrator_tone_is_measured_to_a_hundredth_of_a_db() {
        // Amplitude 0.1: 20·log10(0.1) = −20 dBFS by the full-scale-sine convention.
        for rate in [48_000, 44_100, 16_000] {
            let t = measure_tone(&tone(rate, 1000.0, 0.1, 5.0, 0.002), rate).expect("tone");
            assert!((t.dbfs + 20.0).abs() < 0.01, "{rate}: {t:?}");
            assert!((t.frequency_hz - 1000.0).abs() < 1.5);
        }
    }

    #[test]
    fn what_is_not_a_calibrator_is_refused_with_the_reason() {
        let r = 48_000;
        let e = |x: Vec<f32>| measure_tone(&x, r).expect_err("refused");
        assert!(matches!(
            e(tone(r, 1000.0, 0.1, 1.0, 0.0)),
            CalibrationError::TooShort(_)
        ));
        assert!(matches!(
            e(tone(r, 1000.0, 1.2, 4.0, 0.0)),
            CalibrationError::Clipped(_)
        ));
        assert!(matches!(
            e(tone(r, 250.0, 0.1, 4.0, 0.0)),
            CalibrationError::NotOneKilohertz(_)
        ));
        assert!(matches!(
            e(tone(r, 1000.0, 0.01, 4.0, 0.3)),
            CalibrationError::Noisy(_)
        ));
        let mut ramp = tone(r, 1000.0, 0.1, 4.0, 0.0);
        ramp[r as usize * 3..].iter_mut().for_each(|x| *x *= 0.5);
        assert!(matches!(e(ramp), CalibrationError::Unsteady(_)));
    }
}

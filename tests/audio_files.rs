//! Decoding every supported encoding, downmix and resampling, and broken files.

use soundsentry::audio::{AudioFile, Resampler};

use crate::util::fixture;

/// The fixture tone: 440 Hz, amplitude 0.4 (see tools/make_audio_fixtures.sh).
fn tone_error(x: &[f32], rate: u32) -> f32 {
    // Fit the phase by correlation, then compare sample by sample.
    let w = 2.0 * std::f32::consts::PI * 440.0 / rate as f32;
    let (mut s, mut c) = (0.0f32, 0.0f32);
    for (i, v) in x.iter().enumerate() {
        s += v * (w * i as f32).sin();
        c += v * (w * i as f32).cos();
    }
    let phase = c.atan2(s);
    x.iter()
        .enumerate()
        .skip(rate as usize / 50)
        .take(x.len() - rate as usize / 25)
        .map(|(i, v)| (v - 0.4 * (w * i as f32 + phase).sin()).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_encoding_decodes_to_the_same_tone() {
    for (name, rate, channels, tolerance) in [
        ("tone-16k-s16.wav", 16_000, 1, 1e-3),
        ("tone-16k-u8.wav", 16_000, 1, 1.5e-2),
        ("tone-16k-s24.wav", 16_000, 1, 1e-3),
        ("tone-16k-s32.wav", 16_000, 1, 1e-3),
        ("tone-16k-f32.wav", 16_000, 1, 1e-3),
        ("tone-16k.flac", 16_000, 1, 1e-3),
        ("tone-16k.ogg", 16_000, 1, 3e-2),
        ("tone-48k-stereo.wav", 48_000, 2, 1e-3),
        ("tone-44k1-6ch.flac", 44_100, 6, 1e-3),
        ("tone-22k05-stereo.ogg", 22_050, 2, 3e-2),
    ] {
        let mut f = AudioFile::open(&fixture(&format!("audio/{name}"))).expect(name);
        assert_eq!((f.sample_rate(), f.channels()), (rate, channels), "{name}");
        let x = f.read_all().expect(name);
        assert!(
            (x.len() as i64 - rate as i64 / 2).abs() <= 2048,
            "{name}: {} samples",
            x.len()
        );
        let err = tone_error(&x, rate);
        assert!(err <= tolerance, "{name}: max error {err}");
    }
}

#[test]
fn resampled_files_match_the_native_rate_file() {
    let native = AudioFile::open(&fixture("audio/tone-16k-s16.wav"))
        .expect("open")
        .read_all()
        .expect("read");
    let mut f = AudioFile::open(&fixture("audio/tone-48k-stereo.wav")).expect("open");
    let x = f.read_all().expect("read");
    let mut r = Resampler::new(48_000, 16_000).expect("resampler");
    let mut y = Vec::new();
    r.process(&x, &mut y).expect("resample");
    r.finish(&mut y).expect("finish");
    assert_eq!(y.len(), native.len());
    assert!(tone_error(&y, 16_000) < 2e-3);
}

#[test]
fn broken_files_fail_with_one_line_naming_file_and_reason() {
    for (name, reason) in [
        ("empty.wav", "empty file"),
        ("corrupt.wav", "not a supported audio file"),
        ("not-audio.txt", "not a supported audio file"),
        ("truncated.wav", "truncated"),
        ("truncated.flac", "truncated"),
        ("no-samples.wav", "no audio samples"),
        ("missing.wav", "No such file"),
    ] {
        let path = fixture(&format!("audio/{name}"));
        let err = AudioFile::open(&path).and_then(|mut f| f.read_all());
        let msg = err.expect_err(name).to_string();
        assert!(msg.contains(name), "{name}: {msg}");
        assert!(msg.contains(reason), "{name}: {msg}");
        assert!(!msg.contains('\n'), "{name}: {msg}");
    }
}

/// Issue 25 (8): a 244-byte WAV at 1 Hz took 25 s and 363 MB in `classify`. Rates below the
/// floor are refused at once, with one line.
#[test]
fn issue_25_absurd_source_rates_are_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    for rate in [1, 3_999] {
        let path = dir.path().join(format!("r{rate}.wav"));
        crate::util::write_wav_f32(&path, rate, &[0.1; 50]);
        let out = crate::util::bin()
            .arg("classify")
            .arg(&path)
            .arg("--model")
            .arg(crate::util::repo("models/sitehome-tiny-ast"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{rate}: {err}");
        // One line for the file (naming it), then the summary of the run.
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(&format!("r{rate}.wav")), "{rate}: {err}");
        assert!(first.contains("from 4000 to 768000 Hz"), "{rate}: {err}");
    }
    assert!(Resampler::new(4_000, 16_000).is_ok());
    assert!(Resampler::new(1, 16_000).is_err());
}

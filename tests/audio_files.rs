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

/// A 16-bit PCM WAV with `channels` interleaved channels, whose `fmt ` chunk is `fmt_len`
/// bytes (16 plain; 18 or more: a WaveFormatEx cbSize, then cbSize bytes of extension data).
fn pcm_wav(rate: u32, channels: u16, fmt_len: u32, frames: &[Vec<i16>]) -> Vec<u8> {
    let block = 2 * u32::from(channels);
    let data = block * frames.len() as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 8 + fmt_len + 8 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&fmt_len.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block).to_le_bytes());
    b.extend_from_slice(&(block as u16).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    if fmt_len >= 18 {
        b.extend_from_slice(&((fmt_len - 18) as u16).to_le_bytes());
        b.resize(b.len() + (fmt_len - 18) as usize, 0);
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for frame in frames {
        assert_eq!(frame.len(), usize::from(channels));
        for s in frame {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    b
}

/// Issue 25 (9): 255-channel WAVs (more than the 26 speaker positions a WAV can name) and PCM
/// `fmt ` chunks of 20 bytes (cbSize = 2, as some recorders write them; sox and Python's
/// `wave` read them) were refused as "not a supported audio file". Both decode, with the
/// channels averaged as for any other file.
#[test]
fn issue_25_many_channels_and_long_fmt_chunks_decode() {
    let dir = tempfile::tempdir().expect("tmp");
    // Every channel of a frame holds another value; the decoded sample is their mean.
    for (channels, fmt_len) in [
        (255u16, 16u32),
        (255, 18),
        (33, 40),
        (1, 20),
        (2, 20),
        (3, 22),
    ] {
        let frames: Vec<Vec<i16>> = (0..1600)
            .map(|i| {
                (0..channels)
                    .map(|c| {
                        (i32::from(c) - i32::from(channels - 1) / 2) as i16 * 8 + (i % 100) as i16
                    })
                    .collect()
            })
            .collect();
        let path = dir.path().join(format!("c{channels}-f{fmt_len}.wav"));
        std::fs::write(&path, pcm_wav(16_000, channels, fmt_len, &frames)).expect("write");
        let name = path.display().to_string();
        let mut f = AudioFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (f.sample_rate(), f.channels()),
            (16_000, usize::from(channels)),
            "{name}"
        );
        let x = f.read_all().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(x.len(), frames.len(), "{name}");
        for (i, (v, frame)) in x.iter().zip(&frames).enumerate() {
            let mean = frame.iter().map(|&s| f64::from(s)).sum::<f64>() / f64::from(channels);
            let want = (mean / 32768.0) as f32;
            assert!((v - want).abs() < 1e-6, "{name}: sample {i}: {v} vs {want}");
        }
        // And the whole command line takes it.
        let out = crate::util::bin()
            .arg("levels")
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

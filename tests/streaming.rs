//! `classify` and `fbank` stream a file: memory does not grow with its length, and the
//! windows written are the windows the model is fed.

use crate::util::{bin, fixture, run_ok};

/// The peak resident set of `cmd`, in KiB, as the command reports it at its end
/// (`--log-level debug`: `command finished peak_rss_kib=…`, its own VmHWM).
fn peak_kib(cmd: &mut std::process::Command) -> u64 {
    let out = cmd.arg("--log-level").arg("debug").output().expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    log.lines()
        .filter(|l| l.contains("command finished"))
        .find_map(|l| l.split("peak_rss_kib=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak in the log:\n{log}"))
}

/// Issue 25 (7): `classify` and `fbank` read the whole file into memory (a 2 GB WAV passed
/// 6 GB RSS). A 10-minute file held its samples, frames and windows: ~100 MB more than a
/// 10-second one. Streamed, the two peak within a few MB of each other.
#[test]
fn issue_25_classify_and_fbank_memory_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let short = dir.path().join("short.wav");
    let long = dir.path().join("long.wav");
    let tone = |seconds: f64| crate::util::sine(16_000, 440.0, 0.2, seconds);
    crate::util::write_wav_f32(&short, 16_000, &tone(10.0));
    crate::util::write_wav_f32(&long, 16_000, &tone(600.0));
    let model = crate::util::repo("models/sitehome-tiny-ast");
    let classify = |file: &std::path::Path| {
        peak_kib(bin().arg("classify").arg(file).arg("--model").arg(&model))
    };
    let (a, b) = (classify(&short), classify(&long));
    eprintln!("classify peak RSS: 10 s {a} KiB, 10 min {b} KiB");
    assert!(b < a + 20_000, "classify: 10 s {a} KiB, 10 min {b} KiB");
    let fbank = |file: &std::path::Path| {
        let out = dir.path().join("out.npy");
        peak_kib(
            bin()
                .arg("fbank")
                .arg(file)
                .arg("--model")
                .arg(&model)
                .arg("--out")
                .arg(out),
        )
    };
    let (a, b) = (fbank(&short), fbank(&long));
    eprintln!("fbank peak RSS: 10 s {a} KiB, 10 min {b} KiB");
    assert!(b < a + 20_000, "fbank: 10 s {a} KiB, 10 min {b} KiB");
}

/// A `dynamic_frames` model's windows end to end: a 16 s file is 1,598 frames, a 998-frame
/// window and a 600-frame one fed as 592 (37 whole patches); `--raw` gives all 1,598.
#[test]
fn fbank_of_a_dynamic_model_writes_the_frames_it_is_fed() {
    use ndarray_npy::ReadNpyExt;
    let dir = tempfile::tempdir().expect("tmp");
    let model = fixture("models/tiny-beats-official");
    let wav = fixture("beats-official/long.wav");
    let read = |p: &std::path::Path| {
        ndarray::ArrayD::<f32>::read_npy(std::fs::File::open(p).expect("open")).expect("npy")
    };
    let fed = dir.path().join("fed.npy");
    let raw = dir.path().join("raw.npy");
    run_ok(
        bin()
            .arg("fbank")
            .arg(&wav)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&fed),
    );
    run_ok(
        bin()
            .arg("fbank")
            .arg(&wav)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&raw)
            .arg("--raw"),
    );
    let (fed, raw) = (read(&fed), read(&raw));
    assert_eq!(raw.shape(), [1598, 128]);
    assert_eq!(fed.shape(), [998 + 592, 128]);
    // The fed frames are the raw ones, normalised: (x - mean) / (2 std).
    let norm = |x: f32| (x - 15.41663) / (2.0 * 6.55582);
    for (i, j) in [(0, 0), (997, 997), (998, 998), (1589, 1589)] {
        for b in [0, 64, 127] {
            let (f, r) = (fed[[i, b]], norm(raw[[j, b]]));
            assert!((f - r).abs() < 1e-5, "frame {i} bin {b}: {f} vs {r}");
        }
    }
}

//! The `soundsentry` binary end to end: classify, fbank, run and check-config.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{bin, fixture, json_lines, repo, run_ok};

/// Runs a command that must fail with exit status 1; returns its output and stderr.
fn run_fail(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().expect("spawn soundsentry");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Asserts that every event started in `events` was also ended.
fn assert_every_start_ended(events: &[Value]) {
    let starts = events.iter().filter(|e| e["state"] == "start").count();
    let ends = events.iter().filter(|e| e["state"] == "end").count();
    assert_eq!(starts, ends, "every started event is ended");
}

/// Label → score of the `top` list of one `classify --json` line.
fn top_scores(line: &Value) -> std::collections::BTreeMap<String, f64> {
    line["top"]
        .as_array()
        .expect("top")
        .iter()
        .map(|t| {
            let label = t["label"].as_str().expect("label").to_owned();
            (label, t["score"].as_f64().expect("score"))
        })
        .collect()
}

fn tiny_ast() -> PathBuf {
    fixture("models/tiny-ast")
}

#[test]
fn classify_prints_top_k_and_json() {
    let sample = repo("samples/demo-20s.wav");
    let out = run_ok(
        bin()
            .args(["classify", "-k", "3", "--model"])
            .arg(tiny_ast())
            .arg(&sample),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(20.0 s, 2 windows, mean)"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");

    let mean = json_lines(&run_ok(
        bin()
            .args(["classify", "--json", "-k", "10", "--model"])
            .arg(tiny_ast())
            .arg(&sample),
    ));
    let max = json_lines(&run_ok(
        bin()
            .args([
                "classify",
                "--json",
                "-k",
                "10",
                "--aggregate",
                "max",
                "--model",
            ])
            .arg(tiny_ast())
            .arg(&sample),
    ));
    let (mean, max) = (top_scores(&mean[0]), top_scores(&max[0]));
    assert_eq!(mean.len(), 10);
    for (label, m) in &mean {
        assert!(
            max[label] >= *m - 1e-6,
            "{label}: max {} < mean {m}",
            max[label]
        );
        assert!((0.0..=1.0).contains(m));
    }
}

#[test]
fn classify_reads_any_rate_and_layout() {
    // The same tone as 16 kHz mono WAV and as 48 kHz stereo WAV: nearly the same scores.
    let scores = |f: &str| -> Vec<f64> {
        let out = run_ok(
            bin()
                .args(["classify", "--json", "-k", "10", "--model"])
                .arg(tiny_ast())
                .arg(fixture(f)),
        );
        top_scores(&json_lines(&out)[0]).into_values().collect()
    };
    let a = scores("audio/tone-16k-s16.wav");
    let b = scores("audio/tone-48k-stereo.wav");
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.02, "scores differ by {worst}");
}

#[test]
fn classify_reports_each_bad_file_and_still_prints_the_good_ones() {
    let bad = [
        "empty.wav",
        "corrupt.wav",
        "truncated.wav",
        "not-audio.txt",
        "too-short.wav",
        "no-samples.wav",
    ];
    let mut cmd = bin();
    cmd.args(["classify", "--model"])
        .arg(tiny_ast())
        .arg(fixture("audio/tone-16k.flac"));
    for b in bad {
        cmd.arg(fixture(&format!("audio/{b}")));
    }
    let out = cmd.output().expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("tone-16k.flac"), "{stdout}");
    for b in bad {
        let line = stderr
            .lines()
            .find(|l| l.contains(b))
            .unwrap_or_else(|| panic!("no error line for {b}:\n{stderr}"));
        assert!(line.starts_with("error: "), "{line}");
    }
    assert!(stderr.contains("too short"), "{stderr}");
    assert!(
        stderr.contains("6 of 7 files could not be classified"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn broken_model_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, stderr) = run_fail(
        bin()
            .args(["classify", "--model"])
            .arg(dir.path())
            .arg(fixture("audio/tone-16k.flac")),
    );
    assert!(
        stderr.contains("model.toml") && stderr.contains("No such file"),
        "{stderr}"
    );
}

fn read_npy3(path: &Path) -> ndarray::ArrayD<f32> {
    use ndarray_npy::ReadNpyExt;
    ndarray::ArrayD::<f32>::read_npy(std::fs::File::open(path).expect("npy")).expect("read npy")
}

#[test]
fn fbank_writes_raw_frames_and_model_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw.npy");
    let win = dir.path().join("win.npy");
    let wav = fixture("audio/tone-16k-s16.wav");
    run_ok(
        bin()
            .arg("fbank")
            .arg(&wav)
            .arg("--model")
            .arg(tiny_ast())
            .arg("--out")
            .arg(&raw)
            .arg("--raw"),
    );
    run_ok(
        bin()
            .arg("fbank")
            .arg(&wav)
            .arg("--model")
            .arg(tiny_ast())
            .arg("--out")
            .arg(&win),
    );
    let raw = read_npy3(&raw);
    let win = read_npy3(&win);
    // 8000 samples → 1 + (8000 - 400) / 160 = 48 frames.
    assert_eq!(raw.shape(), [48, 128]);
    assert_eq!(win.shape(), [1, 1024, 128]);
    // AST normalisation of frame values, then zero (log-mel) padding, normalised.
    let norm = |x: f32| (x + 4.267_739_3) / (2.0 * 4.568_997_4);
    assert!((win[[0, 10, 60]] - norm(raw[[10, 60]])).abs() < 1e-5);
    assert!((win[[0, 1000, 5]] - norm(0.0)).abs() < 1e-6);
}

fn write_config(dir: &Path, audio: &Path, extra: &str) -> PathBuf {
    write_config_with_model_keys(dir, audio, "", extra)
}

/// A config on the tiny AST and `audio`, with more `[model]` keys and more sections.
fn write_config_with_model_keys(dir: &Path, audio: &Path, model: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("soundsentry.toml");
    let text = format!(
        "sensor_id = \"test-sensor\"\n[model]\npath = {:?}\n{model}[source]\npath = {:?}\n{extra}",
        tiny_ast(),
        audio
    );
    std::fs::write(&cfg, text).expect("write config");
    cfg
}

#[test]
fn run_streams_the_sample_and_every_event_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &repo("samples/demo-20s.wav"),
        "[detect]\non = 0.55\noff = 0.45\nmin_duration = \"1s\"\nhold = \"1s\"\n\
         [output]\nscores = true\ntop_k = 2\n",
    );
    let out = run_ok(bin().arg("run").arg("--config").arg(&cfg));
    let lines = json_lines(&out);
    let scores: Vec<_> = lines.iter().filter(|l| l["type"] == "scores").collect();
    assert_eq!(scores.len(), 20, "one scores line per 1 s hop over 20 s");
    let events: Vec<_> = lines.iter().filter(|l| l["type"].is_null()).collect();
    assert!(
        !events.is_empty(),
        "the random model crosses 0.55 somewhere"
    );
    let mut open = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["v"], 1);
        assert_eq!(e["sensor"], "test-sensor");
        assert_eq!(e["model"], "tiny-ast");
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1));
        let id = e["id"].as_str().expect("id").to_owned();
        match e["state"].as_str() {
            Some("start") => assert!(open.insert(id, e["label"].clone()).is_none()),
            Some("update") => assert!(open.contains_key(&id)),
            Some("end") => {
                assert_eq!(open.remove(&id).as_ref(), Some(&e["label"]));
                let d = e["duration_s"].as_f64().expect("duration");
                let (s, t) = (
                    e["start_offset_s"].as_f64().expect("s"),
                    e["end_offset_s"].as_f64().expect("e"),
                );
                assert!((t - s - d).abs() < 1e-6 && (0.0..=20.0).contains(&t));
            }
            other => panic!("bad state {other:?}"),
        }
    }
    assert!(open.is_empty(), "events left open: {open:?}");
}

#[test]
fn run_on_a_corrupt_stream_ends_open_events_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long file cut in the middle: analysed up to the cut, then a clear error.
    let full = std::fs::read(repo("samples/demo-20s.wav")).expect("sample");
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &full[..full.len() / 2]).expect("write");
    let cfg = write_config(dir.path(), &cut, "[detect]\non = 0.5\noff = 0.4\n");
    let (out, stderr) = run_fail(bin().arg("run").arg("--config").arg(&cfg));
    assert!(
        stderr.contains("cut.wav") && stderr.contains("truncated"),
        "{stderr}"
    );
    let events = json_lines(&out);
    assert_every_start_ended(&events);
}

#[test]
fn realtime_replay_takes_the_audio_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), &fixture("audio/tone-16k-s16.wav"), "");
    let t = std::time::Instant::now();
    run_ok(bin().arg("run").arg("--realtime").arg("--config").arg(&cfg));
    // Chunks (100 ms by default) leave at the pace they were recorded: the last one 0.4 s
    // after the first. (0.45 s here counted on 50 ms of start-up and failed on a fast run.)
    assert!(
        t.elapsed().as_secs_f64() >= 0.4,
        "0.5 s of audio replayed in {:?}",
        t.elapsed()
    );
}

#[test]
fn check_config_reports_every_error_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[model]\npath = \"nowhere\"\nthread = 2\n[source]\nkind = \"file\"\npath = \"a.wav\"\n\
         [analysis]\nhop = \"fast\"\n[detect]\nof = 0.2\n",
    )
    .expect("write");
    let (_, stderr) = run_fail(bin().arg("check-config").arg(&cfg));
    assert!(stderr.contains("3 errors"), "{stderr}");
    for key in [
        "model.thread: unknown key",
        "detect.of: unknown key",
        "analysis.hop: \"fast\"",
    ] {
        assert!(stderr.contains(key), "{key} missing:\n{stderr}");
    }
}

/// `run --mqtt` goes through the same rules as `mqtt.url` in the file: an mqtts:// broker
/// without `mqtt.ca_file` and a URL that is no broker are refused before anything runs.
#[test]
fn run_mqtt_override_is_validated_like_the_file() {
    let demo = repo("config/demo.toml");
    let (_, stderr) = run_fail(
        bin()
            .args(["run", "--mqtt", "mqtts://127.0.0.1:1", "--config"])
            .arg(&demo),
    );
    assert!(
        stderr.contains("mqtt.ca_file: an mqtts:// broker needs the CA file"),
        "{stderr}"
    );
    let (_, stderr) = run_fail(
        bin()
            .args(["run", "--mqtt", "http://127.0.0.1:1", "--config"])
            .arg(&demo),
    );
    assert!(stderr.contains("--mqtt http://127.0.0.1:1: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_config_resolves_labels_against_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &fixture("audio/tone-16k-s16.wav"),
        "[[detect.watch]]\nname = \"Alarm\"\nlabels = [\"Label 001\", \"label_002\", \"Glass\"]\n",
    );
    let (_, stderr) = run_fail(bin().arg("check-config").arg(&cfg));
    assert!(
        stderr.contains("detect.watch[0].labels[2]: \"Glass\" is not a label of the model"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("labels[0]") && !stderr.contains("labels[1]"),
        "{stderr}"
    );
    let good = run_ok(bin().arg("check-config").arg(repo("config/demo.toml")));
    assert!(String::from_utf8_lossy(&good.stdout).contains(": ok"));
    // Spelt as `run` takes it, too; one of the two, not both, and not neither.
    let flag = run_ok(
        bin()
            .args(["check-config", "--config"])
            .arg(repo("config/demo.toml")),
    );
    assert_eq!(flag.stdout, good.stdout);
    // Usage errors, status 2 as for any other.
    let usage = |cmd: &mut Command| {
        let out = cmd.output().expect("spawn soundsentry");
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let both = usage(
        bin()
            .arg("check-config")
            .arg(repo("config/demo.toml"))
            .arg("--config")
            .arg(repo("config/demo.toml")),
    );
    assert!(both.contains("cannot be used with"), "{both}");
    let neither = usage(bin().arg("check-config"));
    assert!(neither.contains("required"), "{neither}");
}

#[test]
fn sigint_during_a_realtime_run_ends_open_events_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &repo("samples/demo-20s.wav"),
        "[detect]\non = 0.5\noff = 0.4\n",
    );
    let child = bin()
        .args(["run", "--realtime", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out);
    assert_every_start_ended(&events);
    let last_end = events
        .iter()
        .filter_map(|e| e["end_offset_s"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        last_end < 15.0,
        "stopped early, not at the end of the file: {last_end}"
    );
}

#[test]
fn realtime_replay_scores_or_counts_every_window() {
    // Hop 10 ms at real-time pace: the model may not keep up; every hop must then be either
    // scored (one scores line) or counted as skipped, never lost silently.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &fixture("audio/tone-16k-s16.wav"),
        "[analysis]\nhop = \"10ms\"\n[output]\nscores = true\n",
    );
    let out = run_ok(bin().args(["run", "--realtime", "--config"]).arg(&cfg));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> u64 {
        let at = stderr
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("{name}: {stderr}"));
        stderr[at + name.len() + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("number")
    };
    let (scored, skipped) = (field("windows_total"), field("windows_skipped_total"));
    // 8000 samples → 48 frames → 48 hops of one frame.
    assert_eq!(scored + skipped, 48, "{stderr}");
    let lines = json_lines(&out);
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "scores").count() as u64,
        scored
    );
}

#[test]
fn cuda_device_without_a_usable_gpu_runs_on_the_cpu_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config_with_model_keys(
        dir.path(),
        &repo("samples/demo-20s.wav"),
        "threads = 2\ndevice = \"cuda\"\n",
        "",
    );
    let out = run_ok(bin().arg("run").arg("--config").arg(&cfg));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model.device = \"cuda\" unavailable; running on the CPU"),
        "{stderr}"
    );
    assert!(
        stderr.contains("device=cpu") && stderr.contains("threads=2"),
        "{stderr}"
    );
}

#[test]
fn the_documented_and_packaged_configurations_are_valid() {
    for rel in [
        "config/soundsentry.toml",
        "config/demo.toml",
        "packaging/soundsentry.toml",
    ] {
        if let Err(e) = soundsentry::config::Config::load(&repo(rel)) {
            panic!("{rel}: {e}");
        }
    }
}

/// Issue 25 (11): symphonia's own `ERROR probe reached EOF…` / `reached probe limit` lines
/// came before the promised one-line error, and `/dev/zero` was called "empty file". Now
/// each bad file gets exactly one line, naming it and the real reason.
#[test]
fn issue_25_unreadable_inputs_get_one_line_each_with_the_real_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            fixture("audio/not-audio.txt"),
            "no known audio format in its",
        ),
        (fixture("audio/corrupt.wav"), "not a supported audio file"),
        (fixture("audio/empty.wav"), "empty file"),
        (
            "/dev/zero".into(),
            "no known audio format in its first 1 MiB",
        ),
        (dir.path().to_owned(), "a directory"),
    ];
    let mut cmd = bin();
    cmd.args(["classify", "--model"]).arg(tiny_ast());
    for (path, _) in &cases {
        cmd.arg(path);
    }
    let out = cmd.output().expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    // One line a file, then the summary; nothing from the decoder's own logging.
    assert_eq!(lines.len(), cases.len() + 1, "{stderr}");
    assert!(!stderr.contains("probe"), "{stderr}");
    for ((path, reason), line) in cases.iter().zip(&lines) {
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains(reason), "{line} (wanted {reason:?})");
    }
    assert!(!lines[3].contains("empty"), "{}", lines[3]);
}

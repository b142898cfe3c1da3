//! Live sources: raw PCM on stdin gives the file source's events; a `command` source that
//! exits is restarted and its stderr is logged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, json_lines, repo, run_ok};

/// The demo's 20 s sample as mono f32le at its own rate, written to `dir`; (path, rate).
pub fn raw_sample(dir: &Path) -> (PathBuf, u32) {
    let mut file =
        soundsentry::audio::AudioFile::open(&repo("samples/demo-20s.wav")).expect("sample");
    let rate = file.sample_rate();
    let mut samples = Vec::new();
    while file.read_chunk(&mut samples).expect("decode") {}
    let path = dir.join("sample.f32");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, bytes).expect("write raw");
    (path, rate)
}

fn config(dir: &Path, source: &str) -> PathBuf {
    let cfg = dir.join("soundsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "sensor_id = \"src\"\n[model]\npath = {:?}\n[source]\n{source}\n\
             [analysis]\nhop = \"500ms\"\n[detect]\non = 0.4\noff = 0.25\nmin_duration = \"1s\"\nhold = \"2500ms\"\n",
            repo("models/sitehome-tiny-ast")
        ),
    )
    .expect("config");
    cfg
}

/// What must match between two runs of the same audio (ids and wall-clock times differ).
fn essence(events: &[Value]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["label"].to_string(),
                e["state"].to_string(),
                e["start_offset_s"].to_string(),
                format!("{:.4}", e["score"].as_f64().unwrap_or(-1.0)),
            )
        })
        .collect()
}

#[test]
fn raw_pcm_on_stdin_at_real_time_gives_the_file_sources_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let from_file = json_lines(&run_ok(bin().arg("run").arg("--config").arg(config(
        dir.path(),
        &format!("path = {:?}", repo("samples/demo-20s.wav")),
    ))));
    assert!(!from_file.is_empty());
    let (raw, rate) = raw_sample(dir.path());
    let cfg = config(
        dir.path(),
        &format!("kind = \"stdin\"\nformat = \"f32le\"\nrate = {rate}\nchannels = 1"),
    );
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // Feed it like a sound card would: 100 ms of audio every 100 ms.
    let bytes = std::fs::read(&raw).expect("raw");
    let mut stdin = daemon.stdin.take().expect("stdin");
    let step = rate as usize / 10 * 4;
    let start = Instant::now();
    for (i, piece) in bytes.chunks(step).enumerate() {
        let due = Duration::from_millis(100 * i as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        stdin.write_all(piece).expect("feed");
    }
    drop(stdin); // EOF ends the stream
    let out = daemon.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("windows_skipped_total=0"), "{log}");
    assert_eq!(essence(&json_lines(&out)), essence(&from_file));
}

#[test]
fn a_command_that_exits_is_restarted_and_its_stderr_logged() {
    let dir = tempfile::tempdir().expect("tmp");
    let (raw, rate) = raw_sample(dir.path());
    let script = format!(
        "head -c 64000 {}; echo 'camera stream lost' >&2; exit 3",
        raw.display()
    );
    let cfg = config(
        dir.path(),
        &format!(
            "kind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\nformat = \"f32le\"\n\
             rate = {rate}\nrestart_min = \"200ms\"\nrestart_max = \"400ms\""
        ),
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(20);
    while read().matches("source command ended; restarting").count() < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let status = daemon.wait().expect("wait");
    let log = read();
    assert!(status.success(), "{log}");
    assert!(
        log.matches("source command ended; restarting").count() >= 3,
        "{log}"
    );
    assert!(
        log.contains("camera stream lost"),
        "the command's stderr is logged: {log}"
    );
    assert!(log.contains("exit status: 3"), "{log}");
    assert!(log.contains("run finished"), "{log}");
}

//! Capture through real ALSA via cpal, fed from a known recording by an ALSA `file`-plugin
//! capture device defined in a test `.asoundrc`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, json_lines, read_stdout, repo, run_ok};

fn config(dir: &Path, source: &str) -> std::path::PathBuf {
    let cfg = dir.join("soundsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\n[source]\n{source}\n[analysis]\nhop = \"500ms\"\n\
             [output]\nscores = true\ntop_k = 11\n",
            repo("models/sitehome-tiny-ast")
        ),
    )
    .expect("config");
    cfg
}

/// Scores lines by window end (ms).
fn scores(lines: &[Value]) -> Vec<(i64, Vec<(String, f64)>)> {
    lines
        .iter()
        .filter(|l| l["type"] == "scores")
        .map(|l| {
            let end = (l["end_offset_s"].as_f64().expect("end") * 1000.0).round() as i64;
            let mut top: Vec<(String, f64)> = l["top"]
                .as_array()
                .expect("top")
                .iter()
                .map(|t| (t["label"].to_string(), t["score"].as_f64().expect("score")))
                .collect();
            top.sort_by(|a, b| a.0.cmp(&b.0));
            (end, top)
        })
        .collect()
}

#[test]
fn alsa_capture_gives_the_file_sources_scores() {
    let dir = tempfile::tempdir().expect("tmp");
    let (raw, rate) = crate::sources::raw_sample(dir.path());
    // A capture device reading the recording (f32, mono, its rate) through ALSA's file plugin.
    std::fs::write(
        dir.path().join(".asoundrc"),
        format!(
            "pcm.soundsentry_test {{\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n \
             infile {:?}\n format \"raw\"\n hint {{ show on description \"soundsentry test input\" }}\n}}\n",
            raw
        ),
    )
    .expect("asoundrc");
    let devices = run_ok(bin().arg("devices").env("HOME", dir.path()));
    let listed = String::from_utf8_lossy(&devices.stdout).into_owned();
    assert!(
        listed.contains("soundsentry_test: soundsentry test input"),
        "{listed}"
    );

    let file_run = json_lines(&run_ok(bin().arg("run").arg("--config").arg(config(
        dir.path(),
        &format!("path = {:?}", repo("samples/demo-20s.wav")),
    ))));
    let want = scores(&file_run);

    let cfg = config(
        dir.path(),
        &format!("kind = \"capture\"\ndevice = \"soundsentry_te\"\nrate = {rate}\nchannels = 1"),
    );
    let daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(daemon.id().to_string())
        .status();
    let started = Instant::now();
    let out = daemon.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded shutdown"
    );
    assert!(
        log.contains("capture started device=soundsentry_test"),
        "{log}"
    );
    let got = scores(&json_lines(&out));
    // ALSA's null device does not pace the file plugin: audio comes far faster than real time
    // and later audio overflows the ring (counted). The first 2 s always fit the 2 s ring, so
    // the windows ending by then must match the file source's exactly.
    let early: Vec<_> = got.iter().filter(|(end, _)| *end <= 2000).collect();
    assert!(!early.is_empty(), "no early window scored: {log}");
    for (end, top) in early {
        let (_, reference) = want
            .iter()
            .find(|(e, _)| e == end)
            .expect("same window in the file run");
        for ((la, a), (lb, b)) in top.iter().zip(reference) {
            assert_eq!(la, lb);
            assert!((a - b).abs() < 1e-5, "window {end} ms, {la}: {a} vs {b}");
        }
    }
}

#[test]
fn a_missing_capture_device_is_retried_and_the_daemon_stays_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        "kind = \"capture\"\ndevice = \"unplugged-usb-mic\"\nrate = 16000\n\
         restart_min = \"100ms\"\nrestart_max = \"400ms\"",
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(15);
    while read().matches("capture device unavailable").count() < 4 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        matches!(daemon.try_wait(), Ok(None)),
        "the daemon is still running: {}",
        read()
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    assert!(daemon.wait().expect("wait").success(), "{}", read());
    let text = read();
    assert!(
        text.matches("capture device unavailable").count() >= 4,
        "{text}"
    );
    assert!(
        text.contains(r#"no input device matches "unplugged-usb-mic""#),
        "{text}"
    );
}

#[test]
fn capture_resumes_when_the_device_appears() {
    let dir = tempfile::tempdir().expect("tmp");
    let (raw, rate) = crate::sources::raw_sample(dir.path());
    let cfg = config(
        dir.path(),
        &format!(
            "kind = \"capture\"\ndevice = \"soundsentry_late\"\nrate = {rate}\nchannels = 1\n\
             restart_min = \"200ms\"\nrestart_max = \"400ms\""
        ),
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    let reader = read_stdout(&mut daemon);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait = |needle: &str, n: usize| {
        let until = Instant::now() + Duration::from_secs(20);
        while read().matches(needle).count() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        read().matches(needle).count() >= n
    };
    assert!(wait("capture device unavailable", 2), "{}", read());
    // The microphone is plugged in: the device now exists.
    std::fs::write(
        dir.path().join(".asoundrc"),
        format!(
            "pcm.soundsentry_late {{\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n \
             infile {:?}\n format \"raw\"\n hint {{ show on description \"late input\" }}\n}}\n",
            raw
        ),
    )
    .expect("asoundrc");
    assert!(
        wait("capture started device=soundsentry_late", 1),
        "{}",
        read()
    );
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(daemon.id().to_string())
        .status();
    assert!(daemon.wait().expect("wait").success(), "{}", read());
    let out = reader.join().expect("reader");
    let windows = out
        .lines()
        .filter(|l| l.contains("\"type\":\"scores\""))
        .count();
    assert!(
        windows > 0,
        "windows are scored once audio arrives: {}",
        read()
    );
}

//! SIGHUP reloads the detector settings without stopping the stream; an invalid file keeps the
//! old settings and logs every error.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bin, repo};

fn write(cfg: &Path, detect: &str) {
    std::fs::write(
        cfg,
        format!(
            "sensor_id = \"hup\"\n[model]\npath = {:?}\n[source]\npath = {:?}\nrealtime = true\n\
             [analysis]\nhop = \"500ms\"\n[detect]\n{detect}",
            repo("models/sitehome-tiny-ast"),
            repo("samples/demo-20s.wav"),
        ),
    )
    .expect("config");
}

fn wait_log(log: &Path, needle: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn sighup_applies_new_thresholds_to_the_next_window_and_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("soundsentry.toml");
    // Nothing can start at first (a score never exceeds 1).
    write(&cfg, "on = 1.0\noff = 0.25\n");
    let log = dir.path().join("daemon.log");
    let daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    let hup = || {
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(daemon.id().to_string())
            .status();
    };
    assert!(wait_log(&log, "run started", Duration::from_secs(10)));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    // An invalid file: refused, every error logged, the old settings stay.
    write(&cfg, "on = 0.4\nof = 0.25\nhold = \"soon\"\n");
    hup();
    assert!(wait_log(&log, "reload refused", Duration::from_secs(5)));
    // A valid one, sent once the speech (1.0–4.3 s) is well past and before the beeps (7 s):
    // used from the next window on.
    std::thread::sleep(Duration::from_millis(6500).saturating_sub(started.elapsed()));
    write(
        &cfg,
        "on = 0.4\noff = 0.25\nmin_duration = \"1s\"\nhold = \"2500ms\"\n",
    );
    hup();
    assert!(wait_log(
        &log,
        "detector settings reloaded",
        Duration::from_secs(5)
    ));
    let out = daemon.wait_with_output().expect("wait");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("detect.of: unknown key"), "{text}");
    assert!(text.contains("detect.hold"), "{text}");
    // The stream second the new settings apply from, as the daemon logs it.
    let from_s: f64 = text
        .lines()
        .find(|l| l.contains("detector settings reloaded"))
        .and_then(|l| l.split("from_s=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no from_s in the reload line\n{text}"));
    // A window after the reload holds no speech only if the analysis kept up with the clock
    // (window 1.28 s, hop 0.5 s: from 5.1 s on); say so rather than blame the detector.
    assert!(
        from_s > 5.1,
        "the analysis lagged: the reload applied from {from_s} s\n{text}"
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    // The speech came under the old settings (nothing); the beeps (7 s) and the jackhammer
    // (13 s) come after the reload.
    let labels: Vec<&str> = events
        .iter()
        .filter(|e| e["state"] == "start")
        .filter_map(|e| e["label"].as_str())
        .collect();
    assert!(labels.contains(&"Jackhammer"), "{labels:?}\n{text}");
    assert!(!labels.contains(&"Speech"), "{labels:?}");
    for e in &events {
        let start = e["start_offset_s"].as_f64().expect("offset");
        assert!(
            start >= from_s - 1e-3,
            "event at {start} s before the reload at {from_s} s"
        );
    }
}

/// A datagram socket standing in for systemd's notify socket, with a read timeout.
fn notify_socket(
    dir: &Path,
    timeout: Duration,
) -> (std::os::unix::net::UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
    sock.set_read_timeout(Some(timeout)).expect("timeout");
    (sock, path)
}

#[test]
fn systemd_gets_ready_periodic_watchdog_status_and_stopping() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("soundsentry.toml");
    write(&cfg, "on = 0.4\n");
    let (sock, sock_path) = notify_socket(dir.path(), Duration::from_millis(200));
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let status = daemon.wait().expect("wait");
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(status.success());
    assert!(
        got.first().is_some_and(|m| m.starts_with("READY=1")),
        "{got:?}"
    );
    let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    // A 1 s watchdog is fed every 0.5 s: about 8 times in 4 s or so of running.
    assert!(pings >= 4, "{pings} watchdog pings: {got:?}");
    assert!(
        got.iter().any(|m| m.starts_with("STATUS=windows")),
        "{got:?}"
    );
    assert!(
        got.last().is_some_and(|m| m.starts_with("STOPPING=1")),
        "{got:?}"
    );
}

#[test]
fn a_stuck_pipeline_stops_feeding_the_watchdog() {
    // The pipeline gets stuck the way a real one can: nobody reads stdout, so the output
    // thread blocks, then the inference thread, while the analysis loop keeps running.
    let dir = tempfile::tempdir().expect("tmp");
    let (raw, rate) = crate::sources::raw_sample(dir.path());
    let pid_file = dir.path().join("source.pid");
    let cfg = dir.path().join("soundsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\n[source]\nkind = \"command\"\n\
             command = [\"sh\", \"-c\", \"echo $$ > {}; while true; do cat {}; done\"]\nformat = \"f32le\"\nrate = {rate}\n\
             [analysis]\nhop = \"100ms\"\n[output]\nscores = true\ntop_k = 11\n",
            repo("models/sitehome-tiny-ast"),
            pid_file.display(),
            raw.display()
        ),
    )
    .expect("config");
    let (sock, sock_path) = notify_socket(dir.path(), Duration::from_millis(100));
    let mut daemon = bin()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::piped()) // never read
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let mut last_ping: Option<Instant> = None;
    let mut pings = 0;
    let mut silent_for = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(150) {
        if let Ok(n) = sock.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                pings += 1;
                last_ping = Some(Instant::now());
            }
        }
        silent_for = last_ping.map_or(Duration::ZERO, |t| t.elapsed());
        // systemd (WatchdogSec=1s here) would restart it after 1 s of silence; wait 5 s.
        if silent_for > Duration::from_secs(5) {
            break;
        }
    }
    let alive = matches!(daemon.try_wait(), Ok(None));
    let _ = daemon.kill();
    let _ = daemon.wait();
    // The source command dies with the daemon (SIGKILL leaves it no chance to clean up).
    let pid = std::fs::read_to_string(&pid_file).expect("the command wrote its pid");
    let proc = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    let until = Instant::now() + Duration::from_secs(5);
    while proc.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !proc.exists(),
        "the source command outlived a kill -9 of the daemon"
    );
    assert!(
        pings >= 2,
        "the watchdog was fed while the pipeline ran ({pings})"
    );
    assert!(alive, "the process itself is still running");
    assert!(
        silent_for > Duration::from_secs(5),
        "the watchdog kept being fed though the pipeline is stuck"
    );
}

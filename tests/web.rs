//! The web page, API and metrics (issue 29): a real headless Chromium opens the page of a
//! daemon replaying the demo; `/metrics` is read by the Python Prometheus client's parser and
//! equals the closing stats line; a slow stream client costs the analysis nothing; tokens.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, repo};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One GET over a fresh connection: (status, body).
fn get(port: u16, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // chunked bodies (axum streams some): keep the chunks' data
    let body = if raw
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until the server answers `/healthz`.
fn wait_up(port: u16, daemon: &mut Child) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(s)) = daemon.try_wait() {
            panic!("the daemon ended before it served: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the web server never came up on port {port}");
}

fn config(dir: &Path, source: &str, http: &str) -> PathBuf {
    let cfg = dir.join("soundsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "sensor_id = \"web\"\n[model]\npath = {:?}\n[source]\n{source}\n\
             [analysis]\nhop = \"500ms\"\n[output]\nstdout = true\n\
             [levels]\nenabled = true\ninterval = \"1s\"\n\
             [[levels.limit]]\nmetric = \"laeq\"\nperiod = \"1m\"\nthreshold_db = -25\n\
             [http]\n{http}\n",
            repo("models/sitehome-tiny-ast")
        ),
    )
    .expect("config");
    cfg
}

/// A daemon replaying demo-20s at real-time pace with `http` as its `[http]` table, once its
/// server answers on `port`.
fn replay_demo(dir: &Path, http: &str, port: u16) -> Child {
    let cfg = config(
        dir,
        &format!(
            "kind = \"file\"\npath = {:?}\nrealtime = true",
            repo("samples/demo-20s.wav")
        ),
        http,
    );
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    wait_up(port, &mut daemon);
    daemon
}

/// The closing stats line's counters.
fn closing(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("run finished"))
        .unwrap_or_else(|| panic!("no closing line in:\n{stderr}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (
        field("windows_total"),
        field("windows_skipped_total"),
        field("events_total"),
    )
}

fn stop(mut daemon: Child) -> String {
    // the daemon stops on SIGTERM as it does under systemd
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(Some(_)) = daemon.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let out = daemon.wait_with_output().expect("daemon output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The Python Prometheus client's parser: every sample as {"name", "labels", "value"}.
fn parse_metrics(text: &str) -> Vec<Value> {
    let script = "import json, sys\n\
                  from prometheus_client.parser import text_string_to_metric_families\n\
                  out = []\n\
                  for f in text_string_to_metric_families(sys.stdin.read()):\n\
                  \x20   for s in f.samples:\n\
                  \x20       out.append({'name': s.name, 'labels': s.labels, 'value': s.value, 'type': f.type})\n\
                  print(json.dumps(out))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client: pip install prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text (or is not installed: pip install \
         prometheus-client): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn sample(samples: &[Value], name: &str) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("{name} not among the metrics"))
}

/// The demo followed by about 8 s of silence (so every event ends), as raw f32 for a command
/// source that then stays open without sound. The audio ends on a window boundary: its frames
/// (25 ms, every 10 ms at the demo's 16 kHz, as the model's fbank) are a whole number of
/// 500 ms hops and it is a whole number of the source's 10 ms chunks, so everything reaches
/// the analysis while it runs and a stop has no partial window left to score.
fn demo_then_silence(dir: &Path) -> (PathBuf, u32) {
    let mut file =
        soundsentry::audio::AudioFile::open(&repo("samples/demo-20s.wav")).expect("sample");
    let rate = file.sample_rate();
    assert_eq!(
        rate, 16_000,
        "the demo's rate, which the frame arithmetic below assumes"
    );
    let mut samples = Vec::new();
    while file.read_chunk(&mut samples).expect("decode") {}
    let (length, shift, hop) = (400, 160, 50);
    let frames = (samples.len() + 8 * rate as usize - length) / shift + 1;
    let frames = frames.div_ceil(hop) * hop;
    // (frames + 2) chunks of 160 samples hold `frames` frames and 80 samples more
    samples.resize((frames + 2) * shift, 0.0);
    assert_eq!((samples.len() - length) / shift + 1, frames);
    let path = dir.join("demo.f32");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, bytes).expect("write raw");
    (path, rate)
}

#[test]
fn issue_29_metrics_parse_and_equal_the_closing_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (raw, rate) = demo_then_silence(dir.path());
    let port = free_port();
    // 0.1 s of audio every 1/30 s (three times real time, which the analysis keeps up
    // with), then silence without end, as a microphone in a quiet room
    let pacer = "import sys, time\n\
                 data = open(sys.argv[1], 'rb').read()\n\
                 step = int(sys.argv[2]) // 10 * 4\n\
                 for i in range(0, len(data), step):\n\
                 \x20   sys.stdout.buffer.write(data[i:i + step]); sys.stdout.flush(); time.sleep(0.1 / 3)\n\
                 time.sleep(300)\n";
    let cfg = config(
        dir.path(),
        &format!(
            "kind = \"command\"\ncommand = [\"python3\", \"-c\", {pacer:?}, {:?}, \"{rate}\"]\n\
             format = \"f32le\"\nrate = {rate}\nchunk = \"10ms\"",
            raw.display()
        ),
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    wait_up(port, &mut daemon);
    assert_eq!(get(port, "/healthz", None), (200, "ok\n".to_owned()));
    // wait until the audio is analysed: the counters stop moving
    let mut last = String::new();
    let mut still = 0;
    let until = Instant::now() + Duration::from_secs(120);
    let text = loop {
        assert!(Instant::now() < until, "the counters never settled");
        std::thread::sleep(Duration::from_millis(500));
        let (status, text) = get(port, "/metrics", None);
        assert_eq!(status, 200);
        let counts: String = text
            .lines()
            .filter(|l| l.starts_with("soundsentry_windows") || l.starts_with("soundsentry_event"))
            .collect();
        still = if counts == last && text.contains("soundsentry_windows_total") {
            still + 1
        } else {
            0
        };
        last = counts;
        if still >= 4 && text.contains("soundsentry_laeq_db") {
            break text;
        }
    };
    let samples = parse_metrics(&text);
    let stderr = stop(daemon);
    let (windows, skipped, events) = closing(&stderr);
    println!("closing: windows {windows}, skipped {skipped}, events {events}");
    assert!(windows > 30, "{stderr}");
    // The audio ended on a window boundary, so the stop scored nothing after the last scrape.
    let scraped = sample(&samples, "soundsentry_windows_total") as u64;
    assert_eq!(scraped, windows, "windows scraped vs the closing line");
    assert_eq!(
        sample(&samples, "soundsentry_windows_skipped_total"),
        skipped as f64
    );
    assert_eq!(
        sample(&samples, "soundsentry_event_messages_total"),
        events as f64
    );
    // the labelled event counters add up to the same, and name the demo's sounds
    let by_label: Vec<&Value> = samples
        .iter()
        .filter(|s| s["name"] == "soundsentry_events_total")
        .collect();
    let sum: f64 = by_label.iter().filter_map(|s| s["value"].as_f64()).sum();
    assert_eq!(sum, events as f64);
    for label in ["Speech", "Jackhammer"] {
        assert!(
            by_label
                .iter()
                .any(|s| s["labels"]["label"] == label && s["labels"]["state"] == "end"),
            "{label}: {by_label:?}"
        );
    }
    let count = sample(&samples, "soundsentry_inference_seconds_count");
    assert_eq!(count, scraped as f64, "one inference time per window");
    assert_eq!(sample(&samples, "soundsentry_healthy"), 1.0);
    // the silence at the end: the latest LAeq is far below the demo's
    assert!(sample(&samples, "soundsentry_laeq_db") < -80.0);
    let types: Vec<(&str, &str)> = samples
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?, s["type"].as_str()?)))
        .collect();
    for (name, kind) in types {
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
    }
}

/// Reads one byte a second from the live stream, until told to stop.
fn slow_reader(port: u16, stop: Arc<Mutex<bool>>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "GET /api/stream HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("request");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut read = 0;
        let mut byte = [0u8; 1];
        while !*stop.lock().expect("lock") {
            if let Ok(1) = s.read(&mut byte) {
                read += 1;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        read
    })
}

#[test]
fn issue_29_a_real_browser_renders_the_page_of_a_running_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let daemon = replay_demo(dir.path(), &format!("listen = \"127.0.0.1:{port}\""), port);
    let stop_slow = Arc::new(Mutex::new(false));
    let slow = slow_reader(port, stop_slow.clone());

    // the JSON endpoints and their refusals
    let (status, body) = get(port, "/api/status", None);
    assert_eq!(status, 200, "{body}");
    let s: Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(s["sensor"], "web");
    assert_eq!(s["limits"][0]["metric"], "laeq");
    assert_eq!(get(port, "/api/events?limit=0", None).0, 400);
    assert_eq!(get(port, "/api/levels?since=yesterday", None).0, 400);
    assert_eq!(get(port, "/nothing", None).0, 404);

    let (browser, tab, errors) = crate::util::chromium(dir.path());
    tab.navigate_to(&format!("http://127.0.0.1:{port}/"))
        .expect("navigate")
        .wait_until_navigated()
        .expect("loaded");

    // the demo's sounds the default model finds (its Reversing beeps it misses) reach the
    // event list while the daemon replays it
    let wanted = ["Speech", "Jackhammer"];
    let until = Instant::now() + Duration::from_secs(40);
    let listed = loop {
        let text = tab
            .evaluate("document.getElementById('events').innerText", false)
            .expect("evaluate")
            .value
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if wanted.iter().all(|w| text.contains(w)) || Instant::now() > until {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for w in wanted {
        let body = tab
            .evaluate("document.body.innerText", false)
            .ok()
            .and_then(|v| v.value);
        assert!(
            listed.contains(w),
            "{w} not in the event list: {listed:?}; the page: {body:?}; errors: {:?}",
            errors.lock().expect("lock")
        );
    }
    // while the daemon still runs (its end refuses the page's next requests)
    let errors_while_running = errors.lock().expect("lock").clone();
    // the spectrogram has been drawn: many distinct pixel values, not the black it starts as
    let distinct = tab
        .evaluate(
            "(() => { const c = document.getElementById('spectrogram'); \
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] * 65536 + d[i+1] * 256 + d[i+2]); \
             return s.size; })()",
            false,
        )
        .expect("evaluate")
        .value
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    assert!(distinct > 50, "the spectrogram has {distinct} colours");
    let scores = tab
        .evaluate("document.querySelectorAll('#scores .bar').length", false)
        .expect("evaluate")
        .value
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    assert_eq!(scores, 8, "top scores shown");
    let health = tab
        .evaluate("document.getElementById('health').textContent", false)
        .expect("evaluate")
        .value;
    assert_eq!(health, Some(Value::from("healthy")));
    let picture = crate::util::screenshot(&tab, &dir.path().join("page.png"));
    assert!(
        picture.width >= 1000 && picture.colours() > 100,
        "{}",
        picture.colours()
    );
    assert!(
        errors_while_running.is_empty(),
        "console errors: {errors_while_running:?}"
    );
    drop(tab);
    drop(browser);

    // the slow reader held its stream throughout; the analysis never waited for it
    let stderr = {
        let out = daemon.wait_with_output().expect("daemon");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    *stop_slow.lock().expect("lock") = true;
    let read = slow.join().expect("slow reader");
    let (windows, skipped, _) = closing(&stderr);
    println!("slow reader read {read} bytes; windows {windows}, skipped {skipped}");
    assert!(read >= 10, "the slow reader read {read} bytes");
    assert!(windows >= 38, "{stderr}");
    assert_eq!(
        skipped, 0,
        "a slow client made the analysis skip windows: {stderr}"
    );
}

#[test]
fn issue_29_a_token_is_required_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let token = "0123456789abcdef-token";
    std::fs::write(dir.path().join("token"), format!("{token}\n")).expect("token");
    let daemon = replay_demo(
        dir.path(),
        &format!("listen = \"127.0.0.1:{port}\"\ntoken_file = \"token\""),
        port,
    );
    for path in ["/", "/metrics", "/healthz", "/api/status", "/api/stream"] {
        assert_eq!(get(port, path, None).0, 401, "{path} without the token");
        assert_eq!(
            get(port, path, Some("wrong-token-wrong-token")).0,
            401,
            "{path}"
        );
    }
    assert_eq!(get(port, "/api/status", Some(token)).0, 200);
    assert_eq!(get(port, &format!("/metrics?token={token}"), None).0, 200);
    let (status, page) = get(port, &format!("/?token={token}"), None);
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"spectrogram\""));
    stop(daemon);

    // not on loopback: refused without a token file, with the reason
    let cfg = config(
        dir.path(),
        "kind = \"file\"\npath = \"x.wav\"",
        "listen = \"0.0.0.0:8080\"",
    );
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("set http.token_file"),
        "{err}"
    );
}

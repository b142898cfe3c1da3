//! MQTT against a real Mosquitto broker started by each test on a free localhost port, with a
//! real subscriber (`mosquitto_sub`): normal flow, broker outage, daemon crash, TLS and login,
//! and a broker that stops answering.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, json_lines, read_stdout, repo};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn mosquitto() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("mosquitto is installed (Debian package mosquitto)")
}

/// Waits until `f` holds, checking every 100 ms for at most `limit`.
pub(crate) fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A Mosquitto process with its own config, persistence folder and log, in a temp dir.
pub(crate) struct Broker {
    pub(crate) port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker; `extra` is appended to its config (listener options, auth).
    pub(crate) fn start(dir: &Path, extra: &str) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n\
                 log_dest file {}\n{}{extra}",
                dir.display(),
                dir.join("mosquitto.log").display(),
                // Started as root, mosquitto would switch to its own user, which cannot read
                // the test's private temp files (keys, persistence); as any other user this
                // line changes nothing.
                "user root\n",
            ),
        )
        .expect("write mosquitto.conf");
        let mut b = Self {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        b.spawn();
        b
    }

    pub(crate) fn spawn(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_for(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mosquitto did not listen on {port}"
        );
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Stops it cleanly (SIGTERM: it saves its persistence file).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal("-CONT");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `mosquitto_sub` writing `topic payload` lines to a file.
pub(crate) struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    /// Subscribes to everything. `session` gives a persistent QoS 1 session under that id.
    pub(crate) fn start(port: u16, dir: &Path, session: Option<&str>, extra: &[&str]) -> Self {
        let out = dir.join(format!("sub-{}.txt", session.unwrap_or("plain")));
        let file = std::fs::File::create(&out).expect("sub output");
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "#",
            "-v",
            "-q",
            "1",
        ]);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        cmd.args(extra);
        let child = cmd
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub (Debian package mosquitto-clients)");
        std::thread::sleep(Duration::from_millis(500));
        Self { child, out }
    }

    /// (topic, payload) lines received so far.
    pub(crate) fn lines(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_owned(), p.to_owned())))
            .collect()
    }

    /// Event payloads received, parsed.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|(t, _)| t.ends_with("/event"))
            .map(|(_, p)| serde_json::from_str(&p).expect("event JSON"))
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retained messages under `topic` right now, read by a fresh subscriber.
pub(crate) fn retained(port: u16, topic: &str, extra: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-v",
            "-W",
            "2",
        ])
        .args(extra)
        .arg("--retained-only")
        .output()
        .expect("mosquitto_sub");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_owned(), p.to_owned())))
        .collect()
}

/// A config on the default model with the demo's detection settings and an `[mqtt]` table.
pub(crate) fn config(dir: &Path, audio: &str, mqtt: &str) -> PathBuf {
    let cfg = dir.join("soundsentry.toml");
    let text = format!(
        "sensor_id = \"test-site\"\n[model]\npath = {:?}\n[source]\npath = {:?}\n\
         [analysis]\nhop = \"500ms\"\n\
         [detect]\non = 0.4\noff = 0.25\nmin_duration = \"1s\"\nhold = \"2500ms\"\n\
         [mqtt]\noutbox = {:?}\nreconnect_min = \"1s\"\nreconnect_max = \"4s\"\nkeep_alive = \"5s\"\n{mqtt}",
        repo("models/sitehome-tiny-ast"),
        repo(audio),
        dir.join("outbox.redb"),
    );
    std::fs::write(&cfg, text).expect("write config");
    cfg
}

fn stdout_events(out: &Output) -> Vec<Value> {
    json_lines(out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (id, seq) of each event, the identity a subscriber dedupes on.
pub(crate) fn ids(events: &[Value]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Keeps the first copy of each (id, seq).
pub(crate) fn dedupe(events: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    events
        .into_iter()
        .filter(|e| seen.insert((e["id"].to_string(), e["seq"].to_string())))
        .collect()
}

#[test]
fn a_scene_reaches_the_subscriber_with_states_status_and_discovery() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), None, &[]);
    let cfg = config(dir.path(), "samples/demo-scene.wav", "scores = true\n");
    let out = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--mqtt", &broker.url()])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout_events(&out);
    assert!(
        printed.len() >= 10,
        "the scene has events: {}",
        printed.len()
    );
    assert!(wait_for(Duration::from_secs(10), || sub.events().len()
        >= printed.len()));
    // Exactly the events the detector produced, in order, with the documented payloads.
    assert_eq!(sub.events(), printed);
    let base = "soundsentry/test_site";
    let lines = sub.lines();
    // Each start turns its label ON and each end OFF, after the event message.
    for e in &printed {
        let state = match e["state"].as_str() {
            Some("start") => "ON",
            Some("end") => "OFF",
            _ => continue,
        };
        let topic = format!("{base}/label/{}/state", e["slug"].as_str().expect("slug"));
        let at_event = lines.iter().position(|(t, p)| {
            t.ends_with("/event")
                && p.contains(e["id"].as_str().expect("id"))
                && p.contains(&format!("\"seq\":{}", e["seq"]))
        });
        let at_state = lines
            .iter()
            .enumerate()
            .skip(at_event.expect("event seen"))
            .find(|(_, (t, p))| *t == topic && p == state);
        assert!(
            at_state.is_some(),
            "{state} on {topic} after event {}",
            e["seq"]
        );
    }
    // Scores ride along (QoS 0, a short queue: some may be dropped, never the events).
    let scores: Vec<Value> = lines
        .iter()
        .filter(|(t, _)| *t == format!("{base}/scores"))
        .map(|(_, p)| serde_json::from_str(p).expect("scores JSON"))
        .collect();
    assert!(!scores.is_empty() && scores.iter().all(|s| s["type"] == "scores"));
    let states = retained(broker.port, &format!("{base}/label/+/state"), &[]);
    assert_eq!(
        states.len(),
        11,
        "one retained state per watched label: {states:?}"
    );
    assert!(
        states.values().all(|s| s == "OFF"),
        "every event ended: {states:?}"
    );
    let status = retained(broker.port, &format!("{base}/status"), &[]);
    assert_eq!(status.values().next().map(String::as_str), Some("offline"));
    let disc = retained(broker.port, "homeassistant/#", &[]);
    let jack = &disc["homeassistant/binary_sensor/test_site/jackhammer/config"];
    let jack: Value = serde_json::from_str(jack).expect("discovery JSON");
    assert_eq!(jack["unique_id"], "soundsentry_test_site_jackhammer");
    assert_eq!(
        jack["state_topic"],
        format!("{base}/label/jackhammer/state")
    );
    assert_eq!(jack["device_class"], "sound");
    let stats = retained(broker.port, &format!("{base}/stats"), &[]);
    let stats: Value = serde_json::from_str(stats.values().next().expect("stats")).expect("JSON");
    assert_eq!(stats["events_total"], printed.len());
    assert_eq!(stats["outbox_depth"], 0);
}

#[test]
fn removing_a_label_removes_its_home_assistant_entity() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let watch = |labels: &[&str]| {
        labels
            .iter()
            .map(|l| format!("[[detect.watch]]\nlabels = [{l:?}]\n"))
            .collect::<String>()
    };
    for labels in [&["Jackhammer", "Siren"][..], &["Jackhammer"][..]] {
        let cfg = config(dir.path(), "samples/demo-20s.wav", "");
        let text = std::fs::read_to_string(&cfg)
            .expect("cfg")
            .replace("[mqtt]", &format!("{}[mqtt]", watch(labels)));
        std::fs::write(&cfg, text).expect("cfg");
        let out = bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--mqtt", &broker.url()])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let disc = retained(broker.port, "homeassistant/binary_sensor/#", &[]);
    let topics: Vec<_> = disc.keys().collect();
    assert_eq!(
        topics,
        ["homeassistant/binary_sensor/test_site/jackhammer/config"],
        "{disc:?}"
    );
}

#[test]
fn a_broker_outage_loses_no_event_and_retries_are_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), Some("outage-sub"), &[]);
    let cfg = config(dir.path(), "samples/demo-scene.wav", "");
    let log = dir.path().join("daemon.log");
    let mut daemon = bin()
        .args(["run", "--realtime", "--config"])
        .arg(&cfg)
        .args(["--mqtt", &broker.url()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_secs(12));
    broker.stop();
    let down = Instant::now();
    let attempts_before = std::fs::read_to_string(&log)
        .expect("log")
        .matches("MQTT connection failed")
        .count();
    std::thread::sleep(Duration::from_secs(25));
    let attempts = std::fs::read_to_string(&log)
        .expect("log")
        .matches("MQTT connection failed")
        .count()
        - attempts_before;
    broker.spawn();
    let outage = down.elapsed();
    let mut stdout = String::new();
    daemon
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    assert!(daemon.wait().expect("wait").success());
    let printed: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        wait_for(Duration::from_secs(20), || dedupe(sub.events()).len()
            >= printed.len()),
        "subscriber got {} of {} events",
        dedupe(sub.events()).len(),
        printed.len()
    );
    let got = dedupe(sub.events());
    assert_eq!(ids(&got).len(), ids(&printed).len());
    let mut want_ids = ids(&printed);
    let mut got_ids = ids(&got);
    // Every event, and per label in the order produced.
    for label in printed
        .iter()
        .map(|e| e["slug"].as_str().unwrap_or_default().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let of = |v: &[Value]| {
            ids(&v
                .iter()
                .filter(|e| e["slug"] == label.as_str())
                .cloned()
                .collect::<Vec<_>>())
        };
        assert_eq!(of(&got), of(&printed), "label {label}");
    }
    want_ids.sort();
    got_ids.sort();
    assert_eq!(got_ids, want_ids);
    // Backoff 1 s doubling to 4 s with jitter over ~25 s: a handful of attempts, no storm.
    println!("outage {outage:?}: {attempts} failed connection attempts");
    assert!(
        (2..=15).contains(&attempts),
        "{attempts} attempts during the outage"
    );
}

#[test]
fn events_queued_before_a_kill_9_are_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    // No broker yet: everything stays in the outbox.
    let port = free_port();
    let cfg = config(dir.path(), "samples/demo-scene.wav", "");
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut daemon = bin()
        .args(["run", "--realtime", "--config"])
        .arg(&cfg)
        .args(["--mqtt", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let reader = read_stdout(&mut daemon);
    std::thread::sleep(Duration::from_secs(20));
    daemon.kill().expect("kill -9");
    let _ = daemon.wait();
    let printed: Vec<Value> = reader
        .join()
        .expect("reader")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        printed.len() >= 3,
        "events before the kill: {}",
        printed.len()
    );

    // Broker on the same port, then the daemon again (a short file).
    let conf = dir.path().join("broker");
    std::fs::create_dir_all(&conf).expect("dir");
    let mut broker = Broker::start(&conf, "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), None, &[]);
    let cfg2 = config(dir.path(), "samples/demo-20s.wav", "");
    let out = bin()
        .args(["run", "--config"])
        .arg(&cfg2)
        .args(["--mqtt", &broker.url()])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        wait_for(Duration::from_secs(10), || {
            let got = ids(&sub.events());
            ids(&printed).iter().all(|i| got.contains(i))
        }),
        "events of the killed run reached the subscriber"
    );
    // They come first, in their order.
    let got = ids(&dedupe(sub.events()));
    assert_eq!(&got[..printed.len()], &ids(&printed)[..]);
    broker.stop();
}

/// CA, server certificate for localhost/127.0.0.1, made with openssl.
fn make_pki(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("dir");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&d)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req"][..],
        &key,
        &[
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=sensor",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "2",
        "-extfile",
        "client.ext",
    ]);
    d
}

#[test]
fn tls_with_client_certificate_and_login_delivers_and_bad_credentials_or_certificates_say_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = make_pki(dir.path(), "pki");
    let other = make_pki(dir.path(), "other");
    let pw = dir.path().join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["sensor", "s3cret-pass"])
        .status()
        .expect("mosquitto_passwd");
    assert!(st.success());
    let broker = Broker::start(
        dir.path(),
        &format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\n",
            pw.display(),
            pki.join("ca.pem").display(),
            pki.join("server.pem").display(),
            pki.join("server.key").display()
        ),
    );
    let ca_pem = pki.join("ca.pem");
    let (client_pem, client_key) = (pki.join("client.pem"), pki.join("client.key"));
    let tls_sub = [
        "--cert",
        client_pem.to_str().expect("path"),
        "--key",
        client_key.to_str().expect("path"),
        "--cafile",
        ca_pem.to_str().expect("path"),
        "-u",
        "sensor",
        "-P",
        "s3cret-pass",
    ];
    let sub = Subscriber::start(broker.port, dir.path(), None, &tls_sub);
    let url = format!("mqtts://localhost:{}", broker.port);
    let secret = dir.path().join("secret");
    let attempt = |password: &str, ca: &Path| {
        std::fs::write(&secret, format!("{password}\n")).expect("secret");
        let extra = format!(
            "username = \"sensor\"\npassword_file = {:?}\nca_file = {:?}\nflush_timeout = \"1s\"\n\
             client_cert = {:?}\nclient_key = {:?}\n",
            secret,
            ca.join("ca.pem"),
            pki.join("client.pem"),
            pki.join("client.key"),
        );
        let cfg = config(dir.path(), "samples/demo-20s.wav", &extra);
        bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--mqtt", &url])
            .output()
            .expect("run")
    };
    let ok = attempt("s3cret-pass", &pki);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let printed = stdout_events(&ok);
    assert!(!printed.is_empty());
    assert!(wait_for(Duration::from_secs(10), || sub.events().len()
        >= printed.len()));
    assert_eq!(sub.events(), printed);
    assert!(
        !stderr(&ok).contains("s3cret-pass"),
        "the password is never logged"
    );

    let bad = attempt("not-the-password-91", &pki);
    assert!(
        bad.status.success(),
        "a refused login does not stop the analysis"
    );
    let log = stderr(&bad);
    assert!(log.contains("refused the login"), "{log}");
    assert!(!log.contains("not-the-password-91"), "{log}");
    assert!(log.contains("messages stay in the outbox"), "{log}");

    let untrusted = attempt("s3cret-pass", &other);
    let log = stderr(&untrusted);
    assert!(untrusted.status.success());
    assert!(
        log.contains("TLS") && log.to_lowercase().contains("certificate"),
        "{log}"
    );
}

#[test]
fn a_broker_that_never_acknowledges_does_not_stall_the_analysis_and_the_outbox_stays_capped() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let cfg = config(
        dir.path(),
        "samples/demo-20s.wav",
        "outbox_max_messages = 8\nflush_timeout = \"1s\"\n",
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = bin()
        .args(["run", "--realtime", "--config"])
        .arg(&cfg)
        .args(["--mqtt", &broker.url()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    let reader = read_stdout(&mut daemon);
    // Once connected, the broker freezes: the TCP connection stays open, nothing is answered.
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(10), || read_log()
        .contains("MQTT connected")));
    broker.signal("-STOP");
    // The 20 s stream plays at its pace; the run must end by itself (bounded wait, then fail).
    let ended = wait_for(Duration::from_secs(60), || {
        matches!(daemon.try_wait(), Ok(Some(_)))
    });
    if !ended {
        let _ = daemon.kill();
    }
    assert!(
        ended,
        "the daemon did not finish with a frozen broker:\n{}",
        read_log()
    );
    assert!(daemon.wait().expect("wait").success(), "{}", read_log());
    let printed = reader.join().expect("reader");
    let log = read_log();
    // Every window of the 20 s file was analysed (hop 0.5 s) and the events printed.
    assert!(log.contains("windows_total=40"), "{log}");
    assert!(log.contains("windows_skipped_total=0"), "{log}");
    assert!(printed.lines().count() >= 4, "{printed}");
    assert!(log.contains("MQTT outbox full"), "{log}");
    broker.signal("-CONT");
    let outbox = soundsentry::mqtt::Outbox::open(
        &dir.path().join("outbox.redb"),
        soundsentry::mqtt::Caps {
            max_messages: 8,
            max_bytes: 64 << 20,
        },
    )
    .expect("outbox");
    assert!(outbox.len() <= 8, "outbox holds {}", outbox.len());
    let dropped = outbox
        .dropped(soundsentry::mqtt::Kind::Event)
        .expect("count")
        + outbox
            .dropped(soundsentry::mqtt::Kind::State)
            .expect("count");
    assert!(dropped > 0, "the drops are counted");
}

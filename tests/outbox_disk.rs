//! The MQTT queue on a real, tiny, full tmpfs: messages wait in memory in order, the outbox
//! recovers when space returns, and a run on a full disk loses nothing it prints.

use std::time::Duration;

use soundsentry::mqtt::{Caps, Kind, Message, Store};

use crate::util::TinyDisk;

fn msg(kind: Kind, i: u32) -> Message {
    Message {
        kind,
        topic: format!("t/{i}"),
        payload: vec![b'x'; 200],
        retain: false,
    }
}

const CAPS: Caps = Caps {
    max_messages: 100_000,
    max_bytes: 1 << 30,
};

#[test]
fn issue_25_a_full_disk_keeps_messages_in_memory_in_order_and_recovers() {
    let disk = TinyDisk::mount(512);
    let path = disk.0.path().join("outbox.redb");
    let mut s = Store::open(&path, CAPS).expect("open");
    s.push(&[msg(Kind::Event, 0)]);
    disk.fill();
    for i in 1..=300 {
        s.push(&[msg(Kind::Event, i)]);
    }
    let st = s.state();
    assert!(
        st.problem
            .as_deref()
            .is_some_and(|p| p.contains("No space")),
        "{st:?}"
    );
    assert!(st.in_memory > 0 && st.lost_total == 0, "{st:?}");
    // Everything is there, in order, whether on disk or in memory.
    let all = s.after(0, 1000).expect("read");
    let topics: Vec<String> = all.iter().map(|(_, m)| m.topic.clone()).collect();
    let want: Vec<String> = (0..=300).map(|i| format!("t/{i}")).collect();
    assert_eq!(topics, want);
    // Acknowledged messages leave memory.
    let last = all.last().map(|(k, _)| *k).unwrap_or(0);
    s.remove(&[last]);
    assert_eq!(s.len(), 300);
    // Space returns: the next push after the retry delay moves memory onto the disk.
    disk.free();
    std::thread::sleep(soundsentry::mqtt::RETRY + Duration::from_millis(100));
    s.push(&[msg(Kind::Event, 301)]);
    let st = s.state();
    assert_eq!(st.problem, None);
    assert_eq!(st.in_memory, 0);
    drop(s);
    let s = Store::open(&path, CAPS).expect("reopen");
    let topics: Vec<String> = s
        .after(0, 1000)
        .expect("read")
        .into_iter()
        .map(|(_, m)| m.topic)
        .collect();
    let want: Vec<String> = (0..300).chain([301]).map(|i| format!("t/{i}")).collect();
    assert_eq!(topics, want);
}

#[test]
fn a_full_memory_queue_drops_levels_then_the_oldest_and_counts_them() {
    let disk = TinyDisk::mount(256);
    let path = disk.0.path().join("outbox.redb");
    let caps = Caps {
        max_messages: 3,
        max_bytes: 1 << 30,
    };
    let mut s = Store::open(&path, caps).expect("open");
    disk.fill();
    s.push(&[
        msg(Kind::Event, 1),
        msg(Kind::Level, 2),
        msg(Kind::Event, 3),
    ]);
    // Filling the disk may have let the first message through to it.
    let on_disk = s.len() - s.state().in_memory;
    s.push(&[msg(Kind::Event, 4)]);
    s.push(&[msg(Kind::Event, 5)]);
    let st = s.state();
    assert!(st.problem.is_some());
    assert!(st.in_memory <= 3, "{st:?}");
    assert_eq!(s.dropped(Kind::Level), 1);
    assert_eq!(st.lost_total + on_disk + st.in_memory, 5, "{st:?}");
    let topics: Vec<String> = s
        .after(0, 10)
        .expect("read")
        .into_iter()
        .map(|(_, m)| m.topic)
        .collect();
    assert_eq!(topics.last().map(String::as_str), Some("t/5"));
    assert!(!topics.contains(&"t/2".to_owned()), "{topics:?}");
}

/// Issue 25 (1): with the outbox on a full disk a run used to stop printing and lose events.
/// Now every event is printed, the broker gets every one, and the log says why the outbox is
/// not used.
#[test]
fn issue_25_a_full_outbox_disk_stops_neither_stdout_nor_delivery() {
    use crate::mqtt::{config, dedupe, ids, wait_for, Broker, Subscriber};
    use crate::util::{bin, json_lines, run_ok};
    let dir = tempfile::tempdir().expect("tmp");
    let disk = TinyDisk::mount(512);
    let mut broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), Some("full-sub"), &[]);
    let small = config(disk.0.path(), "samples/demo-20s.wav", "");
    let reference = json_lines(&run_ok(bin().args(["run", "--config"]).arg(&small)));
    assert!(reference.len() >= 4, "{reference:?}");
    // The outbox exists (made by a first, small run), then the disk fills up.
    let first = run_ok(
        bin()
            .args(["run", "--config"])
            .arg(&small)
            .args(["--mqtt", &broker.url()]),
    );
    assert_eq!(json_lines(&first).len(), reference.len());
    disk.fill();
    let before = dedupe(sub.events()).len();
    // The broker is away for the first seconds and level reports come every 125 ms: far more
    // messages than the outbox file has room for on the full disk.
    broker.stop();
    let big = config(
        disk.0.path(),
        "samples/demo-20s.wav",
        "[levels]\nenabled = true\ninterval = \"125ms\"\nstdout = false\n",
    );
    let daemon = bin()
        .args(["run", "--realtime", "--config"])
        .arg(&big)
        .args(["--mqtt", &broker.url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_secs(8));
    broker.spawn();
    let out = daemon.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = json_lines(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(printed.len(), reference.len(), "{log}");
    assert!(log.contains("MQTT outbox unwritable"), "{log}");
    assert!(
        wait_for(Duration::from_secs(20), || dedupe(sub.events()).len()
            >= before + printed.len()),
        "subscriber got {} of {}",
        dedupe(sub.events()).len() - before,
        printed.len()
    );
    let got = dedupe(sub.events());
    assert_eq!(ids(&got[before..]), ids(&printed));
}

/// Issue 25 (1), with a live source: raw PCM on stdin at real-time pace, the outbox on a full
/// disk and the broker away for the first 8 s. stdout used to stop while the daemon ran on;
/// now every event is printed as the file source prints it, and the broker gets every one.
#[test]
fn issue_25_a_full_outbox_disk_with_a_live_source_loses_nothing() {
    use std::io::Write;
    use std::process::Stdio;

    use crate::mqtt::{dedupe, ids, wait_for, Broker, Subscriber};
    use crate::util::{bin, json_lines, repo, run_ok};
    let dir = tempfile::tempdir().expect("tmp");
    let disk = TinyDisk::mount(512);
    let mut broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), Some("live-sub"), &[]);
    let (raw, rate) = crate::sources::raw_sample(dir.path());
    let url = broker.url();
    let config = |source: &str, levels: &str| {
        let cfg = dir.path().join("live.toml");
        std::fs::write(
            &cfg,
            format!(
                "sensor_id = \"live\"\n[model]\npath = {:?}\n[source]\n{source}\n\
                 [analysis]\nhop = \"500ms\"\n\
                 [detect]\non = 0.4\noff = 0.25\nmin_duration = \"1s\"\nhold = \"2500ms\"\n\
                 [levels]\nenabled = {levels}\ninterval = \"125ms\"\nstdout = false\n\
                 [mqtt]\nurl = {:?}\noutbox = {:?}\nreconnect_min = \"1s\"\nreconnect_max = \"2s\"\n",
                repo("models/sitehome-tiny-ast"),
                url,
                disk.0.path().join("outbox.redb"),
            ),
        )
        .expect("config");
        cfg
    };
    // The reference run (events only) also makes the outbox file, small, before the disk fills.
    let file_cfg = config(
        &format!("path = {:?}", repo("samples/demo-20s.wav")),
        "false",
    );
    let reference = json_lines(&run_ok(bin().args(["run", "--config"]).arg(&file_cfg)));
    assert!(reference.len() >= 4, "{reference:?}");
    let before = {
        assert!(wait_for(Duration::from_secs(20), || dedupe(sub.events())
            .len()
            >= reference.len()));
        dedupe(sub.events()).len()
    };
    disk.fill();
    broker.stop();
    let cfg = config(
        &format!("kind = \"stdin\"\nformat = \"f32le\"\nrate = {rate}\nchannels = 1"),
        "true",
    );
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let bytes = std::fs::read(&raw).expect("raw");
    let mut stdin = daemon.stdin.take().expect("stdin");
    let step = rate as usize / 10 * 4;
    let start = std::time::Instant::now();
    for (i, piece) in bytes.chunks(step).enumerate() {
        let due = Duration::from_millis(100 * i as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        if i == 80 {
            broker.spawn();
        }
        stdin.write_all(piece).expect("feed");
    }
    drop(stdin);
    let out = daemon.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("MQTT outbox unwritable"), "{log}");
    let printed = json_lines(&out);
    assert_eq!(ids(&printed).len(), ids(&reference).len(), "{log}");
    assert!(
        wait_for(Duration::from_secs(20), || dedupe(sub.events()).len()
            >= before + printed.len()),
        "subscriber got {} of {}",
        dedupe(sub.events()).len() - before,
        printed.len()
    );
    assert_eq!(ids(&dedupe(sub.events())[before..]), ids(&printed));
}

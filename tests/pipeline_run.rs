//! `pipeline::run` in process: the demo configuration through the default model, events read
//! from the output sink it is given, and a shutdown passed in from another thread.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use soundsentry::commands::load_all;
use soundsentry::config::Overrides;
use soundsentry::pipeline::{run, Control};

use crate::demo_scene::assert_matches_annotation;
use crate::util::repo;

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Event messages (sound and limit: level reports and scores lines have a `type`), as
/// `events_total` counts them.
fn events(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"].is_null()).collect()
}

#[test]
fn run_in_process_finds_the_annotated_events_of_the_demo_scene() {
    let (cfg, model, watches) =
        load_all(&repo("config/demo.toml"), &Default::default()).expect("demo config");
    let mut out = Vec::new();
    let stats = run(&cfg, &model, watches, &Control::default(), &mut out).expect("run");
    let lines = lines(&out);
    assert_matches_annotation(&lines);
    assert_eq!(stats.events_total as usize, events(&lines).len());
    // 64 s of audio, a 1.28 s window every 0.5 s.
    assert!(
        (stats.audio_s - 64.0).abs() < 0.1,
        "audio_s {}",
        stats.audio_s
    );
    assert!(
        (125..=130).contains(&stats.windows_total),
        "windows {}",
        stats.windows_total
    );
    assert_eq!(
        stats.windows_skipped_total, 0,
        "as fast as possible, none dropped"
    );
    // Events are numbered in output order, from 1.
    let seqs: Vec<u64> = events(&lines)
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_shutdown_passed_in_stops_a_real_time_run_and_ends_its_open_events() {
    // `run --realtime`, as the command line gives it.
    let realtime = Overrides {
        realtime: true,
        ..Default::default()
    };
    let (cfg, model, watches) =
        load_all(&repo("config/demo.toml"), &realtime).expect("demo config");
    let control = Control::default();
    let shutdown = control.shutdown.clone();
    let started = Instant::now();
    let mut out = Vec::new();
    let stats = std::thread::scope(|s| {
        s.spawn(move || {
            // Into the scene's first events (hammering and sawing from 1.3 s), then stop.
            std::thread::sleep(Duration::from_secs(5));
            shutdown.store(true, Ordering::Relaxed);
        });
        run(&cfg, &model, watches, &control, &mut out).expect("run")
    });
    let wall = started.elapsed().as_secs_f64();
    assert!(
        wall < 30.0,
        "a 64 s scene at real-time pace stopped in {wall:.1} s"
    );
    assert!(
        stats.audio_s > 2.0 && stats.audio_s < 20.0,
        "audio_s {}",
        stats.audio_s
    );
    let lines = lines(&out);
    let mut open = HashSet::new();
    let mut starts = 0;
    for e in events(&lines) {
        let id = e["id"].as_str().expect("id").to_owned();
        match e["state"].as_str() {
            Some("start") => {
                starts += 1;
                assert!(open.insert(id), "started twice");
            }
            Some("end") => assert!(open.remove(&id), "ended without a start"),
            _ => {}
        }
    }
    assert!(starts > 0, "events were open when the shutdown came");
    assert!(open.is_empty(), "events left open at shutdown: {open:?}");
}

//! The README's first command end to end: the default model on the sample scene finds the
//! annotated events. The expectation comes from the annotation file, not from a recorded run.

use std::collections::HashMap;

use serde_json::Value;

use crate::util::{bin, json_lines, repo, run_ok};

/// Greatest allowed distance between an annotated and a detected start (and end), seconds.
const TOLERANCE_S: f64 = 1.5;
/// Detected events that match no annotation that the test still accepts.
const SPURIOUS_ALLOWED: usize = 1;

#[derive(Debug, Clone)]
struct Span {
    label: String,
    start: f64,
    end: f64,
}

/// The annotation (label,start_s,end_s) of the scene the demo config replays.
fn annotation() -> Vec<Span> {
    let path = repo("samples/demo-scene.csv");
    let mut rd = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    rd.records()
        .map(|r| {
            let r = r.expect("annotation row");
            Span {
                label: r[0].to_owned(),
                start: r[1].parse().expect("start_s"),
                end: r[2].parse().expect("end_s"),
            }
        })
        .collect()
}

/// Events of the run, start and end joined by id, dated by their stream offsets.
fn detected(events: &[Value]) -> Vec<Span> {
    let mut starts: HashMap<&str, &Value> = HashMap::new();
    let mut spans = Vec::new();
    for e in events.iter().filter(|e| e["type"].is_null()) {
        let id = e["id"].as_str().expect("id");
        match e["state"].as_str() {
            Some("start") => {
                starts.insert(id, e);
            }
            Some("end") => {
                let s = starts.remove(id).expect("end of a started event");
                spans.push(Span {
                    label: s["label"].as_str().expect("label").to_owned(),
                    start: s["start_offset_s"].as_f64().expect("start_offset_s"),
                    end: e["end_offset_s"].as_f64().expect("end_offset_s"),
                });
            }
            _ => {}
        }
    }
    assert!(starts.is_empty(), "every started event is ended");
    spans
}

#[test]
fn demo_config_finds_the_annotated_events_of_the_sample_scene() {
    let out = run_ok(
        bin()
            .args(["run", "--config"])
            .arg(repo("config/demo.toml")),
    );
    assert_matches_annotation(&json_lines(&out));
}

/// The events of a run of the demo scene match its annotation: every annotated event found
/// within the tolerance, at most [`SPURIOUS_ALLOWED`] others.
pub(crate) fn assert_matches_annotation(events: &[Value]) {
    let mut found = detected(events);
    let truth = annotation();
    assert!(truth.len() >= 10, "the sample scene has its events");
    for d in &found {
        println!("detected {:>28} {:6.2} .. {:6.2}", d.label, d.start, d.end);
    }
    let mut missed = Vec::new();
    for t in &truth {
        let hit = found.iter().position(|d| {
            d.label == t.label
                && (d.start - t.start).abs() <= TOLERANCE_S
                && (d.end - t.end).abs() <= TOLERANCE_S
        });
        match hit {
            Some(i) => {
                found.remove(i);
            }
            None => missed.push(t.clone()),
        }
    }
    assert!(
        missed.is_empty(),
        "annotated events not detected: {missed:?}"
    );
    assert!(
        found.len() <= SPURIOUS_ALLOWED,
        "spurious events: {found:?}"
    );
}

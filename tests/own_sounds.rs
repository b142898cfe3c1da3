//! Your own sounds (issue 28): a two-tone doorbell the default model has no label for, taught
//! with `train-head` on synthesised clips, judged by `eval` on held-out clips and found by `run`
//! in a scene; and the refusals of bad data sets, each naming its row.

use std::path::{Path, PathBuf};

use serde_json::Value;
use soundsentry::noise::Noise;

use crate::util::{bin, json_lines, repo, run_ok, write_wav_f32, Picture};

const RATE: u32 = 16_000;
const LABEL: &str = "Our doorbell";

/// Background: noise of a random colour and level, sometimes with a hum or a tone of a
/// random pitch (so a tone alone is not the doorbell).
fn background(rng: &mut Noise, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    let level = 0.01 + 0.05 * f64::from(rng.uniform() + 0.5);
    let smooth = 0.5 + 0.49 * (rng.uniform() + 0.5);
    let tone = (rng.uniform() > 0.0).then(|| 150.0 + 2500.0 * f64::from(rng.uniform() + 0.5));
    let tone_level = 0.05 * f64::from(rng.uniform() + 0.5);
    let mut y = 0.0f32;
    (0..n)
        .map(|i| {
            y = smooth * y + (1.0 - smooth) * rng.uniform() * 4.0;
            let t = i as f64 / f64::from(RATE);
            let hum = tone.map_or(0.0, |f| tone_level * (std::f64::consts::TAU * f * t).sin());
            (level * f64::from(y) + hum) as f32
        })
        .collect()
}

/// A ding-dong: 660 Hz then 550 Hz, each struck and decaying, with a second harmonic.
fn doorbell(rng: &mut Noise, out: &mut [f32], at: usize) {
    let level = 0.15 + 0.2 * (rng.uniform() + 0.5);
    let detune = 1.0 + 0.02 * f64::from(rng.uniform());
    for (k, f) in [660.0, 550.0].into_iter().enumerate() {
        let start = at + k * (0.45 * f64::from(RATE)) as usize;
        for i in 0..(0.6 * f64::from(RATE)) as usize {
            let Some(s) = out.get_mut(start + i) else {
                break;
            };
            let t = i as f64 / f64::from(RATE);
            let env = (-t * 5.0).exp();
            let w = std::f64::consts::TAU * f * detune * t;
            *s += (level as f64 * env * (w.sin() + 0.3 * (2.0 * w).sin())) as f32;
        }
    }
}

/// Writes `n` clips of 1.5 s, half with a doorbell, and their CSV.
fn clips(dir: &Path, name: &str, n: usize, seed: u64) -> PathBuf {
    let mut rng = Noise::new(seed);
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("test setup");
    let mut csv = String::from("file,labels\n");
    for i in 0..n {
        let mut x = background(&mut rng, 1.5);
        let ring = i % 2 == 0;
        if ring {
            let at = (0.3 * (rng.uniform() + 0.5) as f64 * f64::from(RATE)) as usize;
            doorbell(&mut rng, &mut x, at);
        }
        write_wav_f32(&folder.join(format!("{i}.wav")), RATE, &x);
        csv.push_str(&format!(
            "{name}/{i}.wav,{}\n",
            if ring { LABEL } else { "" }
        ));
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv).expect("test setup");
    path
}

fn report_label(report: &Value, aggregate: &str) -> Value {
    let agg = report["aggregations"]
        .as_array()
        .expect("aggregations")
        .iter()
        .find(|a| a["aggregate"] == aggregate)
        .expect("the aggregation");
    agg["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .find(|l| l["label"] == LABEL)
        .expect("the new label")
        .clone()
}

#[test]
fn issue_28_a_new_sound_is_learned_evaluated_and_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 80 training clips (40 with the doorbell), 80 held out from another seed
    let train = clips(dir.path(), "train", 80, 11);
    let test = clips(dir.path(), "test", 80, 12);
    let head = dir.path().join("doorbell-model");
    let out = run_ok(
        bin()
            .args(["train-head", "--data"])
            .arg(&train)
            .arg("--model")
            .arg(repo("models/sitehome-tiny-ast"))
            .arg("--out")
            .arg(&head)
            .arg("--keep-base-labels"),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("5-fold cross-validation"), "{log}");
    for f in [
        "model.toml",
        "labels.csv",
        "head.json",
        "base-labels.csv",
        "README.md",
    ] {
        assert!(head.join(f).exists(), "{f} written");
    }
    assert!(
        dir.path().join(".soundsentry-cache").is_dir(),
        "the embeddings are cached"
    );

    let report_dir = dir.path().join("report");
    let out = run_ok(
        bin()
            .args(["eval", "--suggest-detect", "--data"])
            .arg(&test)
            .arg("--model")
            .arg(&head)
            .arg("--out")
            .arg(&report_dir),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[[detect.watch]]"), "{text}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(report_dir.join("report.json")).expect("report.json"),
    )
    .expect("JSON");
    assert_eq!(report["clips"], 80);
    // the page and its charts: every picture it names decodes, with more than one colour
    let html = std::fs::read_to_string(report_dir.join("index.html")).expect("index.html");
    assert!(html.contains(LABEL) && html.contains("macro mAP"), "{html}");
    for chart in ["roc.png", "pr.png", "labels.png", "scores.png"] {
        assert!(
            html.contains(&format!("src=\"{chart}\"")),
            "{chart} not on the page"
        );
        let picture = Picture::read(&report_dir.join(chart));
        assert!(picture.width >= 320 && picture.colours() > 2, "{chart}");
    }
    // the data has one label a clip: a confusion matrix and its heat map
    assert!(html.contains("src=\"confusion.png\""));
    Picture::read(&report_dir.join("confusion.png"));
    for aggregate in ["mean", "max", "vote", "weighted"] {
        let l = report_label(&report, aggregate);
        assert_eq!(l["positives"], 40, "{aggregate}");
        assert!(l["ap"].as_f64().is_some(), "{aggregate}: {l}");
        println!(
            "{aggregate}: AP {} F1 at {} {}",
            l["ap"], l["threshold"], l["f1"]
        );
    }
    // max: a clip has the sound where one of its windows reaches the threshold, as `run`
    // decides; the thresholds train-head chose hold on the held-out clips too
    let l = report_label(&report, "max");
    let ap = l["ap"].as_f64().expect("AP");
    let f1 = l["f1"].as_f64().expect("F1");
    assert!(ap >= 0.9, "held-out AP of the new label {ap}: {l}");
    assert!(f1 >= 0.9, "held-out F1 at the chosen threshold {f1}: {l}");

    // a 30 s scene with two rings (each ding-dong twice), found by `run`
    let mut rng = Noise::new(13);
    let mut scene = background(&mut Noise::new(14), 30.0);
    let rings = [(8.0, 10.5), (20.0, 22.5)];
    for (start, _) in rings {
        for k in 0..2 {
            let at = ((start + 1.2 * f64::from(k)) * f64::from(RATE)) as usize;
            doorbell(&mut rng, &mut scene, at);
        }
    }
    let wav = dir.path().join("scene.wav");
    write_wav_f32(&wav, RATE, &scene);
    let config = dir.path().join("scene.toml");
    std::fs::write(
        &config,
        format!(
            "sensor_id = \"door\"\n[model]\npath = {:?}\n[source]\nkind = \"file\"\npath = {:?}\n\
             [analysis]\nhop = \"250ms\"\n[detect]\nmin_duration = \"250ms\"\nhold = \"1s\"\n\
             [[detect.watch]]\nlabels = [{LABEL:?}]\n[output]\nstdout = true\n",
            head, wav
        ),
    )
    .expect("test setup");
    let out = run_ok(bin().args(["run", "--config"]).arg(&config));
    let events = json_lines(&out);
    let starts: Vec<f64> = events
        .iter()
        .filter(|e| e["state"] == "start" && e["label"] == LABEL)
        .map(|e| e["start_offset_s"].as_f64().expect("offset"))
        .collect();
    let ends: Vec<f64> = events
        .iter()
        .filter(|e| e["state"] == "end" && e["label"] == LABEL)
        .map(|e| e["end_offset_s"].as_f64().expect("offset"))
        .collect();
    println!("events of the new label: starts {starts:?}, ends {ends:?}");
    assert_eq!(starts.len(), rings.len(), "events: {events:?}");
    for ((start, end), (s, e)) in rings.iter().zip(starts.iter().zip(&ends)) {
        assert!((s - start).abs() <= 1.5, "start {s} for a ring at {start}");
        assert!((e - end).abs() <= 1.5, "end {e} for a ring ending at {end}");
    }
}

/// `train-head` on `csv` (written into `dir` with `clips` beside it); its stderr on failure.
fn refused(dir: &Path, csv: &str) -> String {
    let path = dir.join("bad.csv");
    std::fs::write(&path, csv).expect("test setup");
    let out = bin()
        .args(["train-head", "--folds", "3", "--data"])
        .arg(&path)
        .arg("--model")
        .arg(repo("models/sitehome-tiny-ast"))
        .arg("--out")
        .arg(dir.join("never"))
        .output()
        .expect("run");
    assert!(!out.status.success(), "{csv} was accepted");
    assert!(!dir.join("never").exists(), "nothing written for {csv}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn issue_28_bad_data_sets_are_refused_naming_the_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = clips(dir.path(), "c", 8, 21);
    let rows: Vec<String> = std::fs::read_to_string(&good)
        .expect("csv")
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let body = rows.join("\n");
    std::fs::write(dir.path().join("c/broken.wav"), b"RIFF, but not a WAV file").expect("setup");

    let e = refused(
        dir.path(),
        &format!("file,labels\n{body}\nc/gone.wav,{LABEL}\n"),
    );
    assert!(
        e.contains("bad.csv line 10") && e.contains("no such file"),
        "{e}"
    );
    let e = refused(dir.path(), &format!("file,label\n{body}\n"));
    assert!(e.contains("unknown: [\"label\"]"), "{e}");
    let one_class: Vec<String> = rows.iter().step_by(2).cloned().collect();
    let e = refused(
        dir.path(),
        &format!("file,labels\n{}\n", one_class.join("\n")),
    );
    assert!(e.contains("every clip has it"), "{e}");
    let e = refused(
        dir.path(),
        &format!("file,labels\n{}\n", rows[..3].join("\n")),
    );
    assert!(e.contains("fewer than the 3 folds"), "{e}");
    let e = refused(dir.path(), &format!("file,labels\n{body}\nc/broken.wav,\n"));
    assert!(
        e.contains("bad.csv line 10") && e.contains("could not be embedded (nothing was trained)"),
        "{e}"
    );
}

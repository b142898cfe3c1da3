//! Waveform-input models (`input = "waveform"`): the tiny fixture of
//! `tools/make_waveform_fixture.py` scored offline and by the daemon, against onnxruntime's
//! scores of the same windows, at the model's rate and resampled; and the manifests refused.

use std::path::Path;

use serde_json::Value;
use soundsentry::classify::stream_windows;
use soundsentry::model::{Model, ModelConfig};

use crate::util::{bin, fixture, json_lines, max_abs_diff, run_ok, write_wav_f32};

fn model_dir() -> std::path::PathBuf {
    fixture("waveform-tiny")
}

/// onnxruntime's scores and embeddings of the scene's consecutive 1 s windows.
fn expected() -> (Vec<String>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(model_dir().join("expected.json")).expect("expected.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    let floats = |a: &Value| -> Vec<f32> {
        a.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    let labels = v["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l.as_str().expect("label").to_owned())
        .collect();
    let windows = v["windows"].as_array().expect("windows");
    let scores = windows.iter().map(|w| floats(&w["scores"])).collect();
    let embeddings = windows.iter().map(|w| floats(&w["embedding"])).collect();
    (labels, scores, embeddings)
}

#[test]
fn a_waveform_model_scores_file_windows_as_onnxruntime_does() {
    let model = Model::load(&ModelConfig::new(model_dir())).expect("fixture loads");
    assert_eq!(model.manifest.window_frames, 100, "1 s in 10 ms blocks");
    assert_eq!(model.manifest.frame_bins(), 160);
    let (labels, want_scores, want_embeddings) = expected();
    let names: Vec<&str> = model.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, labels);
    let (mut scores, mut embeddings) = (Vec::new(), Vec::new());
    let wav = model_dir().join("scene.wav");
    let streamed = stream_windows(&model.manifest, &wav, &mut |_| {}, &mut |input| {
        assert_eq!(input.len(), 16000, "one window of samples");
        let (s, e) = model.score_and_embed(&input)?;
        scores.push(s);
        embeddings.push(e.expect("the fixture has an embedding"));
        Ok(())
    })
    .expect("classified");
    assert_eq!(streamed.windows, 5);
    assert_eq!(scores.len(), want_scores.len());
    for (i, ((s, w), (e, we))) in scores
        .iter()
        .zip(&want_scores)
        .zip(embeddings.iter().zip(&want_embeddings))
        .enumerate()
    {
        let d = max_abs_diff(s, w);
        assert!(d < 1e-5, "window {i}: scores {s:?} vs onnxruntime {w:?}");
        let d = max_abs_diff(e, we);
        assert!(
            d < 1e-4,
            "window {i}: embedding {e:?} vs onnxruntime {we:?}"
        );
    }
    // The scene is quiet, then a 1 kHz tone from 1.5 s to 3.5 s, then noise: what the
    // windows heard is where it was.
    let tone: Vec<bool> = scores.iter().map(|s| s[1] > 0.9).collect();
    assert_eq!(tone, [false, false, true, false, false]);
    assert!(scores[1][2] > 0.9, "1-2 s rises: {:?}", scores[1]);
}

fn config(dir: &Path, wav: &Path, hop: &str) -> std::path::PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            "sensor_id = \"t\"\n[model]\npath = {:?}\n[source]\nkind = \"file\"\npath = {:?}\n\
             [analysis]\nhop = \"{hop}\"\n[detect]\non = 0.9\noff = 0.5\nmin_duration = \"0s\"\n\
             hold = \"0s\"\n[output]\nstdout = true\nscores = true\ntop_k = 3\n",
            model_dir(),
            wav
        ),
    )
    .expect("config");
    path
}

/// `end_offset_s` → (label → score) of every scores line.
fn scores_by_end(lines: &[Value]) -> Vec<(f64, Vec<(String, f32)>)> {
    lines
        .iter()
        .filter(|l| l["type"] == "scores")
        .map(|l| {
            let top = l["top"]
                .as_array()
                .expect("top")
                .iter()
                .map(|t| {
                    let label = t["label"].as_str().expect("label").to_owned();
                    (label, t["score"].as_f64().expect("score") as f32)
                })
                .collect();
            (l["end_offset_s"].as_f64().expect("end"), top)
        })
        .collect()
}

fn score_of(top: &[(String, f32)], label: &str) -> f32 {
    top.iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("{label} not in {top:?}"))
        .1
}

#[test]
fn the_daemon_cuts_waveform_windows_from_the_stream_at_each_hop() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run_ok(bin().arg("run").arg("--config").arg(config(
        dir.path(),
        &model_dir().join("scene.wav"),
        "500ms",
    )));
    let windows = scores_by_end(&json_lines(&out));
    let ends: Vec<f64> = windows.iter().map(|(e, _)| *e).collect();
    assert_eq!(
        ends,
        (1..=10).map(|i| i as f64 * 0.5).collect::<Vec<_>>(),
        "a window every 500 ms of the 5 s file"
    );
    // The windows ending on a whole second are the file's consecutive windows: the same
    // samples, so onnxruntime's scores.
    let (labels, want, _) = expected();
    for (i, want) in want.iter().enumerate() {
        let (end, top) = &windows[2 * i + 1];
        assert_eq!(*end, (i + 1) as f64);
        for (label, w) in labels.iter().zip(want) {
            let got = score_of(top, label);
            assert!((got - w).abs() < 1e-5, "{end} s {label}: {got} vs {w}");
        }
    }
    // The first window holds 0.5 s only (padded with silence); the one ending at 2.5 s
    // holds a whole second of tone.
    assert!(score_of(&windows[4].1, "Tone 1 kHz") > 0.99);
    assert!(score_of(&windows[0].1, "Sound") < 0.01);
}

#[test]
fn a_waveform_model_hears_audio_at_another_rate_resampled() {
    // 48 kHz audio into the 16 kHz model: silence, a 1 kHz tone from 1.5 s to 3.5 s, silence.
    let rate = 48000;
    let mut samples = vec![0.0f32; 5 * rate as usize];
    for (i, s) in samples.iter_mut().enumerate() {
        let t = i as f64 / f64::from(rate);
        if (1.5..3.5).contains(&t) {
            *s = (0.1 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32;
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let wav = dir.path().join("tone-48k.wav");
    write_wav_f32(&wav, rate, &samples);
    let lines = json_lines(&run_ok(bin().arg("run").arg("--config").arg(config(
        dir.path(),
        &wav,
        "250ms",
    ))));
    let windows = scores_by_end(&lines);
    assert_eq!(windows.len(), 20);
    let at = |end: f64, label: &str| {
        let (_, top) = windows
            .iter()
            .find(|(e, _)| (e - end).abs() < 1e-6)
            .unwrap_or_else(|| panic!("no window ends at {end}"));
        score_of(top, label)
    };
    assert!(at(1.0, "Sound") < 0.01, "silence");
    assert!(at(3.0, "Tone 1 kHz") > 0.99, "a second of tone");
    assert!(at(2.0, "Rising") > 0.99, "silence, then tone");
    assert!(at(4.0, "Rising") < 0.01, "tone, then silence");
    // Half a window of tone: a share near one half, a logit near 0.
    assert!((at(2.0, "Tone 1 kHz") - 0.5).abs() < 0.05);
    // One "Tone 1 kHz" event, over the windows that hold mostly tone.
    let events: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"].is_null() && l["label"] == "Tone 1 kHz")
        .collect();
    assert!(!events.is_empty(), "no tone event in {lines:?}");
    let start = events[0]["start_offset_s"].as_f64().expect("start");
    assert!((1.0..=2.5).contains(&start), "tone event from {start} s");
}

/// Writes a model folder with the fixture's graph and labels and this manifest.
fn folder_with(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["model.onnx", "labels.csv"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).expect("copy");
    }
    std::fs::write(dir.path().join("model.toml"), manifest).expect("manifest");
    dir
}

#[test]
fn waveform_manifests_that_cannot_work_are_refused_with_the_reason() {
    let head = "name = \"w\"\nonnx = \"model.onnx\"\nlabels = \"labels.csv\"\n\
                sample_rate = 16000\noutput = \"sigmoid\"\n";
    let cases = [
        ("input = \"waveform\"\n", "needs [waveform]"),
        (
            "input = \"waveform\"\n[waveform]\nwindow_samples = 16000\n[fbank]\nwindow = \
             \"hanning\"\nwaveform_scale = 1.0\nmel_bins = 128\n",
            "[fbank] and [normalize] are for input = \"fbank\"",
        ),
        (
            "input = \"waveform\"\nwindow_frames = 100\n[waveform]\nwindow_samples = 16000\n",
            "not window_frames",
        ),
        (
            "input = \"waveform\"\n[waveform]\nwindow_samples = 16000\nblock_samples = 300\n",
            "must divide window_samples",
        ),
        (
            "input = \"waveform\"\n[waveform]\nwindow_samples = 16000\nscale = 0\n",
            "waveform.scale = 0 must be > 0",
        ),
        (
            "input = \"fbank\"\nwindow_frames = 100\n[waveform]\nwindow_samples = 16000\n",
            "needs [normalize]",
        ),
        (
            "input = \"waveform\"\nsensitivity = -1\n[waveform]\nwindow_samples = 16000\n",
            "sensitivity = -1 must be > 0",
        ),
        // The graph takes 16000 samples.
        (
            "input = \"waveform\"\n[waveform]\nwindow_samples = 8000\n",
            "does not fit the manifest's (1, 8000)",
        ),
    ];
    for (body, want) in cases {
        let dir = folder_with(&format!("{head}{body}"));
        let err = match Model::load(&ModelConfig::new(dir.path())) {
            Ok(_) => panic!("loaded:\n{body}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{body}\n→ {err}\nwanted {want:?}");
    }
    // What the fixture's own manifest says loads; `fbank` has nothing to write for it.
    let out = bin()
        .args(["fbank", "--model"])
        .arg(model_dir())
        .arg(model_dir().join("scene.wav"))
        .arg("--out")
        .arg(std::env::temp_dir().join("waveform-fbank.npy"))
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waveform-input model"), "{err}");
}

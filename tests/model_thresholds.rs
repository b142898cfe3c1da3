//! A model's own per-label thresholds (`[thresholds]` in model.toml): used where the
//! configuration sets no `on`, never over one it sets; bad tables refused at load.

use std::path::Path;

use soundsentry::config::{resolve_watches, Config};
use soundsentry::model::{slugify, Label, Model, ModelConfig};

fn labels() -> Vec<Label> {
    [("Siren", Some(0.8)), ("Dog", None), ("Speech", Some(0.2))]
        .into_iter()
        .map(|(name, threshold)| Label {
            name: name.into(),
            mid: String::new(),
            slug: slugify(name),
            threshold,
        })
        .collect()
}

/// (name, on, off) of every watch the configuration text resolves to.
fn watches(detect: &str) -> Vec<(String, f32, f32)> {
    let text = format!("[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n{detect}");
    let cfg = Config::parse(&text, Path::new("/etc/x/soundsentry.toml")).expect("valid config");
    resolve_watches(&cfg.detect, &labels())
        .expect("labels resolve")
        .into_iter()
        .map(|w| (w.name, w.settings.on, w.settings.off))
        .collect()
}

fn w(name: &str, on: f32, off: f32) -> (String, f32, f32) {
    (name.to_owned(), on, off)
}

#[test]
fn model_thresholds_apply_where_the_config_sets_no_on() {
    assert_eq!(
        watches(""),
        [
            w("Siren", 0.8, 0.35),
            w("Dog", 0.5, 0.35),
            w("Speech", 0.2, 0.2)
        ]
    );
    // [detect] on applies to every label, the model's thresholds give way.
    assert_eq!(
        watches("[detect]\non = 0.4\n"),
        [
            w("Siren", 0.4, 0.35),
            w("Dog", 0.4, 0.35),
            w("Speech", 0.4, 0.35)
        ]
    );
    // A configured off stays, but never above the model's on.
    assert_eq!(
        watches("[detect]\noff = 0.3\n"),
        [
            w("Siren", 0.8, 0.3),
            w("Dog", 0.5, 0.3),
            w("Speech", 0.2, 0.2)
        ]
    );
}

#[test]
fn watches_take_the_model_threshold_unless_they_set_their_own_and_groups_never() {
    let got = watches(
        "[[detect.watch]]\nlabels = [\"siren\"]\n\
         [[detect.watch]]\nlabels = [\"Speech\"]\non = 0.6\n\
         [[detect.watch]]\nname = \"Alarm\"\nlabels = [\"Siren\", \"Speech\"]\n",
    );
    assert_eq!(
        got,
        [
            w("siren", 0.8, 0.35),
            w("Speech", 0.6, 0.35),
            w("Alarm", 0.5, 0.35)
        ]
    );
}

/// A copy of the default model's folder with `extra` appended to its model.toml.
fn model_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/sitehome-tiny-ast");
    for f in ["model.onnx", "labels.csv"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy model file");
    }
    let toml = std::fs::read_to_string(src.join("model.toml")).expect("model.toml");
    let toml = match toml.find("\n[thresholds]") {
        Some(i) => toml[..i].to_owned(),
        None => toml,
    };
    std::fs::write(dir.path().join("model.toml"), format!("{toml}\n{extra}"))
        .expect("write model.toml");
    dir
}

#[test]
fn a_bad_thresholds_table_is_refused_with_its_reason() {
    let bad = model_with("[thresholds]\n\"Dog\" = 1.5\n");
    let e = Model::load(&ModelConfig::new(bad.path()))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("thresholds") && e.contains("1.5"), "{e}");

    let unknown = model_with("[thresholds]\n\"Dgo\" = 0.5\n");
    let e = Model::load(&ModelConfig::new(unknown.path()))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("\"Dgo\" is not a label"), "{e}");

    let good = model_with("[thresholds]\n\"Dog\" = 0.65\n");
    let m = Model::load(&ModelConfig::new(good.path())).expect("loads");
    let dog = m
        .labels
        .iter()
        .find(|l| l.name == "Dog")
        .expect("Dog label");
    assert_eq!(dog.threshold, Some(0.65));
    assert!(m
        .labels
        .iter()
        .filter(|l| l.name != "Dog")
        .all(|l| l.threshold.is_none()));
}

//! `soundsentry train-head`: a head on a model's embeddings of labelled clips, cross-validated,
//! written with the base graph as a new model folder.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{counted_bar as progress, fmt_opt as fmt};
use crate::cli::TrainHeadArgs;
use crate::clips::{cache, Clips};
use crate::eval::metrics;
use crate::head::train::{check_data, choose_threshold, cross_validate, fit, TrainOptions};
use crate::head::Head;
use crate::model::{Model, ModelConfig};

/// Loads and checks the data, embeds it (cached), cross-validates, trains on all clips and
/// writes the folder; nothing is written before every clip was embedded.
pub fn train_head(args: &TrainHeadArgs) -> anyhow::Result<()> {
    let clips = Clips::load(&args.data)?;
    let folds = args.folds as usize;
    let y = clips.truth(&clips.labels);
    check_data(&y, &clips.labels, folds)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.data.display()))?;
    if let Some(p) = args
        .target_precision
        .filter(|p| !(0.0..=1.0).contains(p) || p.is_nan())
    {
        anyhow::bail!("--target-precision {p}: must lie in 0..1");
    }
    if !(args.l2.is_finite() && args.l2 >= 0.0) {
        anyhow::bail!("--l2 {}: must be a number >= 0", args.l2);
    }
    if args.out.exists() && !args.force {
        anyhow::bail!("{}: exists; --force replaces it", args.out.display());
    }
    let threads = crate::config::max_threads(args.threads as usize)
        .map_err(|e| anyhow::anyhow!("--threads {}: {e}", args.threads))?;
    let model = Model::load(&ModelConfig::new(&args.model).threads(threads.get()))
        .with_context(|| format!("--model {}", args.model.display()))?;
    if !model.has_embedding() {
        return Err(crate::embed::no_embedding(&model, &args.model));
    }
    if model.head().is_some() {
        anyhow::bail!(
            "--model {}: already has a trained head; train from its base model folder",
            args.model.display()
        );
    }
    if args.keep_base_labels {
        if let Some(l) = clips
            .labels
            .iter()
            .find(|l| model.labels.iter().any(|b| &b.name == *l))
        {
            anyhow::bail!("label {l:?} is a label of the base model too; rename it or leave out --keep-base-labels");
        }
    }
    let positives: Vec<usize> = (0..clips.labels.len())
        .map(|l| y.iter().filter(|r| r[l]).count())
        .collect();
    eprintln!(
        "{} clips ({} background), {} labels: {}",
        clips.clips.len(),
        y.iter().filter(|r| !r.contains(&true)).count(),
        clips.labels.len(),
        clips
            .labels
            .iter()
            .zip(&positives)
            .map(|(l, p)| format!("{l} {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let bar = progress(clips.clips.len(), "embedding", "clips");
    let x = cache::embeddings(&clips, &model, &args.model, &mut |done, cached| {
        bar.set_position(done as u64);
        bar.set_message(format!("({cached} from the cache)"));
    })?;
    bar.finish_and_clear();

    let opts = TrainOptions {
        l2: args.l2,
        hidden: (args.hidden > 0).then_some(args.hidden),
        epochs: args.epochs as usize,
        ..TrainOptions::default()
    };
    let started = std::time::Instant::now();
    let bar = progress(folds, "cross-validating", "folds");
    let oof = cross_validate(&x, &y, &clips.labels, &opts, folds, &mut |f| {
        bar.set_position(f as u64)
    });
    bar.finish_and_clear();
    let mut thresholds = Vec::new();
    eprintln!("{folds}-fold cross-validation (out-of-fold scores):");
    eprintln!(
        "{:<28} {:>6} {:>7} {:>7} {:>9} {:>6} {:>6} {:>6}",
        "label", "clips", "AP", "ROC-AUC", "threshold", "P", "R", "F1"
    );
    for (l, name) in clips.labels.iter().enumerate() {
        let truth: Vec<bool> = y.iter().map(|r| r[l]).collect();
        let scores: Vec<f32> = oof.iter().map(|s| s[l]).collect();
        let s64: Vec<f64> = scores.iter().map(|&v| f64::from(v)).collect();
        let t = match choose_threshold(&truth, &scores, args.target_precision) {
            Some(t) => t,
            None => {
                eprintln!(
                    "  {name}: no threshold reaches precision {:?}; the best-F1 one is used",
                    args.target_precision
                );
                choose_threshold(&truth, &scores, None).unwrap_or(0.5)
            }
        };
        let c = metrics::counts_at(&truth, &s64, f64::from(t));
        eprintln!(
            "{:<28} {:>6} {:>7} {:>7} {:>9.3} {:>6.3} {:>6.3} {:>6.3}",
            name,
            positives[l],
            fmt(metrics::average_precision(&truth, &s64)),
            fmt(metrics::roc_auc(&truth, &s64)),
            t,
            c.precision(),
            c.recall(),
            c.f1()
        );
        thresholds.push(t);
    }

    let bar = progress(opts.epochs, "training", "epochs");
    let head = fit(&x, &y, &clips.labels, &opts, &mut |e| {
        bar.set_position(e as u64)
    });
    bar.finish_and_clear();
    let train_s = started.elapsed().as_secs_f64();
    let name = args.name.clone().unwrap_or_else(|| {
        args.out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "head".into())
    });
    let card = Card {
        name: &name,
        clips: &clips,
        positives: &positives,
        folds,
        oof: &oof,
        thresholds: &thresholds,
        opts: &opts,
    };
    write_folder(args, &model, &head, &thresholds, &name, &card)?;
    eprintln!(
        "{} written (cross-validation and training {train_s:.1} s); try it: soundsentry \
         classify --model {} FILE",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// What the new folder's README says.
struct Card<'a> {
    name: &'a str,
    clips: &'a Clips,
    positives: &'a [usize],
    folds: usize,
    oof: &'a [Vec<f32>],
    thresholds: &'a [f32],
    opts: &'a TrainOptions,
}

impl Card<'_> {
    fn markdown(&self, base: &Model) -> String {
        let y = self.clips.truth(&self.clips.labels);
        let mut s = format!(
            "# {}\n\nA head trained by `soundsentry train-head` on the embeddings of model \
             `{}` ({}), from {} clips of `{}` ({} without a label).\n\nHead: {}, L2 {}, {} \
             full-batch steps, classes balanced per label.\n\n## {}-fold cross-validation\n\n\
             | label | clips | AP | ROC-AUC | threshold | precision | recall | F1 |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
            self.name,
            base.name(),
            base.manifest.description,
            self.clips.clips.len(),
            self.clips.source.display(),
            y.iter().filter(|r| !r.contains(&true)).count(),
            match self.opts.hidden {
                Some(h) => format!("one hidden layer of {h} (ReLU), sigmoid outputs"),
                None => "logistic regression per label".to_owned(),
            },
            self.opts.l2,
            self.opts.epochs,
            self.folds
        );
        for (l, name) in self.clips.labels.iter().enumerate() {
            let truth: Vec<bool> = y.iter().map(|r| r[l]).collect();
            let s64: Vec<f64> = self.oof.iter().map(|r| f64::from(r[l])).collect();
            let c = metrics::counts_at(&truth, &s64, f64::from(self.thresholds[l]));
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                self.positives[l],
                fmt(metrics::average_precision(&truth, &s64)),
                fmt(metrics::roc_auc(&truth, &s64)),
                self.thresholds[l],
                c.precision(),
                c.recall(),
                c.f1()
            ));
        }
        s.push_str(
            "\nThe thresholds are written into model.toml's `[thresholds]`; figures from clips \
             of the same recordings as the training ones overstate what a new place gives.\n",
        );
        s
    }
}

/// Writes the folder under a temporary name and renames it into place: model.toml (the
/// base's, with `[head]`, the new labels and thresholds), the base's ONNX file (hard-linked
/// where possible), base-labels.csv, labels.csv, head.json, README.md.
fn write_folder(
    args: &TrainHeadArgs,
    base: &Model,
    head: &Head,
    thresholds: &[f32],
    name: &str,
    card: &Card<'_>,
) -> anyhow::Result<()> {
    let out = &args.out;
    let tmp = partial(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    let result = (|| -> anyhow::Result<()> {
        let onnx = &base.manifest.onnx;
        let from = args.model.join(onnx);
        let to = tmp.join(Path::new(onnx).file_name().unwrap_or_default());
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
        std::fs::copy(
            args.model.join(&base.manifest.labels),
            tmp.join("base-labels.csv"),
        )?;
        head.save(&tmp.join("head.json"))?;
        let mut labels = csv::Writer::from_path(tmp.join("labels.csv"))?;
        labels.write_record(["index", "mid", "display_name"])?;
        let kept = if args.keep_base_labels {
            base.labels.as_slice()
        } else {
            &[]
        };
        let names = kept
            .iter()
            .map(|l| (l.mid.as_str(), l.name.as_str()))
            .chain(head.labels.iter().map(|l| ("", l.as_str())));
        for (i, (mid, n)) in names.enumerate() {
            labels.write_record([i.to_string().as_str(), mid, n])?;
        }
        labels.flush()?;
        let text = std::fs::read_to_string(args.model.join("model.toml"))?;
        let mut m: toml::Table = toml::from_str(&text)?;
        m.insert("name".into(), name.into());
        m.insert(
            "description".into(),
            format!("head on {} trained on {}", base.name(), args.data.display()).into(),
        );
        m.insert(
            "onnx".into(),
            to.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
                .into(),
        );
        m.insert("labels".into(), "labels.csv".into());
        m.insert(
            "num_labels".into(),
            ((kept.len() + head.labels.len()) as i64).into(),
        );
        let mut t = toml::Table::new();
        for l in kept {
            if let Some(v) = l.threshold {
                t.insert(l.name.clone(), f64::from(v).into());
            }
        }
        for (l, v) in head.labels.iter().zip(thresholds) {
            t.insert(
                l.clone(),
                ((f64::from(*v) * 1000.0).round() / 1000.0).into(),
            );
        }
        m.insert("thresholds".into(), t.into());
        let mut h = toml::Table::new();
        h.insert("file".into(), "head.json".into());
        h.insert("base_labels".into(), "base-labels.csv".into());
        h.insert("keep_base_labels".into(), args.keep_base_labels.into());
        m.insert("head".into(), h.into());
        let manifest = format!(
            "# Model manifest written by soundsentry train-head (base: {}).\n{}",
            base.name(),
            toml::to_string(&m)?
        );
        std::fs::write(tmp.join("model.toml"), manifest)?;
        std::fs::write(tmp.join("README.md"), card.markdown(base))?;
        // the folder must load as any model does before it is put in place
        Model::load(&ModelConfig::new(&tmp)).context("the new folder does not load")?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("{}: not written", out.display())));
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| out.display().to_string())?;
    }
    std::fs::rename(&tmp, out).with_context(|| out.display().to_string())?;
    Ok(())
}

fn partial(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

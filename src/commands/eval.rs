//! `soundsentry eval`: a model's figures on labelled clips, each file's windows combined four
//! ways (mean, max, vote, weighted) side by side, printed and written as report.json, an
//! HTML page and PNG charts.

use std::io::Write;

use anyhow::Context;

use super::{counted_bar, fmt_opt as fmt};
use crate::aggregate::{Aggregate, Aggregator};
use crate::classify::{stream_windows, window_thresholds};
use crate::cli::EvalArgs;
use crate::clips::Clips;
use crate::eval::page::Page;
use crate::eval::report::{figures, Figures};
use crate::model::{Model, ModelConfig};

/// Scores every clip (all of them, or nothing is reported), then prints the figures of
/// `--aggregate` and a comparison of the four aggregations, and writes `--out`.
pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    if !(args.on.is_finite() && args.on > 0.0 && args.on < 1.0) {
        anyhow::bail!("--on {}: must lie strictly between 0 and 1", args.on);
    }
    let clips = Clips::load(&args.data)?;
    let threads = crate::config::max_threads(args.threads as usize)
        .map_err(|e| anyhow::anyhow!("--threads {}: {e}", args.threads))?;
    let model = Model::load(&ModelConfig::new(&args.model).threads(threads.get()))
        .with_context(|| format!("--model {}", args.model.display()))?;
    let names: Vec<String> = model.labels.iter().map(|l| l.name.clone()).collect();
    let unknown: Vec<String> = clips
        .labels
        .iter()
        .filter(|l| !names.contains(l))
        .map(|l| {
            let first = clips.clips.iter().find(|c| c.labels.contains(l));
            format!("{l:?} ({})", first.map_or("", |c| c.origin.as_str()))
        })
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "{}: {} not a label of model {:?} (its labels: {})",
            args.data.display(),
            unknown.join(", "),
            model.name(),
            names.join(", ")
        );
    }
    let truth: Vec<Vec<bool>> = clips.truth(&names);
    let reported: Vec<usize> = (0..names.len())
        .filter(|&l| truth.iter().any(|r| r[l]))
        .collect();
    let thresholds = window_thresholds(&model, args.on as f32);

    let bar = counted_bar(clips.clips.len(), "scoring", "clips");
    let (mut per_clip, mut failed, mut windows) = (Vec::new(), Vec::new(), 0usize);
    for clip in &clips.clips {
        let mut acc = Aggregator::new(thresholds.clone());
        let result = stream_windows(&model.manifest, &clip.path, &mut |_| {}, &mut |input| {
            let s = model.score_prepared(&input)?;
            if let Some(bad) = s.iter().find(|v| !v.is_finite()) {
                anyhow::bail!("the model gave a score of {bad}");
            }
            acc.push(&s);
            Ok(())
        });
        match result {
            Ok(_) if acc.windows() == 0 => failed.push(format!(
                "{}: no audio in {}",
                clip.origin,
                clip.path.display()
            )),
            Ok(_) => {
                windows += acc.windows();
                per_clip.push(acc);
            }
            Err(e) => failed.push(format!("{}: {:#}", clip.origin, e)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} clips could not be scored (nothing was evaluated):\n{}",
            failed.len(),
            clips.clips.len(),
            failed.join("\n")
        );
    }

    let all: Vec<Figures> = Aggregate::ALL
        .iter()
        .map(|&how| {
            let scores: Vec<Vec<f32>> = per_clip.iter().map(|a| a.scores(how)).collect();
            figures(
                how,
                &names,
                &truth,
                &scores,
                &thresholds,
                &reported,
                clips.single_label(),
            )
        })
        .collect();
    let chosen = all
        .iter()
        .find(|f| f.aggregate == args.aggregate.name())
        .unwrap_or(&all[0]);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} clips ({} windows), model {}; per label, {} of each file's windows:",
        args.data.display(),
        clips.clips.len(),
        windows,
        model.name(),
        chosen.aggregate
    )?;
    print_labels(&mut out, chosen)?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<10} {:>9} {:>9} {:>15} {:>13}",
        "aggregate", "macro mAP", "micro mAP", "subset accuracy", "Hamming loss"
    )?;
    for f in &all {
        writeln!(
            out,
            "{:<10} {:>9} {:>9} {:>15.3} {:>13.4}",
            f.aggregate,
            fmt(f.macro_map),
            fmt(f.micro_map),
            f.subset_accuracy,
            f.hamming_loss
        )?;
    }
    if let Some(c) = &chosen.confusion {
        writeln!(
            out,
            "\nconfusion ({}; rows: truth, columns: decision)",
            chosen.aggregate
        )?;
        write!(out, "{:<24}", "")?;
        for col in &c.columns {
            write!(out, " {:>10}", short(col))?;
        }
        writeln!(out)?;
        for (row, counts) in c.rows.iter().zip(&c.counts) {
            write!(out, "{:<24}", short(row))?;
            for n in counts {
                write!(out, " {n:>10}")?;
            }
            writeln!(out)?;
        }
    }
    if args.suggest_detect {
        writeln!(out, "\n{}", suggest_detect(chosen))?;
    }
    drop(out);
    if let Some(dir) = &args.out {
        write_report(dir, args, &model, &clips, windows, &all)?;
        let how = Aggregate::ALL
            .iter()
            .copied()
            .find(|a| a.name() == chosen.aggregate)
            .unwrap_or(args.aggregate);
        let scores: Vec<Vec<f32>> = per_clip.iter().map(|a| a.scores(how)).collect();
        let page = Page {
            model: model.name(),
            data: &args.data,
            clips: clips.clips.len(),
            windows,
            all: &all,
            chosen,
            names: &names,
            truth: &truth,
            scores: &scores,
        };
        let written = crate::eval::page::write(dir, &page)?;
        eprintln!(
            "report written to {} (report.json, {})",
            dir.display(),
            written
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn print_labels(out: &mut impl Write, f: &Figures) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>6} {:>6} {:>7} {:>6} {:>9} {:>6} {:>6} {:>6} {:>9} {:>6}",
        "label", "clips", "AP", "ROC-AUC", "PR-AUC", "threshold", "P", "R", "F1", "best-F1 t", "F1"
    )?;
    for l in &f.labels {
        writeln!(
            out,
            "{:<28} {:>6} {:>6} {:>7} {:>6} {:>9.3} {:>6.3} {:>6.3} {:>6.3} {:>9} {:>6}",
            short(&l.label),
            l.positives,
            fmt(l.ap),
            fmt(l.roc_auc),
            fmt(l.pr_auc),
            l.threshold,
            l.precision,
            l.recall,
            l.f1,
            fmt(l.best.map(|b| b.threshold)),
            fmt(l.best.map(|b| b.f1)),
        )?;
    }
    Ok(())
}

/// A `[detect]` snippet: one watch per label with its best-F1 threshold as `on`.
fn suggest_detect(f: &Figures) -> String {
    let mut s = format!(
        "# Thresholds with the best F1 on these clips ({} of each file's windows); for clips\n\
         # of one or two windows they carry over to the window scores `run` decides on.\n\
         [detect]\n",
        f.aggregate
    );
    for l in &f.labels {
        if let Some(b) = l.best {
            let on = (b.threshold * 1000.0).round() / 1000.0;
            let on = on.clamp(0.001, 0.999);
            s.push_str(&format!(
                "\n[[detect.watch]]\nlabels = [{:?}]\non = {on}\noff = {}\n",
                l.label,
                ((on * 0.7) * 1000.0).round() / 1000.0
            ));
        }
    }
    s
}

fn write_report(
    dir: &std::path::Path,
    args: &EvalArgs,
    model: &Model,
    clips: &Clips,
    windows: usize,
    all: &[Figures],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let report = serde_json::json!({
        "v": 1,
        "model": model.name(),
        "model_dir": args.model.display().to_string(),
        "data": args.data.display().to_string(),
        "clips": clips.clips.len(),
        "windows": windows,
        "on": args.on,
        "aggregations": all,
    });
    let path = dir.join("report.json");
    let tmp = dir.join("report.json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    Ok(())
}

fn short(s: &str) -> String {
    if s.chars().count() <= 24 {
        s.to_owned()
    } else {
        s.chars().take(23).chain(['…']).collect()
    }
}

//! The subcommands' work, behind the thin `main`.

mod embed;
mod eval;
mod levels;
mod report;
mod train_head;

pub use embed::embed;
pub use eval::eval;
pub use levels::{calibrate, levels};
pub use report::report;
pub use train_head::train_head;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::classify::{classify_file, stream_frames, stream_windows};
use crate::cli::{ClassifyArgs, FbankArgs, RunArgs};
use crate::config::{resolve_watches, Config, ConfigError, Overrides};
use crate::detect::Watch;
use crate::format::{top_json, top_k};
use crate::model::{Model, ModelConfig};
use anyhow::Context;

/// Loads the configuration (with the command line's `overrides`), its model, and resolves
/// watched labels: everything `run` needs before a thread starts. Label errors are reported
/// like config errors, with key paths.
pub fn load_all(path: &Path, overrides: &Overrides) -> anyhow::Result<(Config, Model, Vec<Watch>)> {
    let cfg = Config::load_with(path, overrides)?;
    if let Some(k) = cfg.kernels {
        crate::model::kernels::select(k)
            .map_err(|e| anyhow::anyhow!("{}: model.kernels: {e}", path.display()))?;
    }
    let model =
        Model::load(&cfg.model).with_context(|| format!("{}: model.path", path.display()))?;
    let watches = resolve_watches(&cfg.detect, &model.labels).map_err(|errors| ConfigError {
        file: path.to_owned(),
        errors,
    })?;
    Ok((cfg, model, watches))
}

/// `soundsentry run`.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.config.as_path();
    let overrides = Overrides {
        mqtt: args.mqtt.clone(),
        realtime: args.realtime,
    };
    let (cfg, model, watches) = load_all(config, &overrides)?;
    let control = crate::pipeline::Control {
        config: Some(config.to_owned()),
        ..Default::default()
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&control.shutdown))
            .context("installing signals")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&control.reload))
        .context("installing signals")?;
    tracing::info!(
        model = model.name(),
        sensor = %cfg.sensor_id,
        device = %model.device(),
        attention = model.attention(),
        kernels = %crate::model::kernels::chosen(),
        isa = crate::model::kernels::isa(),
        threads = cfg.model.threads.get(),
        mqtt = cfg.mqtt.url.as_ref().map(|u| u.to_string()).unwrap_or_else(|| "off".into()),
        "run started"
    );
    let stats = crate::pipeline::run(&cfg, &model, watches, &control, std::io::stdout())?;
    tracing::info!(
        audio_s = format!("{:.1}", stats.audio_s),
        wall_s = format!("{:.2}", stats.wall_s),
        realtime_factor = format!("{:.1}", stats.audio_s / stats.wall_s.max(1e-9)),
        windows_total = stats.windows_total,
        windows_skipped_total = stats.windows_skipped_total,
        events_total = stats.events_total,
        nonfinite_samples_total = crate::audio::nonfinite_total(),
        "run finished"
    );
    Ok(())
}

/// `soundsentry classify`: every file is tried; failures are reported and make the exit
/// status non-zero, without hiding the results of the other files.
pub fn classify(args: &ClassifyArgs) -> anyhow::Result<()> {
    let ClassifyArgs {
        files,
        model,
        aggregate,
        top_k: k,
        json,
        threads,
    } = args;
    let (aggregate, k, json) = (*aggregate, *k, *json);
    let threads = crate::config::max_threads(*threads as usize)
        .map_err(|e| anyhow::anyhow!("--threads {threads}: {e}"))?;
    let model = Model::load(&ModelConfig::new(model).threads(threads.get()))?;
    let mut failed = 0;
    let stdout = std::io::stdout();
    for path in files {
        let bar = progress_bar(path);
        let result = classify_file(&model, path, aggregate, &mut |f| {
            bar.set_position((f * 1000.0) as u64)
        });
        bar.finish_and_clear();
        let scores = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let top = top_k(&scores.scores, k.min(model.labels.len()));
        let mut out = stdout.lock();
        if json {
            let top = top_json(&model.labels, &scores.scores, top.len());
            let line = serde_json::json!({
                "v": 1, "file": path.display().to_string(), "model": model.name(),
                "duration_s": scores.duration_s, "windows": scores.windows,
                "aggregate": aggregate, "top": top,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}  ({:.1} s, {} window{}, {})",
                path.display(),
                scores.duration_s,
                scores.windows,
                if scores.windows == 1 { "" } else { "s" },
                aggregate.name()
            )?;
            for (i, s) in top {
                writeln!(out, "  {s:.4}  {}", model.labels[i].name)?;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be classified", files.len());
    }
    Ok(())
}

/// `soundsentry fbank`: streamed to the file as frames come, in memory one window at most.
pub fn fbank(args: &FbankArgs) -> anyhow::Result<()> {
    let FbankArgs {
        file,
        model,
        out,
        raw,
    } = args;
    let raw = *raw;
    let model = Model::load(&ModelConfig::new(model))?;
    let m = &model.manifest;
    if m.fbank.is_none() {
        anyhow::bail!(
            "{}: {} is a waveform-input model: it has no fbank (it is fed the samples)",
            args.model.display(),
            m.name
        );
    }
    let bins = m.frame_bins();
    let at = |e: std::io::Error| anyhow::anyhow!("{}: {e}", out.display());
    let writer = std::io::BufWriter::new(std::fs::File::create(out).map_err(at)?);
    let bar = progress_bar(file);
    let mut progress = |f: f64| bar.set_position((f * 1000.0) as u64);
    // Rows: frames (raw, or a dynamic model's windows end to end, the last one shorter) or
    // whole windows of a fixed-input model.
    let row: Vec<usize> = if raw || m.dynamic_frames {
        vec![bins]
    } else {
        vec![m.window_frames, bins]
    };
    let mut npy = crate::npy::NpyWriter::new(writer, &row).map_err(at)?;
    let result = if raw {
        stream_frames(m, file, &mut progress, &mut |frames| {
            npy.rows(frames).map_err(at)
        })
    } else {
        stream_windows(m, file, &mut progress, &mut |w| npy.rows(&w).map_err(at))
    };
    bar.finish_and_clear();
    result?;
    npy.finish().map_err(at)
}

/// The progress bar of a file's offline work (hidden when stderr is not a terminal).
fn progress_bar(path: &Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000).with_message(path.display().to_string());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}%")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A bar of `len` steps: `what [=====] pos/len unit msg` (train-head, eval).
fn counted_bar(len: usize, what: &str, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A figure with three decimals, or `n/a` where it is undefined.
fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

/// `soundsentry check-config`.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let (cfg, model, watches) = load_all(path, &Overrides::default())?;
    if model.manifest.quantized {
        if let Some(why) = crate::model::kernels::int8_warning() {
            println!("{}: warning: model.path: {why}", path.display());
        }
    }
    println!(
        "{}: ok (model {}, {} labels, {} watched, hop {:?})",
        path.display(),
        model.name(),
        model.labels.len(),
        watches.len(),
        cfg.hop
    );
    Ok(())
}

/// `soundsentry devices`.
pub fn devices() -> anyhow::Result<()> {
    let list = crate::capture::describe_devices().map_err(|e| anyhow::anyhow!(e))?;
    if list.is_empty() {
        println!("no audio input devices");
    }
    for d in list {
        println!("{d}");
    }
    Ok(())
}

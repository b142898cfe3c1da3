//! `soundsentry embed`: the embeddings of files or folders as .npy with CSV indexes, and
//! optionally a 2-D map of them coloured by label.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::counted_bar;
use crate::cli::{EmbedArgs, MapMethod};
use crate::clips::Clips;
use crate::embed::{audio_files, embed_file, no_embedding, OutputPaths};
use crate::model::{Model, ModelConfig};
use crate::npy::NpyWriter;
use crate::plot::map::{reduce, Class, Map, Method};

/// Embeds every file; the outputs are written beside each other under temporary names and
/// put in place only when every file was embedded, so a failure leaves no partial set (the
/// file that failed is named).
pub fn embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let files = audio_files(&args.inputs)?;
    // everything the map needs is checked before the files are embedded
    let method = map_method(args, files.len())?;
    if let Some(plot) = &args.plot {
        crate::plot::Format::of(plot)?;
    }
    let labels = args.labels.as_deref().map(Clips::load).transpose()?;
    let threads = crate::config::max_threads(args.threads as usize)
        .map_err(|e| anyhow::anyhow!("--threads {}: {e}", args.threads))?;
    let model = Model::load(&ModelConfig::new(&args.model).threads(threads.get()))
        .with_context(|| format!("--model {}", args.model.display()))?;
    if !model.has_embedding() {
        return Err(no_embedding(&model, &args.model));
    }
    let size = model.manifest.embedding_size.unwrap_or_default();
    for p in std::iter::once(&args.out).chain(&args.plot) {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
    }
    let paths = OutputPaths::new(&args.out);
    let all = [
        &paths.windows,
        &paths.windows_index,
        &paths.files,
        &paths.files_index,
    ];
    let partial = |p: &Path| p.with_extension(format!("{}.partial", ext(p)));
    let result = write_all(&model, &files, size, &paths, &partial);
    let means = match result {
        Ok(means) => means,
        Err(e) => {
            for p in all {
                let _ = std::fs::remove_file(partial(p));
            }
            return Err(e);
        }
    };
    for p in all {
        std::fs::rename(partial(p), p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    eprintln!(
        "{} files embedded ({size} values each): {}, {}, {}, {}",
        files.len(),
        paths.windows.display(),
        paths.windows_index.display(),
        paths.files.display(),
        paths.files_index.display()
    );
    if let (Some(plot), Some(method)) = (&args.plot, method) {
        let map = map(&files, &means, labels.as_ref(), method, &model)?;
        crate::plot::save(&map, plot, (1000, 760))?;
        let (coloured, several, unknown) = map.counts();
        eprintln!(
            "map of {} files ({}) drawn to {}: {coloured} coloured by label, {several} with \
             several labels left grey, {unknown} not in the labels",
            files.len(),
            method.describe(),
            plot.display()
        );
    }
    Ok(())
}

/// The map's method, checked against the number of files; `None` without `--plot`.
fn map_method(args: &EmbedArgs, files: usize) -> anyhow::Result<Option<Method>> {
    if args.plot.is_none() {
        if args.labels.is_some() || args.perplexity.is_some() {
            anyhow::bail!("--labels and --perplexity colour and shape the map of --plot FILE");
        }
        return Ok(None);
    }
    if files < 2 {
        anyhow::bail!("--plot: a map needs at least 2 files (got {files})");
    }
    let method = match (args.map, args.perplexity) {
        (MapMethod::Pca, None) => Method::Pca,
        (MapMethod::Pca, Some(_)) => anyhow::bail!("--perplexity is for --map tsne"),
        (MapMethod::Tsne, None) => Method::default_tsne(files),
        (MapMethod::Tsne, Some(perplexity)) => Method::Tsne { perplexity },
    };
    if let Method::Tsne { perplexity } = method {
        let most = (files - 1) / 3;
        if !(perplexity.is_finite() && perplexity >= 1.0 && perplexity.floor() as usize <= most) {
            anyhow::bail!(
                "--perplexity {perplexity}: with {files} files t-SNE allows 1 to {most} \
                 (it keeps 3 × perplexity neighbours of each file){}",
                if most < 1 { "; use --map pca" } else { "" }
            );
        }
    }
    Ok(Some(method))
}

/// Each file's point and class: its label in `labels` (matched by path), several labels, or
/// unknown.
fn map(
    files: &[PathBuf],
    means: &[Vec<f32>],
    labels: Option<&Clips>,
    method: Method,
    model: &Model,
) -> anyhow::Result<Map> {
    let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let known: HashMap<PathBuf, &[String]> = labels
        .map(|c| {
            c.clips
                .iter()
                .map(|clip| (key(&clip.path), clip.labels.as_slice()))
                .collect()
        })
        .unwrap_or_default();
    let mut classes: Vec<String> = Vec::new();
    let class: Vec<Class> = files
        .iter()
        .map(|f| match known.get(&key(f)) {
            None => Class::Unknown,
            Some(l) if l.len() > 1 => Class::Several,
            Some(l) => {
                let name = l.first().map_or(crate::clips::BACKGROUND, |s| s.as_str());
                let i = classes.iter().position(|c| c == name).unwrap_or_else(|| {
                    classes.push(name.to_owned());
                    classes.len() - 1
                });
                Class::Label(i)
            }
        })
        .collect();
    let bar = match method {
        Method::Tsne { .. } => counted_bar(1000, "t-SNE", "iterations"),
        Method::Pca => indicatif::ProgressBar::hidden(),
    };
    let points = reduce(means, method, &mut |i| bar.set_position(i as u64))?;
    bar.finish_and_clear();
    Ok(Map {
        title: format!(
            "{}: {} files, {}",
            model.name(),
            files.len(),
            method.describe()
        ),
        points,
        class,
        classes,
    })
}

fn ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes the four outputs under their temporary names; returns each file's mean vector.
fn write_all(
    model: &Model,
    files: &[PathBuf],
    size: usize,
    paths: &OutputPaths,
    partial: &dyn Fn(&Path) -> PathBuf,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let create = |p: &Path| {
        std::fs::File::create(partial(p))
            .map(std::io::BufWriter::new)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e: std::io::Error| anyhow::anyhow!("{}: {e}", p.display())
    };
    let mut windows =
        NpyWriter::new(create(&paths.windows)?, &[size]).map_err(at(&paths.windows))?;
    let mut means = NpyWriter::new(create(&paths.files)?, &[size]).map_err(at(&paths.files))?;
    let mut windows_csv = csv::Writer::from_writer(create(&paths.windows_index)?);
    let mut files_csv = csv::Writer::from_writer(create(&paths.files_index)?);
    windows_csv.write_record(["row", "file", "start_s", "end_s"])?;
    files_csv.write_record(["row", "file", "windows", "duration_s"])?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("embedding [{bar:30}] {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut row = 0usize;
    let mut all_means = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        bar.set_message(file.display().to_string());
        let name = file.display().to_string();
        let emb = embed_file(model, file, &mut |_| {}, &mut |w| {
            windows.rows(&w.vector).map_err(at(&paths.windows))?;
            windows_csv.write_record([
                row.to_string(),
                name.clone(),
                format!("{:.3}", w.start_s),
                format!("{:.3}", w.end_s),
            ])?;
            row += 1;
            Ok(())
        })
        .with_context(|| format!("{}: not embedded; nothing written", file.display()))?;
        means.rows(&emb.mean).map_err(at(&paths.files))?;
        all_means.push(emb.mean);
        files_csv.write_record([
            i.to_string(),
            name,
            emb.windows.to_string(),
            format!("{:.3}", emb.duration_s),
        ])?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    windows.finish().map_err(at(&paths.windows))?;
    means.finish().map_err(at(&paths.files))?;
    windows_csv.flush()?;
    files_csv.flush()?;
    Ok(all_means)
}

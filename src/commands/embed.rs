//! `soundsentry embed`: the embeddings of files or folders as .npy with CSV indexes.

use std::path::Path;

use anyhow::Context;

use crate::cli::EmbedArgs;
use crate::embed::{audio_files, embed_file, no_embedding, OutputPaths};
use crate::model::{Model, ModelConfig};
use crate::npy::NpyWriter;

/// Embeds every file; the outputs are written beside each other under temporary names and
/// put in place only when every file was embedded, so a failure leaves no partial set (the
/// file that failed is named).
pub fn embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let files = audio_files(&args.inputs)?;
    let threads = crate::config::max_threads(args.threads as usize)
        .map_err(|e| anyhow::anyhow!("--threads {}: {e}", args.threads))?;
    let model = Model::load(&ModelConfig::new(&args.model).threads(threads.get()))
        .with_context(|| format!("--model {}", args.model.display()))?;
    if !model.has_embedding() {
        return Err(no_embedding(&model, &args.model));
    }
    let size = model.manifest.embedding_size.unwrap_or_default();
    let paths = OutputPaths::new(&args.out);
    let all = [
        &paths.windows,
        &paths.windows_index,
        &paths.files,
        &paths.files_index,
    ];
    let partial = |p: &Path| p.with_extension(format!("{}.partial", ext(p)));
    let result = write_all(&model, &files, size, &paths, &partial);
    if let Err(e) = result {
        for p in all {
            let _ = std::fs::remove_file(partial(p));
        }
        return Err(e);
    }
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
    Ok(())
}

fn ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_all(
    model: &Model,
    files: &[std::path::PathBuf],
    size: usize,
    paths: &OutputPaths,
    partial: &dyn Fn(&Path) -> std::path::PathBuf,
) -> anyhow::Result<()> {
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
    Ok(())
}

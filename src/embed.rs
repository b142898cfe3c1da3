//! Embeddings of audio files: one vector per model window and one per file (the mean over its
//! windows), read from the model's embedding output in the same inference call as the scores.

use std::path::{Path, PathBuf};

use crate::classify::stream_windows;
use crate::model::Model;

/// Audio file extensions taken from a folder.
const AUDIO: [&str; 4] = ["wav", "flac", "ogg", "oga"];

/// The files named, in order, with every audio file under a named folder (recursively, sorted
/// by path). A path that does not exist, or a folder without audio, is an error.
pub fn audio_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = out.len();
            walk(input, &mut out)?;
            out[before..].sort();
            if out.len() == before {
                anyhow::bail!(
                    "{}: no audio files (.wav, .flac, .ogg, .oga) in this folder",
                    input.display()
                );
            }
        } else if input.exists() {
            out.push(input.clone());
        } else {
            anyhow::bail!("{}: no such file or folder", input.display());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// What a model folder without an embedding output needs, said where it is refused.
pub fn no_embedding(model: &Model, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: model {} has no embedding output (model.toml names none). Add one to this folder \
         with `python tools/add_embedding.py {}` (its scores stay bit for bit the same), or \
         re-export it with tools/export_ast.py or tools/export_beats.py",
        dir.display(),
        model.name(),
        dir.display()
    )
}

/// One window's embedding and where it lies in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Start, seconds from the file's start.
    pub start_s: f64,
    /// End, seconds (the file's end for the last, shorter window).
    pub end_s: f64,
    /// The embedding.
    pub vector: Vec<f32>,
}

/// A file's embedding: the mean over its windows.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEmbedding {
    /// Windows embedded (consecutive, not overlapping, as `classify` cuts a file).
    pub windows: usize,
    /// Seconds of audio.
    pub duration_s: f64,
    /// The mean of the windows' embeddings.
    pub mean: Vec<f32>,
}

/// Embeds `path` window by window (consecutive windows of the model's length, as `classify`
/// cuts a file), handing each window to `each` in order; returns the file's mean. The model
/// must have an embedding output ([`Model::has_embedding`]).
pub fn embed_file(
    model: &Model,
    path: &Path,
    progress: &mut dyn FnMut(f64),
    each: &mut dyn FnMut(&Window) -> anyhow::Result<()>,
) -> anyhow::Result<FileEmbedding> {
    let m = &model.manifest;
    let window_s = m.window_s();
    let mut sum: Vec<f64> = Vec::new();
    let mut index = 0usize;
    // Each window is handed on when the next one comes, so that the last one, which may be
    // shorter, ends where the file does.
    let mut pending: Option<Window> = None;
    let streamed = stream_windows(m, path, progress, &mut |input| {
        let (_, embedding) = model.score_and_embed(&input)?;
        let vector = embedding.ok_or_else(|| anyhow::anyhow!("the model has no embedding"))?;
        if let Some(bad) = vector.iter().find(|v| !v.is_finite()) {
            anyhow::bail!("window {index}: the embedding holds {bad}");
        }
        if sum.is_empty() {
            sum = vec![0.0; vector.len()];
        }
        sum.iter_mut()
            .zip(&vector)
            .for_each(|(s, v)| *s += *v as f64);
        let start_s = index as f64 * window_s;
        if let Some(w) = pending.replace(Window {
            start_s,
            end_s: start_s + window_s,
            vector,
        }) {
            each(&w)?;
        }
        index += 1;
        Ok(())
    })?;
    if let Some(mut w) = pending {
        w.end_s = w.end_s.min(streamed.duration_s).max(w.start_s);
        each(&w)?;
    }
    let n = streamed.windows.max(1) as f64;
    Ok(FileEmbedding {
        windows: streamed.windows,
        duration_s: streamed.duration_s,
        mean: sum.iter().map(|s| (s / n) as f32).collect(),
    })
}

/// The four files `embed --out F.npy` writes: the windows' vectors and index, the files'.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPaths {
    /// `F.npy`: one row per window.
    pub windows: PathBuf,
    /// `F.csv`: row, file, start_s, end_s.
    pub windows_index: PathBuf,
    /// `F.files.npy`: one row per file.
    pub files: PathBuf,
    /// `F.files.csv`: row, file, windows, duration_s.
    pub files_index: PathBuf,
}

impl OutputPaths {
    /// The paths for `--out F.npy` (an `F` without the extension is taken as it is).
    pub fn new(out: &Path) -> Self {
        let stem = out.with_extension("");
        let with = |suffix: &str| {
            let mut s = stem.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        Self {
            windows: with(".npy"),
            windows_index: with(".csv"),
            files: with(".files.npy"),
            files_index: with(".files.csv"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_sit_beside_the_npy() {
        let p = OutputPaths::new(Path::new("out/emb.npy"));
        assert_eq!(p.windows, Path::new("out/emb.npy"));
        assert_eq!(p.windows_index, Path::new("out/emb.csv"));
        assert_eq!(p.files, Path::new("out/emb.files.npy"));
        assert_eq!(p.files_index, Path::new("out/emb.files.csv"));
        assert_eq!(
            OutputPaths::new(Path::new("e")).files,
            Path::new("e.files.npy")
        );
    }

    #[test]
    fn folders_give_their_audio_files_sorted_and_missing_paths_are_errors() {
        let dir = std::env::temp_dir().join(format!("soundsentry-embed-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b")).expect("test setup");
        for f in ["b/2.wav", "a.FLAC", "notes.txt", "c.ogg"] {
            std::fs::write(dir.join(f), b"").expect("test setup");
        }
        let got = audio_files(std::slice::from_ref(&dir)).expect("test setup");
        let names: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(&dir).expect("test setup"))
            .collect();
        assert_eq!(
            names,
            [
                Path::new("a.FLAC"),
                Path::new("b/2.wav"),
                Path::new("c.ogg")
            ]
        );
        let err = audio_files(&[dir.join("nope.wav")])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("nope.wav: no such file"), "{err}");
        std::fs::remove_dir_all(dir.join("b")).expect("test setup");
        std::fs::create_dir_all(dir.join("empty")).expect("test setup");
        let err = audio_files(&[dir.join("empty")])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("no audio files"), "{err}");
        std::fs::remove_dir_all(&dir).expect("test setup");
    }
}

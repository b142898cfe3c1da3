//! Labelled clips for `train-head` and `eval`: a CSV (`file,labels`, `;` between labels) or a
//! folder with one folder per label (and `background/` for clips without one), checked row
//! by row before any work.

pub mod cache;

use std::path::{Path, PathBuf};

use crate::embed::audio_files;

/// One labelled clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Where it was named: `clips.csv line 5`, or its folder.
    pub origin: String,
    /// The audio file.
    pub path: PathBuf,
    /// Its labels (none: a background clip).
    pub labels: Vec<String>,
}

/// A labelled data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Clips {
    /// The CSV file or the folder it was read from.
    pub source: PathBuf,
    /// The folder its cache of embeddings is kept in.
    pub root: PathBuf,
    /// The clips, in file order (CSV rows; folders by label, then path).
    pub clips: Vec<Clip>,
    /// Every label named, sorted.
    pub labels: Vec<String>,
}

/// The folder name that holds clips without a label.
pub const BACKGROUND: &str = "background";

impl Clips {
    /// Reads a CSV or a folder of label folders. Every file named must exist; every problem
    /// found is reported together, each with its row.
    pub fn load(source: &Path) -> anyhow::Result<Self> {
        let (root, clips) = if source.is_dir() {
            (source.to_owned(), from_folders(source)?)
        } else if source.exists() {
            let root = source
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned();
            (root.clone(), from_csv(source, &root)?)
        } else {
            anyhow::bail!("{}: no such file or folder", source.display());
        };
        if clips.is_empty() {
            anyhow::bail!("{}: no clips", source.display());
        }
        let mut labels: Vec<String> = clips.iter().flat_map(|c| c.labels.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.is_empty() {
            anyhow::bail!(
                "{}: no clip has a label (only background clips)",
                source.display()
            );
        }
        Ok(Self {
            source: source.to_owned(),
            root,
            clips,
            labels,
        })
    }

    /// The truth table: per clip, per label of `labels`, whether the clip has it.
    pub fn truth(&self, labels: &[String]) -> Vec<Vec<bool>> {
        self.clips
            .iter()
            .map(|c| labels.iter().map(|l| c.labels.contains(l)).collect())
            .collect()
    }

    /// Whether every clip has at most one label (a confusion matrix then means something).
    pub fn single_label(&self) -> bool {
        self.clips.iter().all(|c| c.labels.len() <= 1)
    }
}

fn from_csv(path: &Path, root: &Path) -> anyhow::Result<Vec<Clip>> {
    let name = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let headers = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        .clone();
    let unknown: Vec<&str> = headers
        .iter()
        .filter(|h| !["file", "labels"].contains(h))
        .collect();
    if !unknown.is_empty() || !headers.iter().any(|h| h == "file") {
        anyhow::bail!(
            "{name}: the columns must be `file,labels` (found {:?}{})",
            headers.iter().collect::<Vec<_>>(),
            if unknown.is_empty() {
                String::new()
            } else {
                format!("; unknown: {unknown:?}")
            }
        );
    }
    let file_col = headers.iter().position(|h| h == "file").unwrap_or(0);
    let labels_col = headers.iter().position(|h| h == "labels");
    let mut clips = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let origin = format!("{name} line {}", i + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let file = record.get(file_col).unwrap_or("");
        if file.is_empty() {
            problems.push(format!("{origin}: no file"));
            continue;
        }
        let labels = labels_col
            .and_then(|c| record.get(c))
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let path = root.join(file);
        if !path.is_file() {
            problems.push(format!("{origin}: {}: no such file", path.display()));
            continue;
        }
        clips.push(Clip {
            origin,
            path,
            labels,
        });
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(clips)
}

fn from_folders(dir: &Path) -> anyhow::Result<Vec<Clip>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
        let path = entry
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if path.is_dir() && !hidden {
            folders.push(path);
        }
    }
    folders.sort();
    if folders.is_empty() {
        anyhow::bail!(
            "{}: no label folders (one folder per label, and `{BACKGROUND}/` for clips \
             without one)",
            dir.display()
        );
    }
    let mut clips = Vec::new();
    for folder in folders {
        let label = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let labels = if label == BACKGROUND {
            Vec::new()
        } else {
            vec![label]
        };
        for path in audio_files(std::slice::from_ref(&folder))? {
            clips.push(Clip {
                origin: folder.display().to_string(),
                path,
                labels: labels.clone(),
            });
        }
    }
    Ok(clips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_names_its_rows_and_folders_give_their_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for f in ["a.wav", "b.wav", "bell/1.wav", "background/2.wav"] {
            std::fs::create_dir_all(d.join(f).parent().expect("parent")).expect("setup");
            std::fs::write(d.join(f), b"").expect("setup");
        }
        std::fs::write(d.join("c.csv"), "file,labels\na.wav,Bell; Knock\nb.wav,\n").expect("w");
        let c = Clips::load(&d.join("c.csv")).expect("loads");
        assert_eq!(c.labels, ["Bell", "Knock"]);
        assert_eq!(c.clips[0].labels, ["Bell", "Knock"]);
        assert!(c.clips[1].labels.is_empty());
        assert_eq!(c.truth(&c.labels), [vec![true, true], vec![false, false]]);
        assert!(!c.single_label());

        std::fs::write(d.join("m.csv"), "file,labels\na.wav,Bell\nnope.wav,Bell\n").expect("w");
        let e = Clips::load(&d.join("m.csv"))
            .expect_err("missing")
            .to_string();
        assert!(
            e.contains("m.csv line 3") && e.contains("nope.wav: no such file"),
            "{e}"
        );
        std::fs::write(d.join("u.csv"), "file,label\na.wav,Bell\n").expect("w");
        let e = Clips::load(&d.join("u.csv"))
            .expect_err("column")
            .to_string();
        assert!(e.contains("unknown: [\"label\"]"), "{e}");

        std::fs::remove_file(d.join("a.wav")).expect("rm");
        std::fs::remove_file(d.join("b.wav")).expect("rm");
        for f in ["c.csv", "m.csv", "u.csv"] {
            std::fs::remove_file(d.join(f)).expect("rm");
        }
        let c = Clips::load(d).expect("folders");
        assert_eq!(c.labels, ["bell"]);
        assert_eq!(c.clips.len(), 2);
        assert!(c.single_label());
        assert!(c.clips.iter().any(|c| c.labels.is_empty()));
    }
}

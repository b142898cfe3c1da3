//! The clips' embeddings, computed once per model and kept beside the data
//! (`.soundsentry-cache/` in the data's folder): a clip is embedded again only when its file
//! or the model changed (size and modification time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Clips;
use crate::embed::embed_file;
use crate::model::Model;
use crate::npy::{read_f32, NpyWriter};

/// The cache folder's name, in the data's folder.
pub const DIR: &str = ".soundsentry-cache";

type Key = (String, u64, u128);

/// Embeddings of one model's clips, by file, size and modification time.
struct Cache {
    npy: PathBuf,
    csv: PathBuf,
    size: usize,
    entries: HashMap<Key, Vec<f32>>,
}

fn file_key(path: &Path) -> std::io::Result<Key> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok((path.display().to_string(), meta.len(), mtime))
}

/// FNV-1a, 64 bits: a stable name for a model's cache (not a checksum of anything secret).
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Cache {
    fn open(root: &Path, model: &Model, model_dir: &Path) -> Self {
        let manifest = std::fs::read(model_dir.join("model.toml")).unwrap_or_default();
        let onnx = file_key(&model_dir.join(&model.manifest.onnx))
            .map(|(_, len, mtime)| format!("{len}/{mtime}"))
            .unwrap_or_default();
        let key = fnv(onnx.as_bytes(), fnv(&manifest, 0xcbf2_9ce4_8422_2325));
        let stem = format!("{}-{key:016x}", crate::format::slugify(model.name()));
        let dir = root.join(DIR);
        let mut cache = Self {
            npy: dir.join(format!("{stem}.npy")),
            csv: dir.join(format!("{stem}.csv")),
            size: model.manifest.embedding_size.unwrap_or_default(),
            entries: HashMap::new(),
        };
        if cache.npy.exists() {
            if let Err(e) = cache.read() {
                tracing::warn!("embedding cache {} not used: {e}", cache.npy.display());
                cache.entries.clear();
            }
        }
        cache
    }

    fn read(&mut self) -> anyhow::Result<()> {
        let (shape, values) = read_f32(&self.npy)?;
        if shape.len() != 2 || shape[1] != self.size {
            anyhow::bail!("shape {shape:?}, expected (n, {})", self.size);
        }
        let mut reader = csv::Reader::from_path(&self.csv)?;
        for (row, rec) in reader.records().enumerate() {
            let rec = rec?;
            let field = |i: usize| rec.get(i).unwrap_or_default();
            let key = (field(0).to_owned(), field(1).parse()?, field(2).parse()?);
            let v = values
                .get(row * self.size..(row + 1) * self.size)
                .ok_or_else(|| anyhow::anyhow!("index row {row} past the vectors"))?;
            self.entries.insert(key, v.to_vec());
        }
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let dir = self.npy.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let (npy_tmp, csv_tmp) = (
            self.npy.with_extension("npy.partial"),
            self.csv.with_extension("csv.partial"),
        );
        let mut keys: Vec<&Key> = self.entries.keys().collect();
        keys.sort();
        let mut npy = NpyWriter::new(
            std::io::BufWriter::new(std::fs::File::create(&npy_tmp)?),
            &[self.size],
        )?;
        let mut csv = csv::Writer::from_path(&csv_tmp)?;
        csv.write_record(["file", "size", "mtime_ns"])?;
        for k in keys {
            npy.rows(&self.entries[k])?;
            csv.write_record([k.0.clone(), k.1.to_string(), k.2.to_string()])?;
        }
        npy.finish()?;
        csv.flush()?;
        drop(csv);
        std::fs::rename(&npy_tmp, &self.npy)?;
        std::fs::rename(&csv_tmp, &self.csv)?;
        Ok(())
    }
}

/// Each clip's embedding (the mean over its windows), from the cache or computed; the cache
/// is saved with what was computed even when a clip fails. Every clip that cannot be read is
/// named, with its row, and then nothing is returned. `progress` gets (done, cached).
pub fn embeddings(
    clips: &Clips,
    model: &Model,
    model_dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut cache = Cache::open(&clips.root, model, model_dir);
    let (mut out, mut failed, mut cached, mut computed) = (Vec::new(), Vec::new(), 0, 0);
    for (i, clip) in clips.clips.iter().enumerate() {
        let key = match file_key(&clip.path) {
            Ok(k) => k,
            Err(e) => {
                failed.push(format!("{}: {}: {e}", clip.origin, clip.path.display()));
                continue;
            }
        };
        if let Some(v) = cache.entries.get(&key) {
            out.push(v.clone());
            cached += 1;
        } else {
            match embed_file(model, &clip.path, &mut |_| {}, &mut |_| Ok(())) {
                Ok(e) => {
                    cache.entries.insert(key, e.mean.clone());
                    out.push(e.mean);
                    computed += 1;
                }
                Err(e) => failed.push(format!("{}: {:#}", clip.origin, e)),
            }
        }
        progress(i + 1, cached);
    }
    if computed > 0 {
        if let Err(e) = cache.save() {
            tracing::warn!("embedding cache {} not saved: {e:#}", cache.npy.display());
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} clips could not be embedded (nothing was trained):\n{}",
            failed.len(),
            clips.clips.len(),
            failed.join("\n")
        );
    }
    Ok(out)
}

//! Reads an ONNX file without holding its weights twice: decoded over the mapped file, each weight read into its tensor alone.
//!
//! tract's own loader decodes the protobuf into owned copies of every weight while the file's
//! pages are resident, then copies each weight again into a tensor: a peak of about twice the
//! file. Here the file is mapped and decoded without copying tensor data (the vendored
//! tract-onnx keeps `raw_data` as `Bytes`, vendor/README.md), every weight stored in the file
//! is turned into an ONNX external-data reference to its own bytes, and tract then reads the
//! weights one at a time from the file: the peak is the tensors plus the largest weight.

use std::fs::File;
use std::path::Path;

use anyhow::{ensure, Context};
use prost::Message;
use tract_onnx::pb::{tensor_proto::DataLocation, StringStringEntryProto, TensorProto};
use tract_onnx::prelude::*;

/// The inference model of the ONNX file at `path`, as `onnx.model_for_path` would give it.
pub fn inference_model(onnx: &tract_onnx::Onnx, path: &Path) -> anyhow::Result<InferenceModel> {
    // Canonical, so that the weights' location is inside the folder tract resolves it in
    // even when `path` is a link.
    let path = path.canonicalize().context("resolving the path")?;
    // tract takes the folder and the weights' location as UTF-8 strings.
    let utf8 = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    let utf8 = Path::new(utf8);
    let (dir, name) = match (utf8.parent().and_then(Path::to_str), utf8.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_str().unwrap_or_default()),
        _ => anyhow::bail!("not a file path"),
    };
    let file = File::open(&path).context("opening")?;
    // SAFETY: the map is read-only and private; like tract's own loader, a file changed on
    // disk while it loads yields wrong weights or a decode error, never unsoundness in safe
    // code that only reads the bytes through `Bytes`.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.context("mapping")?;
    let span = (map.as_ptr() as usize, map.len());
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes::Bytes::from_owner(map))
        .context("decoding the protobuf")?;
    if let Some(graph) = proto.graph.as_mut() {
        for t in &mut graph.initializer {
            refer_to_file(t, span, name);
        }
    }
    // Every `raw_data` now refers to the file by offset; no slice of the map is left, so the
    // map is gone before any weight is read.
    let parsed = onnx.parse(&proto, Some(dir))?;
    ensure!(
        parsed.unresolved_inputs.is_empty(),
        "could not resolve inputs {:?}",
        parsed.unresolved_inputs
    );
    Ok(parsed.model)
}

/// Turns a weight stored in the mapped file (`span`: its address and length) into an
/// external-data reference to the same bytes of the file `location`.
fn refer_to_file(t: &mut TensorProto, (start, len): (usize, usize), location: &str) {
    let data = t.raw_data.as_ptr() as usize;
    if t.raw_data.is_empty() || data < start || data + t.raw_data.len() > start + len {
        return;
    }
    let entry = |key: &str, value: String| StringStringEntryProto {
        key: key.into(),
        value,
    };
    t.external_data = vec![
        entry("location", location.into()),
        entry("offset", (data - start).to_string()),
        entry("length", t.raw_data.len().to_string()),
    ];
    t.data_location = Some(DataLocation::External as i32);
    t.raw_data = bytes::Bytes::new();
}

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
use tract_onnx::pb::{
    tensor_proto::DataLocation, GraphProto, ModelProto, NodeProto, StringStringEntryProto,
    TensorProto,
};
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
    // Any other tensor (a Constant node's value, a subgraph's weight) gets its own copy.
    for t in tensors(&mut proto) {
        t.raw_data = bytes::Bytes::copy_from_slice(&t.raw_data);
    }
    // No slice of the map is left, so the map is gone before any weight is read (the pages
    // that decoding touched with it).
    let parsed = onnx.parse(&proto, Some(dir))?;
    ensure!(
        parsed.unresolved_inputs.is_empty(),
        "could not resolve inputs {:?}",
        parsed.unresolved_inputs
    );
    Ok(parsed.model)
}

/// Every tensor of the model that may hold bytes of the decoded buffer: in the graphs
/// (initializers, sparse ones, node attributes, subgraphs), functions and training graphs.
fn tensors(proto: &mut ModelProto) -> Vec<&mut TensorProto> {
    let mut found = Vec::new();
    let mut graphs: Vec<&mut GraphProto> = proto.graph.iter_mut().collect();
    let mut nodes: Vec<&mut NodeProto> = Vec::new();
    for f in &mut proto.functions {
        nodes.extend(&mut f.node);
    }
    for t in &mut proto.training_info {
        graphs.extend(t.initialization.iter_mut().chain(t.algorithm.iter_mut()));
    }
    loop {
        if let Some(g) = graphs.pop() {
            found.extend(&mut g.initializer);
            for s in &mut g.sparse_initializer {
                found.extend(s.values.iter_mut().chain(s.indices.iter_mut()));
            }
            nodes.extend(&mut g.node);
        } else if let Some(n) = nodes.pop() {
            for a in &mut n.attribute {
                found.extend(a.t.iter_mut().chain(&mut a.tensors));
                if let Some(s) = &mut a.sparse_tensor {
                    found.extend(s.values.iter_mut().chain(s.indices.iter_mut()));
                }
                graphs.extend(a.g.iter_mut().chain(&mut a.graphs));
            }
        } else {
            return found;
        }
    }
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

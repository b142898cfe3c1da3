//! Helpers shared by the integration tests: fixture paths and .npy loading.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Reads a float32 .npy file into its shape and flat data.
pub fn read_npy(rel: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture(rel);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let arr: ArrayD<f32> =
        ArrayD::<f32>::read_npy(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = arr.shape().to_vec();
    let data = arr
        .into_shape_with_order(IxDyn(&[shape.iter().product()]))
        .expect("flatten")
        .into_raw_vec_and_offset()
        .0;
    (shape, data)
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The `soundsentry` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_soundsentry"))
}

/// Path of a file of the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs a command that must succeed; returns its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn soundsentry");
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every stdout line of `out`, parsed as JSON.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

//! Helpers shared by the integration tests: fixture paths and .npy loading.

use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::ReadNpyExt;

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

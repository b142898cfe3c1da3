//! `soundsentry embed` (issue 28): the default model's embeddings of files and folders, one
//! row per window and one per file, with their indexes; refusals that say what to do.

use std::path::Path;

use ndarray::{ArrayD, Axis};
use ndarray_npy::ReadNpyExt;

use crate::util::{bin, fixture, repo, run_ok};

fn npy(path: &Path) -> ArrayD<f32> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ArrayD::<f32>::read_npy(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut rd = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    rd.records().map(|r| r.expect("row")).collect()
}

#[test]
fn issue_28_embed_writes_windows_and_file_means() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("clips");
    std::fs::create_dir_all(&folder).expect("test setup");
    for f in ["tone-16k.flac", "tone-48k-stereo.wav"] {
        std::fs::copy(fixture(&format!("audio/{f}")), folder.join(f)).expect("test setup");
    }
    let out = dir.path().join("emb.npy");
    run_ok(
        bin()
            .args(["embed", "--model"])
            .arg(repo("models/sitehome-tiny-ast"))
            .arg("--out")
            .arg(&out)
            .arg(repo("samples/demo-20s.wav"))
            .arg(&folder),
    );
    let windows = npy(&out);
    let files = npy(&dir.path().join("emb.files.npy"));
    let index = rows(&dir.path().join("emb.csv"));
    let file_index = rows(&dir.path().join("emb.files.csv"));
    assert_eq!(files.shape(), &[3, 192]);
    assert_eq!(windows.shape()[1], 192);
    assert_eq!(index.len(), windows.shape()[0]);
    // 20 s in 1.28 s windows: 15 whole and one shorter, ending where the file does
    let demo: Vec<_> = index
        .iter()
        .filter(|r| r[1].ends_with("demo-20s.wav"))
        .collect();
    assert_eq!(demo.len(), 16);
    assert_eq!(&demo[15][2], "19.200");
    assert_eq!(&demo[15][3], "20.000");
    assert_eq!(file_index.len(), 3);
    assert!(
        file_index[1][1].ends_with("clips/tone-16k.flac"),
        "sorted: {file_index:?}"
    );
    assert!(file_index[2][1].ends_with("clips/tone-48k-stereo.wav"));
    // each file's row is the mean of its windows' rows
    let mut first = 0;
    for (i, f) in file_index.iter().enumerate() {
        let n: usize = f[2].parse().expect("windows");
        let mean = windows
            .slice_axis(Axis(0), (first..first + n).into())
            .mean_axis(Axis(0))
            .expect("windows");
        let row = files.index_axis(Axis(0), i);
        let worst = mean
            .iter()
            .zip(row.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "file {i}: mean differs by {worst}");
        first += n;
    }
    // a tone and a scene of sounds are told apart
    let (a, b) = (files.index_axis(Axis(0), 0), files.index_axis(Axis(0), 1));
    let dist: f32 = a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum();
    assert!(
        dist.sqrt() > 0.1,
        "embeddings of different files coincide: {dist}"
    );
}

#[test]
fn issue_28_embed_refusals_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("e.npy");
    // a model folder without an embedding output
    let res = bin()
        .args(["embed", "--model"])
        .arg(fixture("models/tiny-ast"))
        .arg("--out")
        .arg(&out)
        .arg(repo("samples/demo-20s.wav"))
        .output()
        .expect("test setup");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        err.contains("no embedding output") && err.contains("tools/add_embedding.py"),
        "{err}"
    );
    // a file that does not decode: named, and nothing left behind
    let res = bin()
        .args(["embed", "--model"])
        .arg(repo("models/sitehome-tiny-ast"))
        .arg("--out")
        .arg(&out)
        .arg(repo("samples/demo-20s.wav"))
        .arg(fixture("audio/corrupt.wav"))
        .output()
        .expect("test setup");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        err.contains("corrupt.wav: not embedded; nothing written"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("test setup").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // a path that does not exist
    let res = bin()
        .args(["embed", "--model"])
        .arg(repo("models/sitehome-tiny-ast"))
        .arg("--out")
        .arg(&out)
        .arg(dir.path().join("missing.wav"))
        .output()
        .expect("test setup");
    assert!(String::from_utf8_lossy(&res.stderr).contains("missing.wav: no such file or folder"));
}

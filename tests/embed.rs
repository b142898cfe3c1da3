//! `soundsentry embed` (issue 28): the default model's embeddings of files and folders, one
//! row per window and one per file, with their indexes; the map of `--plot`; refusals that
//! say what to do.

use std::path::Path;

use ndarray::{ArrayD, Axis};
use ndarray_npy::ReadNpyExt;

use soundsentry::noise::Noise;

use crate::util::{bin, fixture, repo, run_ok, sine, write_wav_f32, Picture};

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

/// Twelve 1.5 s files in `dir/clips`: six hums (sines near 200 Hz), six hisses (noise), and
/// a labels CSV naming ten of them with one label, one with both, one not at all.
fn hums_and_hisses(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let folder = dir.join("clips");
    std::fs::create_dir_all(&folder).expect("test setup");
    let mut noise = Noise::new(5);
    let mut csv = String::from("file,labels\n");
    for i in 0..6 {
        let hum = sine(16_000, 180.0 + 10.0 * f64::from(i), 0.3, 1.5);
        write_wav_f32(&folder.join(format!("a-hum-{i}.wav")), 16_000, &hum);
        let hiss: Vec<f32> = (0..24_000).map(|_| 0.2 * noise.uniform()).collect();
        write_wav_f32(&folder.join(format!("b-hiss-{i}.wav")), 16_000, &hiss);
        match i {
            0 => csv.push_str("clips/a-hum-0.wav,hum;hiss\n"),
            1 => {}
            _ => csv.push_str(&format!("clips/a-hum-{i}.wav,hum\n")),
        }
        csv.push_str(&format!("clips/b-hiss-{i}.wav,hiss\n"));
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).expect("test setup");
    (folder, labels)
}

#[test]
fn issue_28_embed_plot_draws_a_map_coloured_by_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (folder, labels) = hums_and_hisses(dir.path());
    let png = dir.path().join("maps/tsne.png");
    let out = run_ok(
        bin()
            .args(["embed", "--model"])
            .arg(repo("models/sitehome-tiny-ast"))
            .arg("--out")
            .arg(dir.path().join("e.npy"))
            .arg("--plot")
            .arg(&png)
            .arg("--labels")
            .arg(&labels)
            .arg(&folder),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("map of 12 files (t-SNE, perplexity 3)")
            && log.contains(
                "10 coloured by label, 1 with several labels left grey, 1 not in the labels"
            ),
        "{log}"
    );
    let picture = Picture::read(&png);
    assert_eq!((picture.width, picture.height), (1000, 760));
    assert!(picture.colours() > 2, "{} colours", picture.colours());
    // the first label (hum, blue) and the second (hiss, orange) are drawn, and grey for the rest
    for rgb in [[31, 119, 180], [255, 127, 14], [170, 170, 170]] {
        assert!(picture.count(rgb) > 20, "{rgb:?}: {}", picture.count(rgb));
    }

    // PCA into SVG, without labels: every point grey
    let svg = dir.path().join("pca.svg");
    run_ok(
        bin()
            .args(["embed", "--map", "pca", "--model"])
            .arg(repo("models/sitehome-tiny-ast"))
            .arg("--out")
            .arg(dir.path().join("e.npy"))
            .arg("--plot")
            .arg(&svg)
            .arg(&folder),
    );
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(
        text.starts_with("<svg") && text.matches("<circle").count() >= 12,
        "{text}"
    );
    assert!(text.contains("PCA"));
}

#[test]
fn issue_28_embed_plot_refusals_come_before_the_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (folder, labels) = hums_and_hisses(dir.path());
    let refuse = |extra: &[&str], plot: &str, expect: &str| {
        let res = bin()
            .args(["embed", "--model"])
            .arg(repo("models/sitehome-tiny-ast"))
            .arg("--out")
            .arg(dir.path().join("out/e.npy"))
            .args(extra)
            .arg("--plot")
            .arg(dir.path().join(plot))
            .arg(&folder)
            .output()
            .expect("test setup");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(
            !res.status.success() && err.contains(expect),
            "{extra:?}: {err}"
        );
        assert!(
            !dir.path().join("out").exists(),
            "{extra:?}: something was written"
        );
    };
    refuse(
        &["--perplexity", "5"],
        "m.png",
        "with 12 files t-SNE allows 1 to 3",
    );
    refuse(&[], "m.jpg", "must be named .png or .svg");
    refuse(
        &["--map", "pca", "--perplexity", "2"],
        "m.png",
        "--perplexity is for --map tsne",
    );
    let missing = dir.path().join("nope.csv");
    refuse(
        &["--labels", missing.to_str().expect("utf-8")],
        "m.png",
        "nope.csv: no such file or folder",
    );
    // --labels without --plot
    let res = bin()
        .args(["embed", "--model"])
        .arg(repo("models/sitehome-tiny-ast"))
        .arg("--out")
        .arg(dir.path().join("out/e.npy"))
        .arg("--labels")
        .arg(&labels)
        .arg(&folder)
        .output()
        .expect("test setup");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && err.contains("--plot FILE"),
        "{err}"
    );
}

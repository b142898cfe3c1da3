//! tract against onnxruntime on the committed tiny AST and BEATs exports, and broken models.

use std::path::{Path, PathBuf};

use soundsentry::model::{Attention, Model, ModelConfig};

use crate::util::{fixture, max_abs_diff, read_npy};

/// Raw outputs (logits or probabilities) of our runtime against onnxruntime's.
fn parity(name: &str) -> f32 {
    parity_with(name, Attention::Auto)
}

/// `parity` with a quantised model's attention as `attention` says.
fn parity_with(name: &str, attention: Attention) -> f32 {
    let dir = fixture(&format!("models/{name}"));
    let model = Model::load(&ModelConfig::new(&dir).attention(attention))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let (shape, input) = read_npy(&format!("models/{name}/input.npy"));
    assert_eq!(shape, [1, model.manifest.window_frames, 128]);
    let (_, expected) = read_npy(&format!("models/{name}/expected.npy"));
    let got = model.raw_outputs(&input).expect("inference");
    let diff = max_abs_diff(&got, &expected);
    println!("{name:>16}: tract vs onnxruntime max |diff| = {diff:.2e}");
    diff
}

#[test]
fn tract_reproduces_onnxruntime_fp32() {
    for name in ["tiny-ast", "tiny-beats"] {
        let diff = parity(name);
        assert!(diff <= 1e-4, "{name}: {diff}");
    }
}

#[test]
fn tract_int8_stays_close_to_onnxruntime_int8() {
    // Dynamic quantisation is integer maths with the same rounding rules in both runtimes;
    // attention in f32 as onnxruntime runs it (`model.attention = "f32"`).
    for name in ["tiny-ast-int8", "tiny-beats-int8"] {
        let diff = parity_with(name, Attention::F32);
        assert!(diff <= 1e-4, "{name}: {diff}");
    }
}

/// Whether this CPU runs attention's bfloat16 products (AVX-512 BF16).
fn bf16_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// By default a quantised model's attention products run in bfloat16 where the CPU has
/// AVX-512 BF16 (`model.attention = "auto"`): its scores (sigmoid of the logits) leave
/// onnxruntime int8's by far less than the int8 path's 0.02 budget. Elsewhere they are the
/// f32 ones.
#[test]
fn int8_with_bf16_attention_stays_within_the_score_budget() {
    let sigmoid = |x: &f32| 1.0 / (1.0 + (-x).exp());
    for name in ["tiny-ast-int8", "tiny-beats-int8"] {
        let dir = fixture(&format!("models/{name}"));
        let model = Model::load(&ModelConfig::new(&dir)).expect("model");
        assert_eq!(model.attention(), if bf16_cpu() { "bf16" } else { "f32" });
        let exact = Model::load(&ModelConfig::new(&dir).attention(Attention::F32)).expect("model");
        assert_eq!(exact.attention(), "f32");
        let (_, input) = read_npy(&format!("models/{name}/input.npy"));
        let (_, expected) = read_npy(&format!("models/{name}/expected.npy"));
        let got = model.raw_outputs(&input).expect("inference");
        let (got, expected): (Vec<f32>, Vec<f32>) = (
            got.iter().map(sigmoid).collect(),
            expected.iter().map(sigmoid).collect(),
        );
        let diff = max_abs_diff(&got, &expected);
        println!("{name:>16}: bf16 attention vs onnxruntime int8, max score |diff| {diff:.2e}");
        assert!(diff <= 0.01, "{name}: {diff}");
    }
    // An fp32 model keeps f32 attention.
    let fp32 = Model::load(&ModelConfig::new(fixture("models/tiny-ast")));
    assert_eq!(fp32.expect("model").attention(), "f32");
}

/// Copies a fixture model folder into a temp dir so a test can break it.
fn copy_model(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join(name);
    std::fs::create_dir(&dst).expect("mkdir");
    for f in ["model.toml", "model.onnx", "labels.csv"] {
        std::fs::copy(fixture(&format!("models/{name}/{f}")), dst.join(f)).expect("copy");
    }
    (tmp, dst)
}

fn load_err(dir: &Path) -> String {
    match Model::load(&ModelConfig::new(dir)) {
        Ok(_) => panic!("{} loaded but is broken", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

#[test]
fn broken_onnx_fails_at_load_with_the_file_named() {
    let (_tmp, dir) = copy_model("tiny-ast");
    std::fs::write(dir.join("model.onnx"), b"this is not protobuf").expect("write");
    let e = load_err(&dir);
    assert!(
        e.contains("model.onnx") && e.contains("not a loadable ONNX model"),
        "{e}"
    );
}

#[test]
fn truncated_onnx_fails_at_load() {
    let (_tmp, dir) = copy_model("tiny-beats");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("read");
    std::fs::write(dir.join("model.onnx"), &bytes[..bytes.len() / 2]).expect("write");
    let e = load_err(&dir);
    assert!(e.contains("model.onnx"), "{e}");
}

#[test]
fn wrong_window_for_a_fixed_input_fails_at_load() {
    let (_tmp, dir) = copy_model("tiny-ast");
    edit(
        &dir.join("model.toml"),
        "window_frames = 1024",
        "window_frames = 512",
    );
    let e = load_err(&dir);
    assert!(
        e.contains("does not fit the manifest's (1, 512, 128)"),
        "{e}"
    );
}

#[test]
fn labels_count_must_match_outputs() {
    let (_tmp, dir) = copy_model("tiny-ast");
    let labels = dir.join("labels.csv");
    let text = std::fs::read_to_string(&labels).expect("read");
    let shorter: Vec<&str> = text.lines().take(6).collect();
    std::fs::write(&labels, shorter.join("\n")).expect("write");
    edit(&dir.join("model.toml"), "num_labels = 10\n", "");
    let e = load_err(&dir);
    assert!(e.contains("5 labels, but the model has 10 outputs"), "{e}");
}

#[test]
fn unknown_manifest_key_is_rejected() {
    let (_tmp, dir) = copy_model("tiny-beats");
    edit(
        &dir.join("model.toml"),
        "quantized = false",
        "quantised = false",
    );
    let e = load_err(&dir);
    assert!(e.contains("model.toml") && e.contains("quantised"), "{e}");
}

#[test]
fn multithreaded_inference_gives_the_same_scores() {
    for name in ["tiny-ast", "tiny-beats-int8"] {
        let dir = fixture(&format!("models/{name}"));
        let (_, input) = read_npy(&format!("models/{name}/input.npy"));
        let (_, expected) = read_npy(&format!("models/{name}/expected.npy"));
        let load = |threads, attention| {
            let model = Model::load(&ModelConfig::new(&dir).threads(threads).attention(attention))
                .expect("model");
            model.raw_outputs(&input).expect("inference")
        };
        let diff = max_abs_diff(&load(2, Attention::F32), &expected);
        assert!(diff <= 1e-4, "{name} with 2 threads: {diff}");
        // The default attention (bfloat16 for int8 where the CPU has it): the same bits on
        // one thread and on two.
        assert_eq!(load(1, Attention::Auto), load(2, Attention::Auto), "{name}");
    }
}

/// The model of `dir` typed for its window, as the runtime sees it before optimising.
fn typed_model(dir: &Path) -> tract_onnx::prelude::TypedModel {
    use tract_onnx::prelude::*;
    let manifest = Model::load(&ModelConfig::new(dir))
        .expect("model loads")
        .manifest;
    tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(dir.join(&manifest.onnx))
        .and_then(|m| m.with_input_fact(0, f32::fact([1, manifest.window_frames, 128]).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .expect("model types")
}

fn run_typed(model: tract_onnx::prelude::TypedModel, input: &[f32]) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let shape: Vec<usize> = model
        .input_fact(0)
        .expect("input")
        .shape
        .as_concrete()
        .expect("fixed")
        .to_vec();
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .expect("runnable");
    let out = plan
        .run(tvec!(Tensor::from_shape(&shape, input)
            .expect("input")
            .into_tvalue()))
        .expect("runs");
    out[0]
        .to_plain_array_view::<f32>()
        .expect("f32")
        .iter()
        .copied()
        .collect()
}

/// Number of values of a model's (fixed-shape) first input.
fn input_len(model: &tract_onnx::prelude::TypedModel) -> usize {
    model
        .input_fact(0)
        .expect("input")
        .shape
        .as_concrete()
        .expect("fixed")
        .iter()
        .product()
}

#[test]
fn every_attention_block_is_fused_and_scores_do_not_move() {
    use tract_onnx::tract_core::ops::nn::Softmax;
    let dirs = [
        fixture("models/tiny-ast"),
        fixture("models/tiny-ast-int8"),
        fixture("models/tiny-beats"),
        fixture("models/tiny-beats-int8"),
        crate::util::repo("models/sitehome-tiny-ast"),
        crate::util::repo("models/sitehome-tiny-ast-int8"),
    ];
    for dir in dirs {
        let plain = typed_model(&dir);
        let blocks = plain
            .nodes()
            .iter()
            .filter(|n| n.op_is::<Softmax>())
            .count();
        let mut fused = plain.clone();
        let n = soundsentry::model::fuse_attention(&mut fused, Attention::F32).expect("rewrite");
        assert!(
            blocks > 0 && n == blocks,
            "{}: fused {n} of {blocks}",
            dir.display()
        );
        assert!(
            !fused.nodes().iter().any(|n| n.op_is::<Softmax>()),
            "{}",
            dir.display()
        );
        // BEATs' gated relative-position bias goes in as its two factors, the table as its
        // diagonals (it depends on key − query alone).
        let with = |what: &str| {
            fused
                .nodes()
                .iter()
                .filter(|n| n.op().info().is_ok_and(|i| i.concat().contains(what)))
                .count()
        };
        let beats = dir.to_string_lossy().contains("beats");
        let want = if beats { blocks } else { 0 };
        assert_eq!(with("gated=true"), want, "{}", dir.display());
        assert_eq!(with("diagonals=true"), want, "{}", dir.display());
        assert_eq!(with("precision=F32"), blocks, "{}", dir.display());
        // By default a quantised model's blocks take bfloat16 products.
        let mut auto = plain.clone();
        soundsentry::model::fuse_attention(&mut auto, Attention::Auto).expect("rewrite");
        let int8 = dir.to_string_lossy().contains("int8");
        let bf16 = auto
            .nodes()
            .iter()
            .filter(|n| {
                n.op()
                    .info()
                    .is_ok_and(|i| i.concat().contains("precision=Bf16"))
            })
            .count();
        assert_eq!(bf16, if int8 { blocks } else { 0 }, "{}", dir.display());
        let input: Vec<f32> = (0..input_len(&plain))
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let (a, b) = (run_typed(plain, &input), run_typed(fused, &input));
        let diff = max_abs_diff(&a, &b);
        println!(
            "{:>24}: {n} blocks fused, max |diff| {diff:.2e}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        assert!(
            diff <= 1e-5,
            "{}: fused scores moved by {diff}",
            dir.display()
        );
    }
}

/// Each integer product's i32 → f32 cast and scale become one `ScaledCast` at load time; the
/// scores keep every bit.
#[test]
fn int8_casts_and_scales_are_fused_without_moving_a_bit() {
    for dir in [
        fixture("models/tiny-ast-int8"),
        fixture("models/tiny-beats-int8"),
        crate::util::repo("models/sitehome-tiny-ast-int8"),
    ] {
        let plain = typed_model(&dir);
        let mut fused = plain.clone();
        let n = soundsentry::model::fuse_scaled_casts(&mut fused).expect("rewrite");
        assert!(n > 0, "{}: no cast fused", dir.display());
        let input: Vec<f32> = (0..input_len(&plain))
            .map(|i| ((i * 104_729 % 997) as f32 / 90.0) - 5.0)
            .collect();
        let (a, b) = (run_typed(plain, &input), run_typed(fused, &input));
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{}: scores moved by up to {}",
            dir.display(),
            max_abs_diff(&a, &b)
        );
    }
}

/// The loader reads weights by offset from the real file, so a model file reached through a
/// link (to another folder) loads and scores as the file itself does.
#[test]
fn a_model_file_behind_a_link_loads() {
    let (_tmp, dir) = copy_model("tiny-ast");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let real = elsewhere.path().join("weights.onnx");
    std::fs::rename(dir.join("model.onnx"), &real).expect("move");
    std::os::unix::fs::symlink(&real, dir.join("model.onnx")).expect("link");
    let model = Model::load(&ModelConfig::new(&dir)).expect("load through a link");
    let (_, input) = read_npy("models/tiny-ast/input.npy");
    let (_, expected) = read_npy("models/tiny-ast/expected.npy");
    let got = model.raw_outputs(&input).expect("inference");
    assert!(max_abs_diff(&got, &expected) <= 1e-4);
}

/// Integer index arithmetic on constants (BEATs' relative-position buckets: casts to TDim,
/// Mul, Add on a tokens × tokens grid) folds at load time even where the grid, weighed at the
/// TDim enum's own size, would be over the folding allowance: it is weighed as the i64 it
/// holds (vendored tract-core patch).
#[test]
fn integer_index_arithmetic_on_constants_folds() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::cast::cast;
    use tract_onnx::tract_core::ops::math::{Add, Mul};
    let n = 496usize;
    let grid: Vec<bool> = (0..n * n).map(|i| i % n > i / n).collect();
    let mut model = TypedModel::default();
    let g = model
        .add_const("grid", Tensor::from_shape(&[n, n], &grid).expect("grid"))
        .expect("const");
    let g = model
        .wire_node("as_dim", cast(TDim::datum_type()), &[g])
        .expect("cast");
    let k = model
        .add_const("k", tensor2(&[[TDim::from(160)]]))
        .expect("const");
    let m = model
        .wire_node("mul", TypedBinOp(Box::new(Mul), None), &[g[0], k])
        .expect("mul");
    let one = model
        .add_const("one", tensor2(&[[TDim::from(1)]]))
        .expect("const");
    let a = model
        .wire_node("add", TypedBinOp(Box::new(Add), None), &[m[0], one])
        .expect("add");
    let out = model
        .wire_node("as_i64", cast(i64::datum_type()), &a)
        .expect("cast");
    model.select_output_outlets(&out).expect("outputs");
    let got = folded_to_one_constant(model);
    let got = got.to_plain_array_view::<i64>().expect("i64");
    for (r, c) in [(0, 0), (0, 1), (5, 3), (n - 1, n - 1), (3, n - 1)] {
        let want = if c > r { 161 } else { 1 };
        assert_eq!(got[[r, c]], want, "({r}, {c})");
    }
}

/// The vendored tract-core folds Cast(i8 → i32) followed by a Sum (a quantised matmul's
/// zero-point compensation) even when the cast alone is over the folding allowance: the
/// optimised plan of `Sum_k(Cast(W))` for a 768 × 3072 weight is one constant.
#[test]
fn cast_then_sum_of_a_large_weight_folds_to_a_constant() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cast::cast;
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
    let (k, n) = (768usize, 3072usize);
    let w: Vec<i8> = (0..k * n).map(|i| ((i * 37) % 255) as u8 as i8).collect();
    let mut model = TypedModel::default();
    let c = model
        .add_const("w", Tensor::from_shape(&[k, n], &w).expect("w"))
        .expect("const");
    let c = model
        .wire_node("cast", cast(i32::datum_type()), &[c])
        .expect("cast");
    let s = model
        .wire_node("sum", Reduce::new(tvec!(0), Reducer::Sum), &c)
        .expect("sum");
    model.select_output_outlets(&s).expect("outputs");
    let got = folded_to_one_constant(model);
    let got = got.to_plain_array_view::<i32>().expect("i32");
    for j in [0, 1, n / 2, n - 1] {
        let want: i32 = (0..k).map(|i| w[i * n + j] as i32).sum();
        assert_eq!(got[[0, j]], want, "column {j}");
    }
}

/// The one constant an optimised model of constants folds to; fails if anything else is left.
fn folded_to_one_constant(
    model: tract_onnx::prelude::TypedModel,
) -> std::sync::Arc<tract_onnx::prelude::Tensor> {
    let model = model.into_optimized().expect("optimise");
    let ops: Vec<String> = model
        .nodes()
        .iter()
        .map(|n| n.op.name().to_string())
        .collect();
    assert_eq!(ops, ["Const"], "not folded: {ops:?}");
    model.nodes()[0]
        .op_as::<tract_onnx::tract_core::ops::konst::Const>()
        .expect("const")
        .val()
        .clone()
}

/// BEATs' relative-position buckets (shape arithmetic over a 496 × 496 grid of tokens at
/// 1,000 frames) fold to constants before tract's declutter without moving a bit; a model
/// without such a chain (AST) is left as it is.
#[test]
fn shape_arithmetic_folds_before_declutter_without_moving_a_bit() {
    use tract_onnx::prelude::*;
    let typed = |dir: &Path, frames: usize| {
        let manifest = Model::load(&ModelConfig::new(dir))
            .expect("model loads")
            .manifest;
        tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(dir.join(&manifest.onnx))
            .and_then(|m| m.with_input_fact(0, f32::fact([1, frames, 128]).into()))
            .and_then(|m| m.into_typed())
            .expect("model types")
    };
    for name in ["tiny-beats", "tiny-beats-int8"] {
        let plain = typed(&fixture(&format!("models/{name}")), 1000);
        let mut folded = plain.clone();
        let n = soundsentry::model::fold_shape_arithmetic(&mut folded).expect("fold");
        assert!(n > 0, "{name}: nothing folded");
        let input: Vec<f32> = (0..input_len(&plain))
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let a = run_typed(plain.into_decluttered().expect("declutter"), &input);
        let b = run_typed(folded.into_decluttered().expect("declutter"), &input);
        assert_eq!(a, b, "{name}: folded scores moved");
    }
    let mut ast = typed(&fixture("models/tiny-ast"), 1024);
    let n = soundsentry::model::fold_shape_arithmetic(&mut ast).expect("fold");
    assert_eq!(n, 0);
}

//! tract against onnxruntime on the committed tiny AST and BEATs exports, and broken models.

use std::path::{Path, PathBuf};

use soundsentry::model::{Attention, Device, Model};

use crate::util::{fixture, max_abs_diff, read_npy};

/// Raw outputs (logits or probabilities) of our runtime against onnxruntime's.
fn parity(name: &str) -> f32 {
    parity_with(name, Attention::Auto)
}

/// `parity` with a quantised model's attention as `attention` says.
fn parity_with(name: &str, attention: Attention) -> f32 {
    let dir = fixture(&format!("models/{name}"));
    let model =
        Model::load_on(&dir, 1, Device::Cpu, attention).unwrap_or_else(|e| panic!("{name}: {e}"));
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
        let model = Model::load_on(&dir, 1, Device::Cpu, Attention::Auto).expect("model");
        assert_eq!(model.attention(), if bf16_cpu() { "bf16" } else { "f32" });
        let exact = Model::load_on(&dir, 1, Device::Cpu, Attention::F32).expect("model");
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
    let fp32 = Model::load_on(&fixture("models/tiny-ast"), 1, Device::Cpu, Attention::Auto);
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
    match Model::load(dir) {
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
            let model = Model::load_on(&dir, threads, Device::Cpu, attention).expect("model");
            model.raw_outputs(&input).expect("inference")
        };
        let diff = max_abs_diff(&load(2, Attention::F32), &expected);
        assert!(diff <= 1e-4, "{name} with 2 threads: {diff}");
        // The default attention (bfloat16 for int8 where the CPU has it): the same bits on
        // one thread and on two.
        assert_eq!(load(1, Attention::Auto), load(2, Attention::Auto), "{name}");
    }
}

/// The vendored tract-core's i32 Sum (vendor/README.md) against naive sums, for every axis
/// and pairs of axes of a 3-D tensor, including wrapping on overflow.
#[test]
fn patched_i32_sum_matches_naive_sums() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::nn::Reducer;
    let (a, b, c) = (3usize, 5usize, 7usize);
    let mut vals: Vec<i32> = (0..a * b * c)
        .map(|i| (i as i32 * 7919) % 1000 - 500)
        .collect();
    vals[4] = i32::MAX; // the sum over its lane wraps, as i32 additions do
    let t = Tensor::from_shape(&[a, b, c], &vals).expect("tensor");
    let at = |i: usize, j: usize, k: usize| vals[(i * b + j) * c + k];
    for axes in [vec![0], vec![1], vec![2], vec![0, 2], vec![1, 2]] {
        let got = Reducer::Sum.reduce(&axes, &t).expect("sum");
        let shape: Vec<usize> = [a, b, c]
            .iter()
            .enumerate()
            .map(|(ax, &d)| if axes.contains(&ax) { 1 } else { d })
            .collect();
        assert_eq!(got.shape(), shape.as_slice(), "axes {axes:?}");
        let got = got.to_plain_array_view::<i32>().expect("i32 sums");
        let got: Vec<i32> = got.iter().copied().collect();
        let mut want = vec![0i32; got.len()];
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let o = [i, j, k];
                    let idx = (0..3).fold(0, |acc, ax| {
                        let pos = if axes.contains(&ax) { 0 } else { o[ax] };
                        acc * shape[ax] + pos
                    });
                    want[idx] = want[idx].wrapping_add(at(i, j, k));
                }
            }
        }
        assert_eq!(got, want, "axes {axes:?}");
    }
}

/// The model of `dir` typed for its window, as the runtime sees it before optimising.
fn typed_model(dir: &Path) -> tract_onnx::prelude::TypedModel {
    use tract_onnx::prelude::*;
    let manifest = Model::load(dir).expect("model loads").manifest;
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

/// Integer matrix products as dynamically quantised models run them (i8 or u8 activations
/// with a zero point, i8 weights with a zero point, i32 results) against naive sums: exact,
/// for shapes that leave partial tiles and a depth that is not a multiple of 4. This is the
/// vendored tract-linalg's AVX-512 VNNI kernel on machines that pick it (vendor/README.md).
#[test]
fn integer_products_are_exact() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;

    fn check<A: Datum + Copy + Into<i32>>(
        m: usize,
        k: usize,
        n: usize,
        a0: A,
        b0: i8,
        at: impl Fn(usize) -> A,
    ) {
        let av: Vec<A> = (0..m * k).map(&at).collect();
        // Weights cover the whole i8 range, including -128 and 127.
        let bv: Vec<i8> = (0..k * n)
            .map(|i| ((i * 7919 + 13) % 256) as u8 as i8)
            .collect();
        let mut model = TypedModel::default();
        let a = model.add_source("a", A::fact([m, k])).expect("source");
        let mut inputs = vec![a];
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        for (name, t) in [
            ("b", b),
            ("bias", tensor0(0i32)),
            ("a0", tensor0(a0)),
            ("a_scale", tensor0(1f32)),
            ("b0", tensor0(b0)),
            ("b_scale", tensor0(1f32)),
            ("c0", tensor0(0i32)),
            ("c_scale", tensor0(1f32)),
        ] {
            inputs.push(model.add_const(name, t).expect("const"));
        }
        let axes = "mk,kn,,,,,,,->mn".parse().expect("axes");
        let op = EinSum::newq(axes, i32::datum_type(), i32::datum_type());
        let c = model.wire_node("mm", op, &inputs).expect("wire");
        model.select_output_outlets(&c).expect("outputs");
        let plan = model
            .into_optimized()
            .expect("optimise")
            .into_runnable()
            .expect("plan");
        // On one thread and on two (the vendored tract-linalg packs the activations in parts).
        for threads in [1, 2] {
            let input = Tensor::from_shape(&[m, k], &av).expect("a");
            let out = on_threads(threads, || plan.run(tvec!(input.into_tvalue()))).expect("run");
            let got = out[0].to_plain_array_view::<i32>().expect("i32 output");
            for i in 0..m {
                for j in 0..n {
                    let want: i32 = (0..k)
                        .map(|p| {
                            (av[i * k + p].into() - a0.into()) * (bv[p * n + j] as i32 - b0 as i32)
                        })
                        .sum();
                    assert_eq!(
                        got[[i, j]],
                        want,
                        "{m}x{k}x{n} at ({i}, {j}), {threads} threads"
                    );
                }
            }
        }
    }

    let shapes = [
        (1, 1, 1),
        (16, 4, 16),
        (37, 67, 45),
        (50, 768, 33),
        (300, 771, 20),
        // m < n: below 64 rows tract swaps the operands (n becomes the kernel's rows); from
        // 64 rows on, the vendored tract-core keeps them (C stored a whole row at a time).
        (40, 24, 100),
        (70, 96, 200),
        // k from 1,536 on: the vendored tract-linalg runs the product in passes over k-slices.
        (70, 3001, 40),
        (33, 1536, 70),
    ];
    for (m, k, n) in shapes {
        // u8 activations as onnxruntime's DynamicQuantizeLinear makes them, extremes included.
        check(m, k, n, 131u8, -3, |i| ((i * 31 + 7) % 256) as u8);
        check(m, k, n, 0u8, 0, |i| if i % 3 == 0 { 255 } else { 0 });
        // i8 activations, extremes included.
        check(m, k, n, -5i8, 7, |i| ((i * 57 + 3) % 256) as u8 as i8);
        check(m, k, n, 0i8, 0, |i| if i % 2 == 0 { -128 } else { 127 });
    }
}

/// f32 products with a long k (run by the vendored tract-linalg in passes over k-slices, each
/// starting from the partial sums the one before stored) give the bits of one fused
/// multiply-add after another along k, on one thread and two, border tiles included.
#[test]
fn long_f32_products_add_k_in_order() {
    use tract_linalg::mmm::{AsInputValue, FusedSpec};
    use tract_onnx::prelude::*;
    // tract-linalg splits k except on AMD CPUs (where whole products measured faster): on any
    // x86_64 machine this test also runs once with the Intel cohort forced, in a child process,
    // so the k-slices are checked whatever the vendor.
    if cfg!(target_arch = "x86_64") && std::env::var_os("TRACT_X86_KIND").is_none() {
        let name = "model_parity::long_f32_products_add_k_in_order";
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--test-threads=1"])
            .env("TRACT_X86_KIND", "intel")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "with TRACT_X86_KIND=intel:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (m, k, n) in [
        (70, 3001, 50),
        (37, 1536, 29),
        (16, 2000, 12),
        (40, 700, 30),
    ] {
        let (av, bv) = f32_operands(m, k, n);
        let a = Tensor::from_shape(&[m, k], &av).expect("a");
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        let mmm = tract_linalg::MmmDispatch::native()
            .preferred_kernel(f32::datum_type(), Some(m), Some(k), Some(n))
            .expect("an f32 kernel");
        let (pa, pb) = &mmm.packings()[0];
        let ap = pa.prepare_one(&a, 1, 0).expect("pack a");
        let bp = pb.prepare_one(&b, 0, 1).expect("pack b");
        for threads in [1, 2] {
            let c = Tensor::zero::<f32>(&[m, n]).expect("c");
            on_threads(threads, || {
                #[allow(unsafe_code)]
                // SAFETY: A is m × k and B k × n, packed by the kernel's own formats; C is the
                // m × n f32 tensor the store wraps, alive for the call.
                unsafe {
                    let store = mmm.c_view(Some(0), Some(1)).wrap(&c.view());
                    mmm.run(
                        m,
                        n,
                        &[
                            FusedSpec::AddMatMul {
                                a: AsInputValue::Borrowed(&*ap),
                                b: AsInputValue::Borrowed(&*bp),
                                packing: 0,
                            },
                            FusedSpec::Store(store),
                        ],
                    )
                }
            })
            .expect("product runs");
            let got = c.to_plain_array_view::<f32>().expect("f32");
            for i in 0..m {
                for j in 0..n {
                    let want = fma_dot(&av, &bv, k, n, i, j);
                    assert_eq!(
                        got[[i, j]].to_bits(),
                        want.to_bits(),
                        "{m}x{k}x{n} ({}) at ({i}, {j}), {threads} threads: {} against {want}",
                        mmm.name(),
                        got[[i, j]]
                    );
                }
            }
        }
    }
}

/// The vendored 32 × 12 and 32 × 8 f32 tiles (24 and 16 accumulators) give the bits of a plain
/// reference: exact tiles and border tiles, a long k (split into k-slices), every fused op our
/// models' products use after it (per-row add, per-column multiply, scalar max, leaky ReLU, an
/// added tensor), and stores into C with strided rows (row-major) and contiguous rows
/// (column-major).
#[test]
fn wide_f32_tiles_match_a_plain_reference() {
    for name in ["avx512_mmm_f32_32x12", "avx512_mmm_f32_32x8"] {
        wide_f32_tile_matches_a_plain_reference(name);
    }
}

fn wide_f32_tile_matches_a_plain_reference(name: &str) {
    use tract_linalg::mmm::{AsInputValue, FusedSpec};
    use tract_linalg::BinOp;
    use tract_onnx::prelude::*;
    let dispatch = tract_linalg::MmmDispatch::native();
    let Some(mmm) = dispatch.runnable().iter().find(|k| k.name() == name) else {
        #[cfg(target_arch = "x86_64")]
        assert!(
            !std::arch::is_x86_feature_detected!("avx512f"),
            "an AVX-512 host runs {name}"
        );
        return;
    };
    for (m, k, n) in [
        (64, 100, 24),
        (70, 300, 50),
        (33, 7, 13),
        (32, 1, 12),
        (40, 3001, 30),
        (32, 256, 1212),
    ] {
        let val = |i: usize, p: usize, q: usize| ((i * p % q) as f32 - (q / 2) as f32) / q as f32;
        let av: Vec<f32> = (0..m * k).map(|i| val(i, 7919, 2003)).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| val(i, 104_729, 1999)).collect();
        let row: Vec<f32> = (0..m).map(|i| val(i, 31, 17)).collect();
        let col: Vec<f32> = (0..n).map(|j| 0.5 + val(j, 13, 11)).collect();
        let dv: Vec<f32> = (0..m * n).map(|i| val(i, 61, 29)).collect();
        let (floor, alpha) = (-0.4f32, 0.1f32);
        let a = Tensor::from_shape(&[m, k], &av).expect("a");
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        let (row_t, col_t) = (tensor1(&row), tensor1(&col));
        let (floor_t, alpha_t) = (tensor0(floor), tensor0(alpha));
        let (pa, pb) = &mmm.packings()[0];
        let ap = pa.prepare_one(&a, 1, 0).expect("pack a");
        let bp = pb.prepare_one(&b, 0, 1).expect("pack b");
        let want = |i: usize, j: usize| {
            let v = ((fma_dot(&av, &bv, k, n, i, j) + row[i]) * col[j]).max(floor);
            (if v < 0.0 { v * alpha } else { v }) + dv[i * n + j]
        };
        // (shape of C and of the added tensor, C's axis for m, its axis for n)
        for (shape, m_axis, n_axis) in [([m, n], 0, 1), ([n, m], 1, 0)] {
            let d = if m_axis == 0 {
                Tensor::from_shape(&shape, &dv).expect("d")
            } else {
                let t: Vec<f32> = (0..m * n).map(|x| dv[(x % m) * n + x / m]).collect();
                Tensor::from_shape(&shape, &t).expect("d")
            };
            for threads in [1, 2] {
                let c = Tensor::zero::<f32>(&shape).expect("c");
                on_threads(threads, || {
                    #[allow(unsafe_code)]
                    // SAFETY: A is m × k and B k × n, packed by the kernel's own formats; C and
                    // D are m × n f32 tensors the stores wrap (m and n on the axes named), alive
                    // for the call; the per-row and per-column operands hold m and n values.
                    unsafe {
                        let view = mmm.c_view(Some(m_axis), Some(n_axis));
                        mmm.run(
                            m,
                            n,
                            &[
                                FusedSpec::AddMatMul {
                                    a: AsInputValue::Borrowed(&*ap),
                                    b: AsInputValue::Borrowed(&*bp),
                                    packing: 0,
                                },
                                FusedSpec::BinPerRow(row_t.view(), BinOp::Add),
                                FusedSpec::BinPerCol(col_t.view(), BinOp::Mul),
                                FusedSpec::BinScalar(&floor_t, BinOp::Max),
                                FusedSpec::LeakyRelu(&alpha_t),
                                FusedSpec::AddUnicast(view.wrap(&d.view())),
                                FusedSpec::Store(view.wrap(&c.view())),
                            ],
                        )
                    }
                })
                .expect("product runs");
                let got = c.to_plain_array_view::<f32>().expect("f32");
                for i in 0..m {
                    for j in 0..n {
                        let g = if m_axis == 0 {
                            got[[i, j]]
                        } else {
                            got[[j, i]]
                        };
                        assert_eq!(
                            g.to_bits(),
                            want(i, j).to_bits(),
                            "{name}: {m}x{k}x{n}, m on axis {m_axis}, {threads} threads, at \
                             ({i}, {j}): {g} against {}",
                            want(i, j)
                        );
                    }
                }
            }
        }
    }
}

/// f32 products whose output's innermost axis is n (a dense layer over more tokens than
/// features, AST's 1,214 × 768) run with the operands swapped by the vendored tract-core, so
/// the kernel stores whole columns of C; a residual added to the product (fused into it) and
/// the results keep the bits of one fused multiply-add after another along k, on one thread
/// and two, border tiles included.
#[test]
fn f32_products_store_along_the_innermost_axis() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::math::add;
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    for (m, k, n) in [(200, 96, 70), (131, 40, 64), (70, 33, 100)] {
        let (av, bv) = f32_operands(m, k, n);
        let rv: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 - 8.5).collect();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([m, k])).expect("source");
        let r = model.add_source("r", f32::fact([m, n])).expect("source");
        let w = Tensor::from_shape(&[k, n], &bv).expect("w");
        let w = model.add_const("w", w).expect("const");
        let op = EinSum::new("mk,kn->mn".parse().expect("axes"), f32::datum_type());
        let c = model.wire_node("mm", op, &[x, w]).expect("wire");
        let sum = model.wire_node("add", add(), &[c[0], r]).expect("wire");
        model.select_output_outlets(&sum).expect("outputs");
        let plan = model
            .into_optimized()
            .expect("optimise")
            .into_runnable()
            .expect("plan");
        let products: Vec<&OptMatMul> = plan
            .model()
            .nodes()
            .iter()
            .filter_map(|node| node.op_as::<OptMatMul>())
            .collect();
        assert_eq!(
            products.len(),
            1,
            "{m}x{k}x{n}: one product, the add fused into it"
        );
        let (c_m, c_n) = (products[0].c_m_axis, products[0].c_n_axis);
        assert_eq!(
            (c_m, c_n),
            (Some(1), Some(0)),
            "{m}x{k}x{n}: the kernel's rows should be the output's innermost axis"
        );
        for threads in [1, 2] {
            let inputs = tvec!(
                Tensor::from_shape(&[m, k], &av).expect("x").into_tvalue(),
                Tensor::from_shape(&[m, n], &rv).expect("r").into_tvalue()
            );
            let out = on_threads(threads, || plan.run(inputs)).expect("run");
            let got = out[0].to_plain_array_view::<f32>().expect("f32 output");
            for i in 0..m {
                for j in 0..n {
                    let want = fma_dot(&av, &bv, k, n, i, j) + rv[i * n + j];
                    assert_eq!(
                        got[[i, j]].to_bits(),
                        want.to_bits(),
                        "{m}x{k}x{n} at ({i}, {j}), {threads} threads: {} against {want}",
                        got[[i, j]]
                    );
                }
            }
        }
    }
}

/// Deterministic f32 operands A (m × k) and B (k × n), row-major, spread over about [-1, 1].
fn f32_operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k)
        .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 997.0)
        .collect();
    let b = (0..k * n)
        .map(|i| ((i * 104_729 % 1999) as f32 - 999.0) / 1009.0)
        .collect();
    (a, b)
}

/// Row `i` of A (m × k) times column `j` of B (k × n): one fused multiply-add after another
/// along k, the order the kernels add in.
fn fma_dot(a: &[f32], b: &[f32], k: usize, n: usize, i: usize, j: usize) -> f32 {
    (0..k).fold(0f32, |acc, p| a[i * k + p].mul_add(b[p * n + j], acc))
}

/// Runs `f` with tract's executor on `threads` threads (1: the default, single-threaded).
fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    use tract_onnx::tract_core::tract_linalg::multithread::{multithread_tract_scope, Executor};
    if threads == 1 {
        f()
    } else {
        multithread_tract_scope(Executor::multithread(threads), f)
    }
}

/// The vendored DynamicQuantizeLinear (min/max and quantisation) and i32 → f32 Cast split
/// large tensors over tract's threads: on two threads they give the bytes a plain reference
/// gives, with the extremes placed in different parts of the tensor.
#[test]
fn quantise_and_cast_on_two_threads_match_a_plain_reference() {
    use tract_onnx::pb::{ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
    use tract_onnx::prelude::*;
    let n = 200_003usize;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 0.7)
        .map(|v| if v.abs() < 1e-3 { 0.25 } else { v })
        .collect();
    let mut x = x;
    x[n - 2] = -3.5; // the minimum, in the last part
    x[n / 2] = 2.25; // the maximum, in a middle one
    let xi: Vec<i32> = (0..n as i32).map(|i| i.wrapping_mul(48_271) >> 3).collect();
    // A graph input: a tensor of ONNX element type `elem` (1 float, 6 int32) and n values.
    let input = |name: &str, elem: i32| {
        use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
        use tract_onnx::pb::{type_proto, TensorShapeProto, TypeProto};
        let dim = Dimension {
            value: Some(dimension::Value::DimValue(n as i64)),
            ..Default::default()
        };
        let tensor = type_proto::Tensor {
            elem_type: elem,
            shape: Some(TensorShapeProto { dim: vec![dim] }),
        };
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let value = |name: &str| ValueInfoProto {
        name: name.into(),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], outputs: &[&str], attrs| NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    };
    let to_float = tract_onnx::pb::AttributeProto {
        name: "to".into(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    let graph = tract_onnx::pb::GraphProto {
        name: "g".into(),
        node: vec![
            node(
                "DynamicQuantizeLinear",
                &["x"],
                &["y", "scale", "zp"],
                vec![],
            ),
            node("Cast", &["xi"], &["xf"], vec![to_float]),
        ],
        input: vec![input("x", 1), input("xi", 6)],
        output: vec![value("y"), value("scale"), value("zp"), value("xf")],
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .expect("model")
        .into_optimized()
        .expect("optimise")
        .into_runnable()
        .expect("plan");
    // The reference: onnxruntime's definition of DynamicQuantizeLinear.
    let (lo, hi) = x
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    let want_y: Vec<u8> = x
        .iter()
        .map(|&v| ((v / scale).round_ties_even() as i32 + zp as i32).clamp(0, 255) as u8)
        .collect();
    let want_xf: Vec<f32> = xi.iter().map(|&v| v as f32).collect();
    for threads in [1, 2] {
        let inputs = tvec!(
            Tensor::from_shape(&[n], &x).expect("x").into_tvalue(),
            Tensor::from_shape(&[n], &xi).expect("xi").into_tvalue()
        );
        let out = on_threads(threads, || plan.run(inputs)).expect("run");
        let view = |i: usize| out[i].try_as_plain_ram().expect("plain");
        assert_eq!(
            view(1).as_slice::<f32>().expect("scale"),
            [scale],
            "{threads} threads"
        );
        assert_eq!(
            view(2).as_slice::<u8>().expect("zp"),
            [zp],
            "{threads} threads"
        );
        assert!(
            view(0).as_slice::<u8>().expect("y") == want_y,
            "y, {threads} threads"
        );
        assert!(
            view(3).as_slice::<f32>().expect("xf") == want_xf,
            "cast, {threads} threads"
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
    let model = Model::load(&dir).expect("load through a link");
    let (_, input) = read_npy("models/tiny-ast/input.npy");
    let (_, expected) = read_npy("models/tiny-ast/expected.npy");
    let got = model.raw_outputs(&input).expect("inference");
    assert!(max_abs_diff(&got, &expected) <= 1e-4);
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

/// The int8 im2col packing writer (tract-linalg `KOut4Writer`, K four at a time per lane) lays
/// out slices that cross panel boundaries exactly as value-by-value writes do (vendored
/// patch: such slices are stored panel by panel instead of through `write`).
#[test]
fn int8_packing_of_long_slices_matches_value_by_value_writes() {
    use tract_linalg::pack::{PackedI8K4, PackingWriter};
    let fmt = PackedI8K4::new(16);
    for (k, mn, cut) in [
        (6, 37, 5),
        (9, 496, 496),
        (4, 16, 7),
        (5, 33, 1),
        (3, 20, 40),
    ] {
        let src: Vec<i8> = (0..k * mn).map(|i| (i * 31 % 251) as u8 as i8).collect();
        let len = fmt.len(k, mn);
        let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
        let mut w = fmt.write_with_k_outer(a.as_mut_ptr(), k, mn);
        for &x in &src {
            w.write(x);
        }
        // The same values in slices of `cut`, crossing rows and panels.
        let mut w = fmt.write_with_k_outer(b.as_mut_ptr(), k, mn);
        for chunk in src.chunks(cut) {
            w.write_slice(chunk);
        }
        assert_eq!(a, b, "k {k} mn {mn} slices of {cut}");
    }
}

/// BEATs' relative-position buckets (shape arithmetic over a 496 × 496 grid of tokens at
/// 1,000 frames) fold to constants before tract's declutter without moving a bit; a model
/// without such a chain (AST) is left as it is.
#[test]
fn shape_arithmetic_folds_before_declutter_without_moving_a_bit() {
    use tract_onnx::prelude::*;
    let typed = |dir: &Path, frames: usize| {
        let manifest = Model::load(dir).expect("model loads").manifest;
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

//! The kernel paths of other CPUs, run here: the parity tests again with the kernels of a CPU
//! without AVX-512 (`avx2`) and without any vector extension (`generic`), in child processes
//! (tract reads the instruction set once a process).

use soundsentry::model::kernels::{self, Kernels};

/// The tests each path must pass: tract against onnxruntime (fp32 and int8, AST and BEATs),
/// integer products against plain sums (extremes, partial tiles, long k, two threads) and
/// BEATs against the official implementation.
const PARITY_TESTS: &[&str] = &[
    "model_parity::tract_reproduces_onnxruntime_fp32",
    "model_parity::tract_int8_stays_close_to_onnxruntime_int8",
    "vendored_tract::integer_products_are_exact",
    "beats_parity::issue_25_beats_classify_windows_match_the_official_implementation",
    "kernels::the_chosen_kernels_are_the_ones_that_run",
];

/// Issue 26 (2): every path this CPU can run is tested, whatever its widest one.
#[test]
fn every_kernel_path_this_cpu_runs_passes_the_parity_tests() {
    if std::env::var_os(kernels::ENV).is_some() {
        return; // already a child
    }
    let mut paths = vec!["generic"];
    if cfg!(target_arch = "x86_64")
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        paths.push("avx2");
    }
    for path in paths {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .arg("--exact")
            .args(PARITY_TESTS)
            .arg("--test-threads=2")
            .env(kernels::ENV, path)
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("{} passed", PARITY_TESTS.len())),
            "{}={path}:\n{stdout}{}",
            kernels::ENV,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// In a child of the test above: the instruction set tract picks kernels from has nothing
/// past what was asked for.
#[test]
fn the_chosen_kernels_are_the_ones_that_run() {
    let chosen = kernels::chosen();
    let isa = kernels::isa();
    if let Ok(asked) = std::env::var(kernels::ENV) {
        // Not silently "auto": tract had not read the instruction set before it was chosen.
        assert_eq!(chosen.to_string(), asked, "{isa}");
    }
    match chosen {
        Kernels::Auto => {}
        Kernels::Avx2 => {
            assert!(!isa.contains("avx512") && !isa.contains("amx"), "{isa}");
            assert!(isa.contains("avx2") && isa.contains("fma"), "{isa}");
            assert!(!kernels::avx512f() && kernels::avx2_fma());
        }
        Kernels::Generic => {
            assert!(!isa.contains("avx"), "{isa}");
            assert!(!kernels::avx512f() && !kernels::avx2_fma());
        }
    }
    // The choice is fixed for the process.
    let other = match chosen {
        Kernels::Generic => Kernels::Auto,
        _ => Kernels::Generic,
    };
    assert!(kernels::select(other).is_err());
    assert!(kernels::select(chosen).is_ok());
}

/// Issue 26 (5): an int8 model on kernels with neither an int8 dot product nor AVX2 (the
/// generic ones) is said to be slower than fp32, at load and by check-config, instead of
/// silently running so; on the AVX2 kernels, where int8 is the faster, nothing is said.
#[test]
fn an_int8_model_without_dot_product_kernels_is_warned_about() {
    if std::env::var_os(kernels::ENV).is_some() || !cfg!(target_arch = "x86_64") {
        return; // a child of the test above, or a CPU where the warning was never measured
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\nkernels = \"generic\"\n[source]\npath = {:?}\n",
            crate::util::repo("models/sitehome-tiny-ast-int8"),
            crate::util::repo("samples/demo-20s.wav"),
        ),
    )
    .expect("config");
    let out = crate::util::run_ok(crate::util::bin().arg("check-config").arg(&cfg));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: model.path: this model is int8"),
        "{text}"
    );
    assert!(text.contains("(x86_64)"), "{text}");
    assert!(text.contains(": ok"), "{text}");
    // The AVX2 kernels (where this CPU has them) get no such line.
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        let text = std::fs::read_to_string(&cfg).expect("config");
        std::fs::write(&cfg, text.replace("\"generic\"", "\"avx2\"")).expect("config");
        let out = crate::util::run_ok(crate::util::bin().arg("check-config").arg(&cfg));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("warning"), "{text}");
        assert!(text.contains(": ok"), "{text}");
    }
    // The fp32 model gets no such line.
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\nkernels = \"generic\"\n[source]\npath = {:?}\n",
            crate::util::repo("models/sitehome-tiny-ast"),
            crate::util::repo("samples/demo-20s.wav"),
        ),
    )
    .expect("config");
    let out = crate::util::run_ok(crate::util::bin().arg("check-config").arg(&cfg));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

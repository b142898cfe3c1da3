//! Timing probe for tools/bench-compare: prints one JSON line of our figures.
//!
//! `bench_probe fbank FILE.f32 BINS ITERS` — frames/s of the fbank (BEATs setting) on raw
//! little-endian f32 samples at 16 kHz.
//! Every mode honours `SOUNDSENTRY_KERNELS=avx2|generic` (the kernels of a CPU without
//! AVX-512, or without any vector extension) and prints the instruction set it ran with.
//! `bench_probe model DIR ITERS [THREADS]` — load time, ms per window and RSS (peak, after
//! the load, after the runs) of a model folder, on a constant window (`BENCH_INPUT=noise`:
//! a varied one).
//! `bench_probe onnx FILE ITERS` — ms per run of any ONNX file whose inputs have fixed
//! shapes (float32, filled with 0.1; `BENCH_SHAPE=1,998,128` fixes the first input's shape),
//! for graph-form experiments and per-op profiles. It reads the file and optimises as the
//! runtime does; `BENCH_PROFILE=1` prints the time per op kind, `BENCH_PROFILE_NODES=PAT`
//! per matching node, `BENCH_MEMTRACE=1` (with the profile) the live heap, the free heap and
//! the resident size after every node, `BENCH_DUMP=PAT` the optimised nodes; `BENCH_ATTENTION=f32` keeps a quantised model's attention in f32
//! (`model.attention`).
//! `bench_probe scores DIR IN OUT` — raw outputs of a model folder for the windows in IN
//! (little-endian f32, windows × frames × mel bins) into OUT (windows × labels), with
//! `BENCH_ATTENTION` as above: `tools/int8_drift.py --tract`.
//! `bench_probe kernel NAME M K N [REPS]` — GFLOP/s of one tract-linalg kernel (by name, e.g.
//! `avx512_mmm_f32_32x12`; an i32 kernel such as `avx512vnni_mmm_i32_16x16` multiplies i8
//! operands) alone on an M × K by K × N product, best of REPS (9), with the largest error
//! against a plain sum on a sample of outputs.

use std::time::Instant;

use soundsentry::features::{Fbank, FbankConfig};
use soundsentry::model::{Model, ModelConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Before tract reads the instruction set.
    let _ = soundsentry::model::kernels::chosen();
    match args.get(1).map(String::as_str) {
        Some("fbank") => {
            let x = read_f32(&args[2])?;
            let bins: usize = args[3].parse()?;
            let iters: usize = args[4].parse()?;
            let cfg = FbankConfig {
                mel_bins: bins,
                ..FbankConfig::beats()
            };
            let mut fb = Fbank::new(&cfg)?;
            let mut out = Vec::new();
            let mut best = f64::MAX;
            let mut frames = 0;
            for _ in 0..iters {
                out.clear();
                fb.reset();
                let t = Instant::now();
                frames = fb.process(&x, &mut out);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{}",
                serde_json::json!({"frames": frames, "best_s": best, "frames_per_s": frames as f64 / best})
            );
        }
        Some("scores") => {
            // Raw outputs of a model folder for windows read from a little-endian f32 file
            // (windows × frames × mel bins), written the same way (windows × labels).
            let model = Model::load(&ModelConfig::new(&args[2]).attention(attention()?))?;
            let x = read_f32(&args[3])?;
            let len = model.manifest.window_frames * model.manifest.frame_bins();
            anyhow::ensure!(
                !x.is_empty() && x.len().is_multiple_of(len),
                "{} values are not whole windows of {len}",
                x.len()
            );
            let mut out = Vec::new();
            for window in x.chunks_exact(len) {
                for v in model.raw_outputs(window)? {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            std::fs::write(&args[4], out)?;
        }
        Some("model") => {
            let t = Instant::now();
            let threads: usize = args.get(4).map(|t| t.parse()).transpose()?.unwrap_or(1);
            let model = Model::load(
                &ModelConfig::new(&args[2])
                    .threads(threads)
                    .attention(attention()?),
            )?;
            let load_s = t.elapsed().as_secs_f64();
            let (load_peak, after_load) = (status_mb("VmHWM:"), status_mb("VmRSS:"));
            let iters: usize = args[3].parse()?;
            let m = &model.manifest;
            // A constant window by default; `BENCH_INPUT=noise` gives a varied one (uniform
            // in [-1, 1), fixed seed), as real features are.
            let n = m.window_frames * m.frame_bins();
            let input: Vec<f32> = if std::env::var("BENCH_INPUT").as_deref() == Ok("noise") {
                soundsentry::noise::Noise::new(0x2545_f491_4f6c_dd1d).samples(n, 2.0)
            } else {
                vec![0.1f32; n]
            };
            model.score_prepared(&input)?; // warm-up
            let mut times = Vec::new();
            for _ in 0..iters {
                let t = Instant::now();
                model.score_prepared(&input)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({"load_s": load_s, "ms_median": times[times.len() / 2],
                    "ms_min": times[0], "peak_rss_mb": peak_rss_mb(),
                    "load_peak_rss_mb": load_peak, "rss_after_load_mb": after_load,
                    "rss_after_runs_mb": status_mb("VmRSS:"), "exe_rss_mb": soundsentry::memory::exe_resident_bytes().unwrap_or(0) as f64 / 1048576.0,
                    "kernels": soundsentry::model::kernels::chosen().to_string(),
                    "isa": soundsentry::model::kernels::isa()})
            );
        }
        Some("onnx") => {
            use tract_onnx::prelude::*;
            let iters: usize = args[3].parse()?;
            // As the runtime reads models: value_info entries are hints that may clash.
            let lp = soundsentry::memory::LoadPhase::start();
            let mut inference = soundsentry::model::read_onnx(
                &tract_onnx::onnx().with_ignore_value_info(true),
                std::path::Path::new(&args[2]),
            )?;
            // `BENCH_SHAPE=1,998,128` fixes the first input's shape (models such as BEATs
            // take any length).
            if let Ok(shape) = std::env::var("BENCH_SHAPE") {
                let dims: Vec<usize> =
                    shape.split(',').map(str::parse).collect::<Result<_, _>>()?;
                inference = inference.with_input_fact(0, f32::fact(dims).into())?;
            }
            let mut model = soundsentry::model::declutter(inference.into_typed()?)?;
            // `unfused` as a fourth argument measures tract's own graph.
            let done = if args.get(4).map(String::as_str) == Some("unfused") {
                soundsentry::model::Rewrites::default()
            } else {
                soundsentry::model::rewrite_for_cpu(&mut model, attention()?)?
            };
            eprintln!("load-time rewrites: {done:?}");
            let plan = model.into_optimized()?.into_runnable()?;
            drop(lp);
            let inputs: TVec<TValue> = plan
                .model()
                .input_outlets()?
                .iter()
                .map(|o| {
                    let fact = plan.model().outlet_fact(*o)?;
                    let shape: Vec<usize> = fact
                        .shape
                        .as_concrete()
                        .ok_or_else(|| anyhow::anyhow!("input shape must be fixed"))?
                        .to_vec();
                    let n = shape.iter().product();
                    Ok(Tensor::from_shape(&shape, &vec![0.1f32; n])?.into_tvalue())
                })
                .collect::<anyhow::Result<_>>()?;
            plan.run(inputs.clone())?;
            let mut times = Vec::new();
            for _ in 0..iters {
                let t = Instant::now();
                plan.run(inputs.clone())?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({"ms_median": times[times.len() / 2],
                    "kernels": soundsentry::model::kernels::chosen().to_string(),
                    "isa": soundsentry::model::kernels::isa()})
            );
            if let Ok(pat) = std::env::var("BENCH_DUMP") {
                for node in plan.model().nodes() {
                    if node.name.contains(&pat) {
                        let inputs: Vec<String> =
                            node.inputs.iter().map(|i| format!("{}", i.node)).collect();
                        eprintln!(
                            "{} {} [{}] <- {:?} : {:?} {}",
                            node.id,
                            node.name,
                            node.op().name(),
                            inputs,
                            node.outputs[0].fact,
                            format!("{:?}", node.op())
                                .chars()
                                .take(1500)
                                .collect::<String>()
                        );
                    }
                }
            }
            if std::env::var("BENCH_PROFILE").is_ok() {
                profile(&plan, inputs)?;
            }
        }
        Some("kernel") => kernel(&args[2..])?,
        _ => anyhow::bail!(
            "usage: bench_probe fbank FILE.f32 BINS ITERS | model DIR ITERS [THREADS] \
             | onnx FILE ITERS | kernel NAME M K N [REPS]"
        ),
    }
    Ok(())
}

/// Time per op kind over one run of `plan` (BENCH_PROFILE=1), printed largest first, ms.
fn profile(
    plan: &std::sync::Arc<tract_onnx::prelude::TypedSimplePlan>,
    inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
) -> anyhow::Result<()> {
    let mut per_op: std::collections::HashMap<String, (f64, usize)> = Default::default();
    let nodes = std::env::var("BENCH_PROFILE_NODES").ok();
    let mut peak = (0.0, String::new());
    let mut state = plan.spawn()?;
    state.run_plan_with_eval(inputs, |ctx, st, node, input| {
        let t = Instant::now();
        let out = tract_onnx::tract_core::plan::eval(ctx, st, node, input);
        #[allow(unsafe_code)]
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let live = unsafe {
            let i = libc::mallinfo2();
            (i.uordblks + i.hblkhd) as f64 / 1048576.0
        };
        if live > peak.0 {
            peak = (live, format!("{} ({})", node.name, node.op().name()));
        }
        if std::env::var("BENCH_MEMTRACE").is_ok() {
            #[allow(unsafe_code)]
            // SAFETY: as above, mallinfo2 only reads the allocator's counters.
            let i = unsafe { libc::mallinfo2() };
            eprintln!(
                "MEM live {:.1} free {:.1} mmap {:.1} rss {:.1} anon {:.1} hwm {:.1} {}",
                live,
                i.fordblks as f64 / 1048576.0,
                i.hblkhd as f64 / 1048576.0,
                status_mb("VmRSS:"),
                status_mb("RssAnon:"),
                status_mb("VmHWM:"),
                node.name
            );
        }
        if let Some(pat) = &nodes {
            if node.name.contains(pat.as_str()) {
                eprintln!(
                    "{:8.2} ms {} ({})",
                    t.elapsed().as_secs_f64() * 1000.0,
                    node.name,
                    node.op().name()
                );
            }
        }
        let e = per_op.entry(node.op().name().to_string()).or_default();
        e.0 += t.elapsed().as_secs_f64() * 1000.0;
        e.1 += 1;
        out
    })?;
    let mut rows: Vec<_> = per_op.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (name, (ms, n)) in rows {
        eprintln!("{ms:10.1} ms {n:5}x {name}");
    }
    eprintln!("peak live heap {:.1} MB after {}", peak.0, peak.1);
    Ok(())
}

/// Peak resident set size of this process (VmHWM), MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// A memory line of /proc/self/status (e.g. "VmRSS:"), MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// `kernel NAME M K N [REPS]`: one matrix kernel alone, packed operands, best of REPS. An f32
/// kernel multiplies f32 operands (packing 0); an i32 kernel multiplies i8 ones (packing 1,
/// i8 × i8 with i32 sums) and reports GOP/s.
fn kernel(args: &[String]) -> anyhow::Result<()> {
    use tract_linalg::mmm::{AsInputValue, FusedSpec};
    use tract_onnx::prelude::*;
    let [name, m, k, n, rest @ ..] = args else {
        anyhow::bail!("usage: bench_probe kernel NAME M K N [REPS]")
    };
    let (m, k, n): (usize, usize, usize) = (m.parse()?, k.parse()?, n.parse()?);
    let reps: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(9);
    let mmm = tract_linalg::MmmDispatch::native()
        .runnable()
        .iter()
        .find(|ker| ker.name() == name)
        .ok_or_else(|| anyhow::anyhow!("no kernel {name} runs on this machine"))?;
    let int = mmm.internal_type() == i32::datum_type();
    let val = |i: usize, p: usize, q: usize| ((i * p % q) as f32 - (q / 2) as f32) / q as f32;
    // Integer operands in -127..=127; BENCH_I8=a, b or ab puts -128 in that operand (the
    // AVX2 kernel's loop depends on which operand holds -128: vendor/README.md).
    let with_min = std::env::var("BENCH_I8").unwrap_or_default();
    let (av, bv): (Vec<f32>, Vec<f32>) = if int {
        let v = |i: usize, p: usize, op: char| {
            let x = ((i * p) % 255) as f32 - 127.0;
            if x == -127.0 && with_min.contains(op) {
                -128.0
            } else {
                x
            }
        };
        (
            (0..m * k).map(|i| v(i, 7919, 'a')).collect(),
            (0..k * n).map(|i| v(i, 104_729, 'b')).collect(),
        )
    } else {
        (
            (0..m * k).map(|i| val(i, 7919, 2003)).collect(),
            (0..k * n).map(|i| val(i, 104_729, 1999)).collect(),
        )
    };
    // i8 operands for an i32 kernel (its packing 1), f32 ones otherwise (packing 0).
    let operand = |v: &[f32], shape: &[usize]| -> anyhow::Result<Tensor> {
        let t = Tensor::from_shape(shape, v)?;
        Ok(if int {
            t.cast_to::<i8>()?.into_owned()
        } else {
            t
        })
    };
    let (a, b) = (operand(&av, &[m, k])?, operand(&bv, &[k, n])?);
    // C is n × m: a tile column's m values are contiguous, the layout the models' products
    // store into (vector stores).
    let c = Tensor::zero_dt(mmm.internal_type(), &[n, m])?;
    let packing = usize::from(int);
    let (pa, pb) = &mmm.packings()[packing];
    let (ap, bp) = (pa.prepare_one(&a, 1, 0)?, pb.prepare_one(&b, 0, 1)?);
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        #[allow(unsafe_code)]
        // SAFETY: A is m × k and B k × n, packed by the kernel's own formats; C is the n × m
        // tensor of the kernel's sum type the store wraps, alive for the call.
        unsafe {
            let store = mmm.c_view(Some(1), Some(0)).wrap(&c.view());
            let a = AsInputValue::Borrowed(&*ap);
            let b = AsInputValue::Borrowed(&*bp);
            let specs = [
                FusedSpec::AddMatMul { a, b, packing },
                FusedSpec::Store(store),
            ];
            mmm.run(m, n, &specs)?;
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let got = c.cast_to::<f32>()?;
    let got = got.to_plain_array_view::<f32>()?;
    let mut max_err = 0f32;
    for i in (0..m).step_by(37) {
        for j in (0..n).step_by(13) {
            let want: f32 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
            max_err = max_err.max((got[[j, i]] - want).abs());
        }
    }
    let gflops = 2.0 * (m * k * n) as f64 / best / 1e9;
    println!(
        "{{\"kernel\":\"{name}\",\"m\":{m},\"k\":{k},\"n\":{n},\"ms\":{:.3},\"gflops\":{gflops:.1},\"max_err\":{max_err:e}}}",
        best * 1e3
    );
    Ok(())
}

/// `model.attention` as `BENCH_ATTENTION` gives it ("auto" without it).
fn attention() -> anyhow::Result<soundsentry::model::Attention> {
    std::env::var("BENCH_ATTENTION")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .map_err(anyhow::Error::msg)
}

/// A file of little-endian f32 values.
fn read_f32(path: &str) -> anyhow::Result<Vec<f32>> {
    Ok(std::fs::read(path)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

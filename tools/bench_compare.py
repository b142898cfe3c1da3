#!/usr/bin/env python3
"""The comparison harness behind tools/bench-compare: ours against the runtimes a user would
pick instead (onnxruntime plain and with its transformer optimizer, OpenVINO, TFLite/XNNPACK
for BirdNET; tools/bench_peers.py) and kaldi-native-fbank, measured in one run on this
machine, with this CPU's peak (examples/peak.rs) and the share of it each model reaches.

Prints a table of ratios (ours / reference), writes it to bench-out/figures.md, and ends
with one JSON line of the figures. Run through tools/bench-compare, which installs the
Python requirements, builds the release probe and the binary, and exports the models.

Each peer runs in a process of its own (bench_peers.py), so each peak RSS is its own.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("OUT", "bench-out"))
PROBE = os.environ.get("PROBE", "target/release/examples/bench_probe")
BIN = os.environ.get("BIN", "target/release/soundsentry")
PEAK = os.environ.get("PEAK", "target/release/examples/peak")
BIRDNET = Path(os.environ.get("BIRDNET", str(OUT / "birdnet")))


def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_json(cmd, env=None):
    r = subprocess.run(cmd, check=True, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    return json.loads(r.stdout.strip().splitlines()[-1])


def host_isa():
    """The instruction set our kernels are picked from here, as the probe reports it."""
    return run_json([PROBE, "model", "models/sitehome-tiny-ast", "1", "1"])["isa"]


def avx2_rows(rows, figures, models, iters, rounds):
    """On a host with AVX-512: ours again with the kernels of a CPU without it
    (SOUNDSENTRY_KERNELS=avx2), int8 against fp32 in turn. No onnxruntime ratio: its kernels
    follow CPUID and cannot be narrowed, so it would run AVX-512 code against our AVX2 code."""
    env = {"SOUNDSENTRY_KERNELS": "avx2"}
    dirs = dict(models)
    for arch in ("default", "ast", "beats"):
        fp32, int8 = dirs.get(f"{arch}_fp32"), dirs.get(f"{arch}_int8")
        if not (fp32 and int8):
            continue
        t32, t8 = [], []
        for _ in range(rounds):
            t32.append(run_json([PROBE, "model", fp32, str(iters), "1"], env)["ms_median"])
            t8.append(run_json([PROBE, "model", int8, str(iters), "1"], env)["ms_median"])
        r = min(t8) / min(t32)
        figures[f"{arch}_int8_vs_fp32_avx2"] = round(r, 3)
        rows.append((f"{arch} int8 / fp32, ours with AVX2 kernels forced, 1 thread (ms: int8, fp32)",
                     min(t8), min(t32), r))


def fbank_rows(rows, figures):
    import kaldi_native_fbank as knf
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(60 * 16000)).astype(np.float32)
    x.tofile(OUT / "noise60.f32")
    best = 1e9
    for _ in range(5):
        o = knf.FbankOptions()
        o.frame_opts.dither = 0.0
        o.frame_opts.samp_freq = 16000
        o.frame_opts.window_type = "povey"
        o.mel_opts.num_bins = 80
        fb = knf.OnlineFbank(o)
        xs = (x * 32768).tolist()  # conversion kept out of the timing
        # Timed: the computation only (accept_waveform computes every ready frame);
        # reading frames back through Python would add per-frame call overhead.
        t = time.perf_counter()
        fb.accept_waveform(16000, xs)
        fb.input_finished()
        best = min(best, time.perf_counter() - t)
        assert fb.num_frames_ready == 1 + (len(x) - 400) // 160
    k80 = fb.num_frames_ready / best
    o80 = run_json([PROBE, "fbank", str(OUT / "noise60.f32"), "80", "5"])["frames_per_s"]
    o128 = run_json([PROBE, "fbank", str(OUT / "noise60.f32"), "128", "5"])["frames_per_s"]
    rows.append(("fbank 80 bins, frames/s (ratio: ours/knf, higher is better)", o80, k80, o80 / k80))
    rows.append(("fbank 128 bins, frames/s (knf refuses 128 bins)", o128, None, None))
    figures["fbank_vs_knf"] = round(o80 / k80, 3)


PEERS_PY = str(Path(__file__).with_name("bench_peers.py"))


def peer_json(peer, d, threads, iters):
    """One peer's median ms a window on folder d (its own process), or None where it fails."""
    r = run_json([sys.executable, PEERS_PY, peer, d, str(threads), str(iters)])
    if "error" in r:
        print(f"{peer} on {d}: {r['error']}", file=sys.stderr)
        return None
    return r


def model_rows(rows, figures, models, threads_list, iters, rounds, peers_of):
    """models: list of (key, folder). Ratios are ours/peer time (lower is better).

    All runtimes take turns, `rounds` times (ours, onnxruntime, the other peers, ours, ...):
    this host's speed drifts by 20-30 % over minutes, and one measurement of each side, taken
    one after the other, lets that drift into the ratio. Each side's time is its best round's
    median (the drift only ever adds time); its peak RSS is the largest of its rounds.
    `peers_of(key)` names the peers beside plain onnxruntime ("ort"); the fastest of all
    is `{key}_best` and ours against it `{key}_vs_best`."""
    for key, d in models:
        size_mb = (Path(d) / "model.onnx").stat().st_size / 2**20
        peers = peers_of(key)
        if "ort-opt" in peers:
            r = run_json([sys.executable, PEERS_PY, "prepare", d])
            figures[f"{key}_ort_opt_fused"] = r.get("fused", r.get("error"))
        for th in threads_list:
            ours_runs, peer_runs = [], {p: [] for p in peers}
            for _ in range(rounds):
                ours_runs.append(run_json([PROBE, "model", d, str(iters), str(th)]))
                for p in peers:
                    r = peer_json(p, d, th, iters)
                    if r:
                        peer_runs[p].append(r)
            ours_t = min(r["ms_median"] for r in ours_runs)
            best = {p: min(r["ms_median"] for r in rs) for p, rs in peer_runs.items() if rs}
            suffix = "" if th == 1 else f"_{th}t"
            plural = "s" if th > 1 else ""
            for p, t in best.items():
                name = "onnxruntime" if p == "ort" else p
                rows.append((f"{key}, {th} thread{plural}, ms/window vs {name}", ours_t, t, ours_t / t))
                figures[f"{key}_vs_{p.replace('-', '_')}{suffix}"] = round(ours_t / t, 3)
            for p in peers:
                if p not in best:
                    rows.append((f"{key}, {th} thread{plural}: {p} cannot run it", ours_t, None, None))
            if best:
                fastest = min(best, key=best.get)
                figures[f"{key}_best{suffix}"] = fastest
                figures[f"{key}_vs_best{suffix}"] = round(ours_t / best[fastest], 3)
            figures[f"{key}_ms{suffix}"] = round(ours_t, 2)
            if th == 1 and "ort" in peer_runs and peer_runs["ort"]:
                ours_rss = max(r["peak_rss_mb"] for r in ours_runs)
                ort_rss = max(r["peak_rss_mb"] for r in peer_runs["ort"])
                rows.append((f"{key}, peak RSS MB (file {size_mb:.0f} MB) vs onnxruntime", ours_rss,
                             ort_rss, ours_rss / ort_rss))
                figures[f"{key}_rss_over_file"] = round(ours_rss / size_mb, 3)
    # int8 / fp32 (ours): the two in turn (fp32, int8, fp32, ...), `rounds` times, each its
    # best round's median. The rows above are minutes apart, and this host's drift between
    # them went into the ratio whole.
    dirs = dict(models)
    for arch in ("ast", "beats"):
        fp32, int8 = dirs.get(f"{arch}_fp32"), dirs.get(f"{arch}_int8")
        if fp32 and int8:
            t32, t8 = [], []
            for _ in range(rounds):
                t32.append(run_json([PROBE, "model", fp32, str(iters), "1"])["ms_median"])
                t8.append(run_json([PROBE, "model", int8, str(iters), "1"])["ms_median"])
            r = min(t8) / min(t32)
            figures[f"{arch}_int8_vs_fp32"] = round(r, 3)
            rows.append((f"{arch} int8 / fp32, ours, 1 thread, in turn (ms: int8, fp32)",
                         min(t8), min(t32), r))


def window_rows(rows, figures, full_dir, short_dirs, iters):
    """Shorter AST windows (sliced position embeddings): cost, and score drift against the
    1024-frame model on the same features (the full model sees them padded, as we pad)."""
    import onnxruntime as ort
    full = ort.InferenceSession(f"{full_dir}/model.onnx", providers=["CPUExecutionProvider"])
    full_ms = run_json([PROBE, "model", full_dir, str(iters), "1"])["ms_median"]
    mean, std = -4.2677393, 4.5689974
    rng = np.random.default_rng(3)
    for frames, d in short_dirs:
        ms = run_json([PROBE, "model", d, str(iters), "1"])["ms_median"]
        short = ort.InferenceSession(f"{d}/model.onnx", providers=["CPUExecutionProvider"])
        drift = 0.0
        for _ in range(3):
            x = (rng.standard_normal((1, frames, 128)) * 0.5).astype(np.float32)
            padded = np.full((1, 1024, 128), (0.0 - mean) / (2 * std), dtype=np.float32)
            padded[:, :frames] = x
            sig = lambda z: 1 / (1 + np.exp(-z))
            a = sig(short.run(None, {"features": x})[0])
            b = sig(full.run(None, {"features": padded})[0])
            drift = max(drift, float(np.abs(a - b).max()))
        rows.append((f"ast_fp32 {frames} frames, ours ms/window (ref: ours at 1024)", ms, full_ms, ms / full_ms))
        rows.append((f"ast_fp32 {frames} frames, max score drift vs 1024 (sigmoid)", drift, None, None))
        figures[f"ast_{frames}_vs_1024"] = round(ms / full_ms, 3)
        figures[f"ast_{frames}_drift"] = round(drift, 4)


def realtime_rows(rows, figures, model_dir, threads, seconds):
    """End to end: `soundsentry run` on a long file (10 minutes by default) at hop 1 s,
    as fast as possible; audio seconds per wall second >= 1 means a live daemon keeps up."""
    wav = OUT / f"long-{seconds}s.wav"
    if not wav.exists():
        rng = np.random.default_rng(1)
        n = seconds * 16000
        t = np.arange(n) / 16000
        x = 0.05 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * 440 * t) * ((t % 20) < 5)
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    cfg = OUT / "long.toml"
    cfg.write_text(f'[model]\npath = "{Path(model_dir).resolve()}"\nthreads = {threads}\n'
                   f'[source]\npath = "{wav.resolve()}"\n[analysis]\nhop = "1s"\n')
    r = subprocess.run([BIN, "run", "--config", str(cfg)], capture_output=True, text=True, check=True)
    m = re.search(r'audio_s="([\d.]+)" wall_s="([\d.]+)".*windows_total=(\d+)', r.stderr)
    audio_s, wall_s, windows = float(m.group(1)), float(m.group(2)), int(m.group(3))
    rows.append((f"run, {seconds} s file, hop 1 s, {Path(model_dir).name}, {threads} threads: audio s / wall s",
                 audio_s / wall_s, None, None))
    figures["realtime_factor"] = round(audio_s / wall_s, 2)
    figures["windows_scored"] = windows


BEGIN, END = "<!-- bench-compare:latest -->", "<!-- /bench-compare:latest -->"


def peak_rows(rows, figures, models, threads):
    """This CPU's peak (examples/peak.rs: f32 FMA, int8 dot products, memory bandwidth) and,
    per model, the share of it our run reaches: the graph's multiply-adds a window
    (bench_peers.py flops) over our time, against the f32 peak (the int8 peak for an int8
    model, whose matrix products are int8)."""
    peak = run_json([PEAK, str(threads)])
    for k in ("f32_gflops", "int8_gops", "mem_gbs"):
        for t in ("1t", "nt"):
            figures[f"peak_{k}_{t}"] = round(peak[f"{k}_{t}"], 1)
    rows.append((f"peak f32 GFLOP/s, 1 / {threads} threads ({peak['isa']})",
                 peak["f32_gflops_1t"], peak["f32_gflops_nt"], None))
    rows.append((f"peak int8 GOP/s, 1 / {threads} threads", peak["int8_gops_1t"], peak["int8_gops_nt"], None))
    rows.append((f"memory read GB/s, 1 / {threads} threads", peak["mem_gbs_1t"], peak["mem_gbs_nt"], None))
    for key, d in models:
        ms = figures.get(f"{key}_ms")
        if ms is None:
            continue
        gflop = run_json([sys.executable, PEERS_PY, "flops", d])["gflop"]
        unit = "int8_gops" if "int8" in key else "f32_gflops"
        for t, suffix in (("1t", ""), ("nt", f"_{threads}t")):
            ms_t = figures.get(f"{key}_ms{suffix}")
            if ms_t is None:
                continue
            share = gflop / (ms_t / 1000) / peak[f"{unit}_{t}"]
            figures[f"{key}_peak_share{suffix}"] = round(share, 3)
            rows.append((f"{key}, {gflop:.1f} GFLOP a window, {t}: GFLOP/s ours (share of {unit} peak)",
                         gflop / (ms_t / 1000), None, share))


def write_latest(block):
    """Replaces the marked 'latest run' section of BENCHMARKS.md with this run's table."""
    path = Path("BENCHMARKS.md")
    text = path.read_text()
    if BEGIN not in text or END not in text:
        print(f"BENCHMARKS.md has no {BEGIN} section; table left in {OUT / 'figures.md'}")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + block + END + tail)


def main():
    quick = "--quick" in sys.argv
    seconds = 600
    if "--e2e-seconds" in sys.argv:
        seconds = int(sys.argv[sys.argv.index("--e2e-seconds") + 1])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    rows, figures = [], {}
    # --only KEY: that model's rows (and the peak) alone, e.g. `--only birdnet_fp32` after a
    # change that concerns one model; like --quick, BENCHMARKS.md is left as it is.
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if not only:
        fbank_rows(rows, figures)
    models = [("tiny_ast_fp32", "tests/fixtures/models/tiny-ast"),
              ("tiny_beats_fp32", "tests/fixtures/models/tiny-beats"),
              ("default_fp32", "models/sitehome-tiny-ast"),
              ("default_int8", "models/sitehome-tiny-ast-int8")]
    if not quick:
        models += [("ast_fp32", str(OUT / "ast-full")), ("ast_int8", str(OUT / "ast-full-int8")),
                   ("beats_fp32", str(OUT / "beats-full")), ("beats_int8", str(OUT / "beats-full-int8"))]
    rounds = 1 if quick else 2
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    figures["rounds"] = rounds
    if (BIRDNET / "model.onnx").exists():
        models.append(("birdnet_fp32", str(BIRDNET)))
    else:
        print(f"no BirdNET at {BIRDNET} (tools/import-birdnet makes one): its rows are left out",
              file=sys.stderr)

    def peers_of(key):
        if key.startswith("tiny_"):
            return ["ort"]
        if key.startswith("birdnet"):
            return ["ort", "openvino", "tflite"]
        return ["ort", "ort-opt", "openvino"]

    if only:
        models = [m for m in models if m[0] == only]
        if not models:
            sys.exit(f"--only {only}: no such model here")
    threads_list = [1] if quick else [1, 2]
    model_rows(rows, figures, models, threads_list, 3 if not quick else 5, rounds, peers_of)
    peak_rows(rows, figures, [m for m in models if not m[0].startswith("tiny_")],
              max(threads_list))
    if not quick and not only:
        window_rows(rows, figures, str(OUT / "ast-full"),
                    [(512, str(OUT / "ast-full-512")), (256, str(OUT / "ast-full-256"))], 3)
    isa = host_isa()
    figures["isa"] = isa
    if "avx512f" in isa.split(",") and not only:
        avx2_rows(rows, figures, models, 3 if not quick else 5, rounds)
    if not only:
        realtime_rows(rows, figures,
                      "models/sitehome-tiny-ast" if quick else str(OUT / "ast-full-int8"),
                      1 if quick else 2, 60 if quick else seconds)

    def fmt(v):
        return "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")

    cmd = " ".join(["tools/bench-compare"] + sys.argv[1:])
    lines = [f"Machine: `{cpu}`, {os.cpu_count()} cores, kernels from `{isa}`. Command: `{cmd}`.",
             "", "| what | ours | reference | ours / reference |", "|---|---:|---:|---:|"]
    lines += [f"| {w} | {fmt(a)} | {fmt(b)} | {fmt(r)} |" for w, a, b, r in rows]
    table = "\n".join(lines)
    block = table + "\n\n```json\n" + json.dumps(figures) + "\n```\n"
    (OUT / "figures.md").write_text(block)
    if quick or only:
        # A quick or one-model run has not every row: the latest full run's table stays.
        print(f"partial run: table in {OUT / 'figures.md'}; BENCHMARKS.md left as it is")
    else:
        write_latest(f"Measured {time.strftime('%Y-%m-%d')}. " + block)
    print(table)
    print(json.dumps({"cpu": cpu, **figures}))


if __name__ == "__main__":
    main()

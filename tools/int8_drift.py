#!/usr/bin/env python3
"""Score drift of an int8 model against its fp32 original on synthesised held-out clips.

    python tools/int8_drift.py models/sitehome-tiny-ast models/sitehome-tiny-ast-int8

Makes --count clips with tools/synth.py (seed --seed, the default model's held-out seed),
computes the daemon's features (train_default.features), runs both ONNX files with
onnxruntime (tract matches onnxruntime within 1e-6 on these graphs, tests/model_parity.rs)
and prints the largest and the 99th-percentile |difference| of sigmoid scores over all
clips and labels, and whether the 0.5 decisions agree.

With --requantize, the int8 argument is ignored and the fp32 model is quantised here first
(onnxruntime `quantize_dynamic`, as the export tools do), optionally per channel or with the
MatMul/Conv nodes whose names contain an --exclude string left in fp32: the variants that
BENCHMARKS.md compares.

With --tract PROBE (the built `bench_probe` example), the int8 model's scores come from
soundsentry's runtime instead (`bench_probe scores`), its attention as `BENCH_ATTENTION` in
the environment says ("auto", the default: bfloat16 products where the CPU has AVX-512 BF16;
"f32"): the drift the daemon itself shows.
"""

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

import train_default as td


def scores(folder, x):
    path = Path(folder)
    path = path if path.suffix == ".onnx" else path / "model.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run(None, {"features": x[i:i + 1]})[0] for i in range(len(x))])
    return 1 / (1 + np.exp(-out))


def tract_scores(probe, folder, x):
    """Sigmoid scores of a model folder through soundsentry's runtime (`bench_probe scores`)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.f32", Path(tmp) / "out.f32"
        np.ascontiguousarray(x, dtype="<f4").tofile(src)
        subprocess.run([probe, "scores", str(folder), str(src), str(dst)], check=True)
        out = np.fromfile(dst, dtype="<f4").reshape(len(x), -1)
    return 1 / (1 + np.exp(-out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fp32")
    p.add_argument("int8")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--requantize", action="store_true")
    p.add_argument("--per-channel", action="store_true")
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--tract", metavar="PROBE", help="score the int8 model with this bench_probe")
    args = p.parse_args()
    x, _ = td.dataset(args.seed, args.count)
    int8 = args.int8
    if args.requantize:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        fp32 = Path(args.fp32) / "model.onnx"
        names = [n.name for n in onnx.load(str(fp32)).graph.node
                 if n.op_type in ("MatMul", "Conv", "Gemm")]
        excluded = [n for n in names if any(e in n for e in args.exclude)]
        int8 = Path(tempfile.mkdtemp()) / "model.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8,
                         per_channel=args.per_channel, nodes_to_exclude=excluded,
                         extra_options={"MatMulConstBOnly": True})
    if args.tract and args.requantize:
        p.error("--tract scores a model folder: not with --requantize")
    a = scores(args.fp32, x)
    b = tract_scores(args.tract, int8, x) if args.tract else scores(int8, x)
    d = np.abs(a - b)
    res = {"clips": args.count, "max_abs_diff": float(d.max()),
           "p99_abs_diff": float(np.quantile(d, 0.99)),
           "decisions_differ": int(np.sum((a >= 0.5) != (b >= 0.5)))}
    print(json.dumps(res))


if __name__ == "__main__":
    main()

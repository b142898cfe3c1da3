"""Shared steps of the model exporters: ONNX export, onnxruntime-vs-PyTorch check,
optional int8 quantisation, and the model folder (model.toml, labels.csv)."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

PARITY = 1e-4


def write_labels(path, labels):
    """labels.csv in AudioSet's class_labels_indices.csv form: index,mid,display_name."""
    lines = ["index,mid,display_name"]
    for i, (mid, name) in enumerate(labels):
        q = '"' + name.replace('"', '""') + '"'
        lines.append(f"{i},{mid},{q}")
    Path(path).write_text("\n".join(lines) + "\n")


def write_manifest(folder, *, name, description, fbank, normalize, window_frames, output,
                   num_labels, quantized, dynamic_frames, sample_rate=16000, mel_bins=128,
                   notice=None, frame_multiple=None, thresholds=None, embedding_size=None):
    """model.toml: everything the pipeline needs to feed the model (see README). With
    embedding_size, the graph's second output `embedding` is named with its size."""
    multiple = ("# with dynamic_frames: the frames fed are a multiple of this (whole patches).\n"
                f"frame_multiple = {frame_multiple}\n") if frame_multiple else ""
    padding = ("# normalised = (log_mel - mean) / (std_factor * std). A window shorter than\n"
               "# window_frames is fed as it is (only one shorter than frame_multiple is padded,\n"
               "# with zeros in log-mel units, before normalisation)."
               if dynamic_frames else
               "# normalised = (log_mel - mean) / (std_factor * std); padding (zeros, at the end, in\n"
               "# log-mel units) happens before normalisation when a window is shorter than window_frames.")
    embedding = ("# The output `soundsentry embed` and `train-head` read: the representation the\n"
                 "# classifier sees (AST: the pooled tokens; BEATs: the encoder's mean over time).\n"
                 f'embedding = "embedding"\nembedding_size = {embedding_size}\n') if embedding_size else ""
    toml = f'''# Model manifest written by the soundsentry export tools.
name = "{name}"
description = "{description}"
onnx = "model.onnx"
labels = "labels.csv"
input = "fbank"
sample_rate = {sample_rate}
window_frames = {window_frames}
# true when the ONNX graph accepts any number of frames (BEATs); false for a fixed input (AST).
dynamic_frames = {str(dynamic_frames).lower()}
{multiple}# "sigmoid": the model outputs logits; "none": it already outputs probabilities.
output = "{output}"
num_labels = {num_labels}
quantized = {str(quantized).lower()}
{embedding}
[fbank]
window = "{fbank['window']}"
waveform_scale = {fbank['waveform_scale']:.1f}
mel_bins = {mel_bins}
frame_length_ms = 25.0
frame_shift_ms = 10.0

{padding}
[normalize]
mean = {normalize['mean']!r}
std = {normalize['std']!r}
std_factor = 2.0
'''
    if thresholds:
        toml += ("\n# The model's own `on` score per label, chosen where it was trained; a config that\n"
                 "# sets no `on` for a label uses it (README, *Detection*).\n[thresholds]\n")
        toml += "".join(f'"{k}" = {v}\n' for k, v in thresholds.items())
    (Path(folder) / "model.toml").write_text(toml)
    if notice:
        (Path(folder) / "NOTICE").write_text(notice)


def export_onnx(module, example, path, dynamic_frames, opset=17):
    """Plain TorchScript-based export (the dynamo exporter's Attention op fails in tract).
    The module returns (scores, embedding): the graph's outputs `scores` (first, what the
    daemon scores) and `embedding`, both (1, n)."""
    dyn = {"features": {1: "frames"}} if dynamic_frames else None
    torch.onnx.export(module, (example,), str(path), input_names=["features"],
                      output_names=["scores", "embedding"], opset_version=opset,
                      dynamic_axes=dyn, do_constant_folding=True, dynamo=False)


def check_parity(module, path, inputs):
    """Runs onnxruntime and PyTorch on the same inputs, both outputs; refuses a disagreeing
    model. Returns onnxruntime's scores."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    outs = []
    for x in inputs:
        with torch.no_grad():
            ref = [t.numpy() for t in module(torch.from_numpy(x))]
        got = sess.run(["scores", "embedding"], {"features": x})
        worst = max(worst, *(float(np.abs(r - g).max()) for r, g in zip(ref, got)))
        outs.append(got[0])
    if worst > PARITY:
        Path(path).unlink()
        raise SystemExit(f"{path}: onnxruntime differs from PyTorch by {worst:.2e} > {PARITY}; "
                         "model not written")
    print(f"{path}: onnxruntime vs PyTorch max |diff| = {worst:.2e}")
    return outs


# Products left in fp32 by --int8 unless told otherwise: the patch embedding and the first
# transformer layer. On the default model's held-out clips they take the int8 model's largest
# score difference from fp32 from 0.023 to 0.013 (BENCHMARKS.md); a full-size model keeps
# about a twelfth of its products in fp32.
KEEP_FP32 = ("patch_embedding", "layers.0/")


def quantize(fp32_path, out_folder, attention=False, keep_fp32=KEEP_FP32):
    """onnxruntime dynamic int8 quantisation of the MatMul and Conv weights, except the
    products whose node names contain a `keep_fp32` string; with `attention`, the attention
    products (both operands computed at run time) are quantised too."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    out_folder.mkdir(parents=True, exist_ok=True)
    q = out_folder / "model.onnx"
    nodes = onnx.load(str(fp32_path), load_external_data=False).graph.node
    excluded = [n.name for n in nodes if n.op_type in ("MatMul", "Conv", "Gemm")
                and any(k in n.name for k in keep_fp32)]
    quantize_dynamic(str(fp32_path), str(q), weight_type=QuantType.QInt8,
                     nodes_to_exclude=excluded,
                     extra_options={"MatMulConstBOnly": not attention})
    return q


def int8_description(description, keep_fp32=KEEP_FP32):
    """The int8 folder's model.toml description: which products stayed fp32."""
    if not keep_fp32:
        return description + ", int8"
    return description + ", int8 (fp32: " + ", ".join(keep_fp32) + ")"


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["scores"], {"features": x})[0]


def save_fixture(folder, x, y):
    """The input and onnxruntime's output, for the tract parity test."""
    np.save(Path(folder) / "input.npy", x.astype(np.float32))
    np.save(Path(folder) / "expected.npy", y.astype(np.float32))


def write_model_folders(out, *, name, description, labels, inputs, outputs, int8, fixture,
                        int8_attention=False, int8_keep_fp32=KEEP_FP32, **manifest):
    """The fp32 folder (manifest, labels, optional fixture) and, with int8, <out>-int8 beside it."""
    import shutil
    write_manifest(out, name=name, description=description, quantized=False,
                   num_labels=len(labels), **manifest)
    write_labels(out / "labels.csv", labels)
    if fixture:
        save_fixture(out, inputs[0], outputs[0])
    if int8:
        qdir = out.parent / f"{out.name}-int8"
        q = quantize(out / "model.onnx", qdir, attention=int8_attention,
                     keep_fp32=int8_keep_fp32)
        write_manifest(qdir, name=f"{name}-int8",
                       description=int8_description(description, int8_keep_fp32),
                       quantized=True, num_labels=len(labels), **manifest)
        shutil.copy(out / "labels.csv", qdir / "labels.csv")
        y = ort_run(q, inputs[0])
        print(f"{q}: int8 vs fp32 max |output diff| = {np.abs(y - outputs[0]).max():.3e}")
        if fixture:
            save_fixture(qdir, inputs[0], y)


def generic_labels(n):
    return [(f"/t/{i:03d}", f"Label {i:03d}") for i in range(n)]


def dump_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=1) + "\n")

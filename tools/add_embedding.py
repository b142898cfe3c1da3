#!/usr/bin/env python3
"""Gives a model folder exported before embeddings were its `embedding` output, without
touching anything else: the graph's existing tensor that the classifier reads becomes a
second output, and model.toml names it.

    python tools/add_embedding.py models/sitehome-tiny-ast [models/sitehome-tiny-ast-int8 ...]

AST (tools/export_ast.py, transformers' ASTForAudioClassification): the pooled tokens, the
input of the classifier's layer norm. BEATs (tools/export_beats.py): the predictor's input
averaged over time (one ReduceMean added), what export_beats.py now exports. The scores are
checked bit for bit against the folder's file before it is replaced (onnxruntime, fp32 and
int8 files alike); a graph in which neither tensor is found is refused and left as it was.
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper


def embedding_tensor(graph):
    """(name of the tensor to output, nodes to add) or None."""
    for n in graph.node:
        if n.op_type == "LayerNormalization" and n.name.endswith("classifier/layernorm/LayerNormalization"):
            return n.input[0], []
    producer = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        if n.op_type in ("MatMul", "MatMulInteger") and n.name.startswith("/predictor/"):
            src = n.input[0]
            before = producer.get(src)
            if before is not None and before.op_type == "DynamicQuantizeLinear":
                src = before.input[0]  # an int8 file: the float tensor that was quantised
            mean = helper.make_node("ReduceMean", [src], ["embedding_mean"], axes=[1], keepdims=0,
                                    name="/embedding/ReduceMean")
            return "embedding_mean", [mean]
    return None


def run(path, x, names):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(names, {"features": x})


def add(folder):
    toml = folder / "model.toml"
    text = toml.read_text()
    if re.search(r"^embedding\s*=", text, re.M):
        print(f"{folder}: has an embedding already")
        return
    onnx_path = folder / (re.search(r'^onnx\s*=\s*"([^"]+)"', text, re.M).group(1))
    model = onnx.load(str(onnx_path))
    found = embedding_tensor(model.graph)
    if found is None:
        raise SystemExit(f"{onnx_path}: no classifier layer norm (AST) or predictor (BEATs) found")
    tensor, extra = found
    model.graph.node.extend(extra)
    model.graph.node.append(helper.make_node("Identity", [tensor], ["embedding"], name="/embedding/Identity"))
    model.graph.output.append(helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, None))
    frames = int(re.search(r"^window_frames\s*=\s*(\d+)", text, re.M).group(1))
    bins = int(re.search(r"^mel_bins\s*=\s*(\d+)", text, re.M).group(1))
    x = np.random.default_rng(0).standard_normal((1, frames, bins)).astype(np.float32) * 0.5
    tmp = onnx_path.with_suffix(".onnx.new")
    onnx.save(model, str(tmp))
    before = run(onnx_path, x, ["scores"])[0]
    after, emb = run(tmp, x, ["scores", "embedding"])
    if not np.array_equal(before, after) or emb.ndim != 2 or emb.shape[0] != 1:
        tmp.unlink()
        raise SystemExit(f"{onnx_path}: scores changed or the embedding is not (1, n); left as it was")
    tmp.replace(onnx_path)
    size = emb.shape[1]
    note = ("# The output `soundsentry embed` and `train-head` read: the representation the\n"
            "# classifier sees (AST: the pooled tokens; BEATs: the encoder's mean over time).\n"
            f'embedding = "embedding"\nembedding_size = {size}\n')
    text = re.sub(r"^(quantized\s*=.*\n)", lambda m: m.group(1) + note, text, count=1, flags=re.M)
    toml.write_text(text)
    print(f"{folder}: embedding output of {size} values added, scores unchanged bit for bit")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path)
    for folder in p.parse_args().folders:
        add(folder)


if __name__ == "__main__":
    sys.exit(main())

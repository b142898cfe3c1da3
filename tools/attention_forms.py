#!/usr/bin/env python3
"""Exports one AST-sized attention block (12 heads, 1214 tokens, head dim 64) in several
ONNX graph forms, to find the one tract runs fastest. Prints tract and onnxruntime ms/run.

Usage: python tools/attention_forms.py [OUT_DIR]   (needs target/release/examples/bench_probe)
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

H, N, D = 12, 1214, 64


class Eager(torch.nn.Module):
    """transformers' eager attention: softmax(Q K^T * s) V with K transposed in the graph."""

    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-1, -2)) * (D ** -0.5)
        return torch.matmul(torch.softmax(s, dim=-1), v)


class PreScaled(torch.nn.Module):
    """Scale folded into Q, K^T from a reshape of the [N, H*D] projection layout."""

    def forward(self, q, k, v):
        s = torch.matmul(q * (D ** -0.5), k.transpose(-1, -2))
        return torch.matmul(torch.softmax(s, dim=-1), v)


class Sdpa(torch.nn.Module):
    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


class Einsum(torch.nn.Module):
    def forward(self, q, k, v):
        s = torch.einsum("bhqd,bhkd->bhqk", q, k) * (D ** -0.5)
        return torch.einsum("bhqk,bhkd->bhqd", torch.softmax(s, dim=-1), v)


class QkOnly(torch.nn.Module):
    """The first product alone: Q K^T."""

    def forward(self, q, k, v):
        return torch.matmul(q, k.transpose(-1, -2))


class QkPreTransposed(torch.nn.Module):
    """Q K^T where K^T comes in as its own input layout (no Transpose in the graph)."""

    def forward(self, q, k, v):
        return torch.matmul(q, k.reshape(1, H, D, N))


class SoftmaxOnly(torch.nn.Module):
    def forward(self, q, k, v):
        return torch.softmax(q.reshape(1, H, N, D).repeat(1, 1, 1, 19)[..., :N], dim=-1)


class AvOnly(torch.nn.Module):
    """The second product alone: P V, with P (N x N) made cheaply from Q."""

    def forward(self, q, k, v):
        p = q.repeat(1, 1, 1, 19)[..., :N]
        return torch.matmul(p, v)


class PlainMatmul(torch.nn.Module):
    """Reference: one dense [N, H*D] x [H*D, H*D] product with the same FLOPs budget."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(H * D, H * D) * 0.02)

    def forward(self, q, k, v):
        x = q.transpose(1, 2).reshape(1, N, H * D)
        return torch.matmul(x, self.w)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out/attention")
    out.mkdir(parents=True, exist_ok=True)
    x = [torch.randn(1, H, N, D) for _ in range(3)]
    rows = []
    for name, m in [("eager", Eager()), ("prescaled", PreScaled()), ("sdpa", Sdpa()),
                    ("einsum", Einsum()), ("qk_only", QkOnly()), ("qk_pretransposed", QkPreTransposed()),
                    ("softmax_only", SoftmaxOnly()), ("av_only", AvOnly()),
                    ("dense_768x768", PlainMatmul())]:
        path = out / f"{name}.onnx"
        torch.onnx.export(m.eval(), tuple(x), str(path), input_names=["q", "k", "v"],
                          opset_version=17, dynamo=False)
        tr = json.loads(subprocess.run(["target/release/examples/bench_probe", "onnx", str(path), "5"],
                                       check=True, capture_output=True, text=True).stdout)["ms_median"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {n: a.numpy() for n, a in zip(["q", "k", "v"], x) if n in [i.name for i in sess.get_inputs()]}
        sess.run(None, feed)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            sess.run(None, feed)
            ts.append((time.perf_counter() - t) * 1000)
        rows.append((name, tr, sorted(ts)[2]))
    flops = 2 * 2 * H * N * N * D
    print(f"attention FLOPs per block: {flops / 1e9:.2f} GFLOP")
    for name, tr, o in rows:
        print(f"{name:16} tract {tr:8.1f} ms   onnxruntime {o:8.1f} ms   ratio {tr / o:5.2f}")


if __name__ == "__main__":
    main()

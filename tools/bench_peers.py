#!/usr/bin/env python3
"""The runtimes a user would pick instead of soundsentry, timed on one model window each.

`bench_peers.py PEER MODEL_DIR THREADS ITERS` prints one JSON line: the median ms a window,
the peak RSS (this process alone), and what the peer did (fused operators, provider), or
`{"error": ...}` where the peer cannot run the model. Peers:
  ort       onnxruntime, CPU provider, the model file as it is;
  ort-opt   onnxruntime after `onnxruntime.transformers.optimizer` (fused attention, layer
            norm, GELU); for an int8 folder the fp32 sibling is optimised, then quantised
            with `quantize_dynamic` (the order onnxruntime documents);
  openvino  OpenVINO's CPU plugin on the model file (latency hint, THREADS threads);
  tflite    LiteRT (ai-edge-litert) with XNNPACK on the folder's `source.tflite` (BirdNET).
Also `bench_peers.py flops MODEL_DIR`: multiply-adds a window, counted from the ONNX graph
(MatMul, Gemm, Conv and their integer forms) with shapes inferred for the manifest's window.
"""

import json
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np


def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def window_shape(folder):
    m = tomllib.loads((Path(folder) / "model.toml").read_text())
    if m["input"] == "waveform":
        return [1, m["waveform"]["window_samples"]]
    return [1, m["window_frames"], m["fbank"]["mel_bins"]]


def timed(run, iters):
    run()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        ts.append((time.perf_counter() - t) * 1000)
    return sorted(ts)[len(ts) // 2]


def ort_session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def cache(folder):
    """Where a folder's derived graphs are kept: bench-out/peers/<folder path>, never in the
    model folder itself."""
    rel = str(Path(folder).resolve()).strip("/").replace("/", "_")
    d = Path(os.environ.get("OUT", "bench-out")) / "peers" / rel
    d.mkdir(parents=True, exist_ok=True)
    return d


def optimised(folder):
    """The folder's model through onnxruntime's transformer optimizer (cached)."""
    from onnxruntime.transformers.optimizer import optimize_model

    folder = Path(folder)
    out = cache(folder) / "model.ort-opt.onnx"
    stats_path = cache(folder) / "model.ort-opt.json"
    if out.exists() and stats_path.exists():
        return out, json.loads(stats_path.read_text())
    quantized = tomllib.loads((folder / "model.toml").read_text()).get("quantized", False)
    source = folder / "model.onnx"
    if quantized:
        fp32 = Path(str(folder).removesuffix("-int8")) / "model.onnx"
        if fp32 == source or not fp32.exists():
            raise RuntimeError(f"no fp32 sibling of {folder} to optimise before quantising")
        source = fp32
    opt = optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0)
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = cache(folder) / "model.ort-opt-fp32.onnx"
        opt.save_model_to_file(str(tmp))
        try:
            quantize_dynamic(str(tmp), str(out), weight_type=QuantType.QInt8)
        except Exception as e:
            # The quantiser cannot type some fused operators: the int8 folder's own graph is
            # optimised instead (its fusions of layer norm and GELU still apply).
            stats = {"quantize_after_optimize": f"failed ({type(e).__name__}); optimised the int8 graph"}
            opt = optimize_model(str(folder / "model.onnx"), model_type="bert", num_heads=0,
                                 hidden_size=0)
            stats.update({k: v for k, v in opt.get_fused_operator_statistics().items() if v})
            opt.save_model_to_file(str(out))
        tmp.unlink()
    else:
        opt.save_model_to_file(str(out))
    stats_path.write_text(json.dumps(stats))
    return out, stats


def f64_dft(path):
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.DOUBLE
               for n in model.graph.node)


def f32_dft(path):
    """The graph with its casts to f64 around the DFT removed (cached)."""
    import onnx

    out = cache(path.parent) / "model.f32-dft.onnx"
    if out.exists():
        return out
    model = onnx.load(str(path))
    g = model.graph
    renames = {}
    keep = []
    for n in g.node:
        to = n.attribute[0].i if n.op_type == "Cast" and n.attribute else None
        if to == onnx.TensorProto.DOUBLE:
            renames[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    for n in keep:
        n.input[:] = [renames.get(i, i) for i in n.input]
    del g.node[:]
    g.node.extend(keep)
    onnx.save(model, str(out))
    return out


def run_peer(peer, folder, threads, iters):
    shape = window_shape(folder)
    x = np.full(shape, 0.1, dtype=np.float32)
    info = {}
    if peer in ("ort", "ort-opt"):
        path = Path(folder) / "model.onnx"
        if peer == "ort-opt":
            path, info["fused"] = optimised(folder)
        sess = ort_session(path, threads)
        name = sess.get_inputs()[0].name
        ms = timed(lambda: sess.run(None, {name: x}), iters)
    elif peer == "openvino":
        import openvino as ov

        core = ov.Core()
        path = Path(folder) / "model.onnx"
        if f64_dft(path):
            path = f32_dft(path)
            info["note"] = "its DFT in f32: OpenVINO has no f64 DFT"
        compiled = core.compile_model(
            str(path),
            "CPU",
            {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1},
        )
        request = compiled.create_infer_request()
        port = compiled.inputs[0]
        if port.get_partial_shape().is_dynamic:
            # A dynamic graph is reshaped to the window first.
            model = core.read_model(str(path))
            model.reshape({model.inputs[0].get_any_name(): shape})
            compiled = core.compile_model(
                model,
                "CPU",
                {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                 "NUM_STREAMS": 1},
            )
            request = compiled.create_infer_request()
        ms = timed(lambda: request.infer({0: x}), iters)
        info["precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    elif peer == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        path = Path(folder) / "source.tflite"
        if not path.exists():
            raise RuntimeError(f"no {path}")
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        index = it.get_input_details()[0]["index"]

        def run():
            it.set_tensor(index, x)
            it.invoke()

        ms = timed(run, iters)
        info["delegate"] = "XNNPACK"
    else:
        raise SystemExit(f"unknown peer {peer}")
    return {"ms_median": ms, "peak_rss_mb": peak_rss_mb(), **info}


def flops(folder):
    """Multiply-adds of one window (2 flops each): the graph run once by onnxruntime with the
    inputs and outputs of its MatMul, Gemm and Conv nodes (and integer forms) as outputs, so
    every shape is the real one."""
    import onnx
    import onnxruntime as ort

    path = Path(folder) / "model.onnx"
    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    counted = ("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul", "Conv", "ConvInteger",
               "QLinearConv")
    nodes = [n for n in g.node if n.op_type in counted]
    wanted = []
    for n in nodes:
        b = n.input[3] if n.op_type.startswith("QLinear") else n.input[1]
        for name in (n.input[0], b, n.output[0]):
            if name not in inits and name not in wanted:
                wanted.append(name)
    have = {o.name for o in g.output}
    for name in wanted:
        if name not in have:
            g.output.append(onnx.ValueInfoProto(name=name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.full(window_shape(folder), 0.1, dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {sess.get_inputs()[0].name: x})
    shapes = {**inits, **{n: list(v.shape) for n, v in zip(names, values)}}
    total = 0
    for n in nodes:
        t = n.op_type
        b = shapes[n.input[3] if t.startswith("QLinear") else n.input[1]]
        out = shapes[n.output[0]]
        if "Conv" in t:
            total += int(np.prod(out)) * int(np.prod(b[1:]))
        else:
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            k = b[-1] if trans_b else b[-2] if len(b) > 1 else b[0]
            total += int(np.prod(out)) * k
    return {"macs": total, "gflop": 2 * total / 1e9}


def main():
    if sys.argv[1] == "flops":
        print(json.dumps(flops(sys.argv[2])))
        return
    if sys.argv[1] == "prepare":
        # The optimised graph, made before any timing (its RSS is not the runs').
        try:
            print(json.dumps({"fused": optimised(sys.argv[2])[1]}))
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}))
        return
    peer, folder, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        print(json.dumps(run_peer(peer, folder, threads, iters)))
    except Exception as e:  # a peer that cannot run a model is a result, not a crash
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}))


if __name__ == "__main__":
    main()

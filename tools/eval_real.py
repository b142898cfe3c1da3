#!/usr/bin/env python3
"""Judges an exported model (a folder with model.toml, model.onnx, labels.csv) on real
recordings, as the daemon would score a file: the maximum over a clip's windows.

    python tools/eval_real.py --model models/sitehome-tiny-ast --real build/real-sounds
    python tools/eval_real.py --model OLD_MODEL --real build/real-sounds --on 0.4

Thresholds are the model's own (model.toml `[thresholds]`) unless --on gives one for every
label (what a config's `on` does). Prints, for the real held-out packages (`test`) and the
real validation clips (`val`): per-label AP and F1 at the threshold, and the share of
background clips (none of the labels real_mix knows) that raise some label. --json writes
the same figures. The ONNX file is run with onnxruntime, so what is judged is the file that
ships, not the training checkpoint.
"""

import argparse
import csv
import json
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort

import real_mix
from train_default import CLIP, average_precision, window_features


def load(model_dir):
    manifest = tomllib.loads((model_dir / "model.toml").read_text())
    with (model_dir / manifest.get("labels", "labels.csv")).open() as f:
        labels = [r["display_name"] for r in csv.DictReader(f)]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model_dir / manifest.get("onnx", "model.onnx")), opts,
                                providers=["CPUExecutionProvider"])
    return manifest, labels, sess


def scorer(sess, sigmoid):
    name = sess.get_inputs()[0].name

    def score(windows):
        x = window_features(windows)
        out = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
        return 1 / (1 + np.exp(-out)) if sigmoid else out
    return score


def judge(pool, scores, labels, thresholds):
    y_all = pool.targets()
    rows = {}
    for j, name in enumerate(labels):
        if name not in real_mix.NAMES:
            continue
        y = y_all[:, real_mix.NAMES.index(name)]
        if y.sum() == 0:
            continue
        pred = scores[:, j] >= thresholds[name]
        tp = float(np.sum(pred & (y == 1)))
        prec, rec = tp / max(float(pred.sum()), 1.0), tp / float(y.sum())
        rows[name] = {"ap": average_precision(y, scores[:, j]), "threshold": thresholds[name],
                      "f1": 2 * prec * rec / max(prec + rec, 1e-9), "positives": int(y.sum())}
    t = np.array([thresholds[n] for n in labels])
    hits = [i for i in pool.backgrounds if np.any(scores[i] >= t)]
    raised = {}
    for i in hits:
        for j in np.flatnonzero(scores[i] >= t):
            raised[labels[j]] = raised.get(labels[j], 0) + 1
    big = [r["ap"] for r in rows.values() if r["positives"] >= 10]
    return {"clips": len(pool.rows), "background_clips": len(pool.backgrounds),
            "false_trigger_clips": len(hits),
            "false_trigger_rate": len(hits) / max(len(pool.backgrounds), 1),
            "raised_on_background": dict(sorted(raised.items(), key=lambda kv: -kv[1])),
            "mean_ap_labels_10_plus": float(np.mean(big)) if big else float("nan"),
            "labels": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--real", type=Path, required=True, help="output folder of tools/real_sounds.py")
    p.add_argument("--on", type=float, help="one threshold for every label instead of the model's")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between a clip's windows")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    manifest, labels, sess = load(args.model)
    if args.on is not None:
        thresholds = {n: args.on for n in labels}
    else:
        given = manifest.get("thresholds", {})
        missing = [n for n in labels if n not in given]
        if missing:
            raise SystemExit(f"{args.model}/model.toml has no threshold for {missing}; give --on")
        thresholds = {n: float(given[n]) for n in labels}
    score = scorer(sess, manifest.get("output", "sigmoid") == "sigmoid")
    hop = int(args.hop * real_mix.SR)
    out = {"model": manifest.get("name", str(args.model)), "on": args.on}
    for split in ("test", "val"):
        pool = real_mix.RealPool(args.real, {split})
        res = judge(pool, real_mix.clip_scores(score, pool, CLIP, hop), labels, thresholds)
        out[split] = res
        print(f"{split}: {res['false_trigger_clips']} of {res['background_clips']} background clips "
              f"raise a label ({100 * res['false_trigger_rate']:.1f} %), most often "
              f"{list(res['raised_on_background'].items())[:5]}; mean AP (labels with >= 10 "
              f"positives) {res['mean_ap_labels_10_plus']:.3f}")
        for name, r in res["labels"].items():
            print(f"  {name:32s} AP {r['ap']:.3f}  F1 {r['f1']:.3f} at {r['threshold']:.2f}  "
                  f"({r['positives']} positives)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

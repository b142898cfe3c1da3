#!/usr/bin/env python3
"""Trains the default model: a small transformers.ASTForAudioClassification on synthesised
site and home sounds (tools/synth.py), on the CPU.

    python tools/train_default.py --out build/default-model
    python tools/export_ast.py --hf-id build/default-model/checkpoint \\
        --labels-csv build/default-model/labels.csv --int8 --name sitehome-tiny-ast \\
        --out models/sitehome-tiny-ast

Features are the daemon's own: Kaldi fbank (torchaudio.compliance.kaldi, the definition the
daemon's fbank matches), 128 mel bins, AST normalisation. Windows are 128 frames (1.28 s).
Multi-label BCE with SpecAugment-style masks. The held-out set comes from a different seed;
its per-label AP and F1 (at --threshold) go to OUT/metrics.json and OUT/metrics.md.
Same seed, same data and the same model (torch on the CPU is deterministic here).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from transformers import ASTConfig, ASTForAudioClassification

import synth

AST_MEAN, AST_STD = -4.2677393, 4.5689974
FRAMES = 128
CLIP = 400 + (FRAMES - 1) * 160  # samples giving exactly FRAMES fbank frames


def features_reference(x):
    """(CLIP,) float32 waveform -> (FRAMES, 128) normalised log-mel with torchaudio's Kaldi
    fbank: the definition the daemon's fbank matches (tests/fixtures/fbank)."""
    fb = torchaudio.compliance.kaldi.fbank(
        torch.from_numpy(x).unsqueeze(0), htk_compat=True, sample_frequency=16000,
        use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    return ((fb[:FRAMES] - AST_MEAN) / (2 * AST_STD)).numpy()


MEL = torch.nn.functional.pad(
    torchaudio.compliance.kaldi.get_mel_banks(128, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)[0],
    (0, 1))
HANN = torch.hann_window(400, periodic=False, dtype=torch.float64)


def features(batch):
    """The same computation as features_reference, for a batch (B, CLIP) at once (the
    reference is checked against it before training)."""
    x = torch.from_numpy(np.asarray(batch, dtype=np.float64))
    frames = x.unfold(1, 400, 160)[:, :FRAMES]
    frames = frames - frames.mean(dim=2, keepdim=True)
    prev = torch.cat([frames[:, :, :1], frames[:, :, :-1]], dim=2)
    frames = (frames - 0.97 * prev) * HANN
    power = torch.fft.rfft(frames, n=512).abs() ** 2
    mel = power @ MEL.T.to(torch.float64)
    logmel = torch.log(torch.clamp(mel, min=torch.finfo(torch.float32).eps))
    return ((logmel - AST_MEAN) / (2 * AST_STD)).float().numpy()


def dataset(seed, count):
    rng = np.random.default_rng(seed)
    pool = synth.SpeechPool(seed)
    xs = np.zeros((count, FRAMES, 128), dtype=np.float32)
    ys = np.zeros((count, len(synth.NAMES)), dtype=np.float32)
    block = []
    for i in range(count):
        audio, ys[i] = synth.training_clip(rng, CLIP, pool)
        block.append(audio)
        if len(block) == 256 or i == count - 1:
            xs[i + 1 - len(block):i + 1] = features(np.stack(block))
            block = []
    return xs, ys


def check_features(seed=9, count=8):
    """Batched features == torchaudio's, within float32 rounding, on real clips."""
    rng = np.random.default_rng(seed)
    pool = synth.SpeechPool(seed)
    clips = [synth.training_clip(rng, CLIP, pool)[0] for _ in range(count)]
    worst = float(np.abs(features(np.stack(clips)) - np.stack([features_reference(c) for c in clips])).max())
    if worst > 1e-3:
        raise SystemExit(f"batched fbank differs from torchaudio by {worst:.2e}")
    return worst


def spec_augment(x, gen):
    """Two frequency masks (<= 16 bins) and two time masks (<= 16 frames) per example."""
    b = x.shape[0]
    x = x.clone()
    for _ in range(2):
        for axis, size in ((2, 16), (1, 16)):
            w = torch.randint(0, size + 1, (b,), generator=gen)
            s = torch.randint(0, 128 - size, (b,), generator=gen)
            idx = torch.arange(x.shape[axis])
            m = (idx[None] >= s[:, None]) & (idx[None] < (s + w)[:, None])
            x = x.masked_fill(m[:, None, :] if axis == 2 else m[:, :, None], 0.0)
    return x


def average_precision(y, s):
    order = np.argsort(-s, kind="stable")
    y = y[order]
    if y.sum() == 0:
        return float("nan")
    hits = np.cumsum(y)
    return float(np.sum(hits[y == 1] / (np.flatnonzero(y == 1) + 1)) / y.sum())


def evaluate(model, xs, ys, threshold):
    model.eval()
    with torch.no_grad():
        scores = torch.cat([torch.sigmoid(model(input_values=torch.from_numpy(xs[i:i + 256])).logits)
                            for i in range(0, len(xs), 256)]).numpy()
    rows = {}
    for j, name in enumerate(synth.NAMES):
        pred = scores[:, j] >= threshold
        tp = float(np.sum(pred & (ys[:, j] == 1)))
        prec = tp / max(float(pred.sum()), 1.0)
        rec = tp / max(float(ys[:, j].sum()), 1.0)
        f1 = float(2 * prec * rec / max(prec + rec, 1e-9))
        rows[name] = {"ap": average_precision(ys[:, j], scores[:, j]), "f1": f1,
                      "precision": prec, "recall": rec, "positives": int(ys[:, j].sum())}
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heldout-seed", type=int, default=2)
    p.add_argument("--train", type=int, default=8000)
    p.add_argument("--heldout", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--mlp", type=int, default=768)
    p.add_argument("--stride", type=int, default=12, help="patch stride in time and frequency")
    p.add_argument("--threshold", type=float, default=0.4,
                   help="score for the F1 figures (the `on` of config/demo.toml)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="only rewrite OUT/metrics.* from OUT/checkpoint")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    if args.evaluate_only:
        model = ASTForAudioClassification.from_pretrained(args.out / "checkpoint").eval()
        xho, yho = dataset(args.heldout_seed, args.heldout)
        write_metrics(args, model, xho, yho, json.loads((args.out / "metrics.json").read_text()))
        return
    print(f"batched fbank vs torchaudio: max |diff| = {check_features():.2e}", flush=True)
    xtr, ytr = dataset(args.seed, args.train)
    xho, yho = dataset(args.heldout_seed, args.heldout)
    print(f"data: {len(xtr)} training, {len(xho)} held-out clips in {time.time() - t0:.0f} s; "
          f"positives per label {ytr.sum(0).astype(int).tolist()}", flush=True)

    cfg = ASTConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                    num_attention_heads=args.heads, intermediate_size=args.mlp,
                    max_length=FRAMES, num_mel_bins=128, frequency_stride=args.stride,
                    time_stride=args.stride, num_labels=len(synth.NAMES),
                    id2label=dict(enumerate(synth.NAMES)),
                    label2id={n: i for i, n in enumerate(synth.NAMES)},
                    problem_type="multi_label_classification", attn_implementation="eager")
    model = ASTForAudioClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.02)
    steps = args.epochs * (len(xtr) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(len(xt) // args.batch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            logits = model(input_values=spec_augment(xt[idx], gen)).logits
            loss = loss_fn(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        res = evaluate(model, xho, yho, args.threshold)
        mean_ap = np.nanmean([r["ap"] for r in res.values()])
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / (len(xt) // args.batch):.4f}, "
              f"held-out mAP {mean_ap:.3f}, {time.time() - t0:.0f} s", flush=True)

    model.eval()
    model.save_pretrained(args.out / "checkpoint")
    lines = ["index,mid,display_name"] + [f'{i},{mid},"{n}"' for i, (n, mid) in enumerate(synth.CLASSES)]
    (args.out / "labels.csv").write_text("\n".join(lines) + "\n")
    write_metrics(args, model, xho, yho, {"train_seconds": round(time.time() - t0)})


def write_metrics(args, model, xho, yho, previous):
    """OUT/metrics.json and OUT/metrics.md: per-label AP and F1 at the threshold."""
    res = evaluate(model, xho, yho, args.threshold)
    summary = {"seed": args.seed, "heldout_seed": args.heldout_seed, "train_clips": args.train,
               "heldout_clips": args.heldout, "epochs": args.epochs, "threshold": args.threshold,
               "mean_ap": float(np.nanmean([r["ap"] for r in res.values()])),
               "train_seconds": previous.get("train_seconds"), "labels": res}
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = [f"| label | AP | F1 at {args.threshold} | precision | recall | positives |",
          "|---|---:|---:|---:|---:|---:|"]
    md += [f"| {n} | {r['ap']:.3f} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
           f"{r['positives']} |" for n, r in res.items()]
    md.append(f"| **mean** | **{summary['mean_ap']:.3f}** | "
              f"**{np.mean([r['f1'] for r in res.values()]):.3f}** | | | |")
    (args.out / "metrics.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

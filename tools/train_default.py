#!/usr/bin/env python3
"""Trains the default model: a small transformers.ASTForAudioClassification on real recordings
(tools/real_sounds.py: sound files of Debian packages) mixed with synthesised site and home
sounds (tools/synth.py), on the CPU.

    python tools/real_sounds.py --cache build/real-cache --out build/real-sounds
    python tools/train_default.py --real build/real-sounds --out build/default-model
    python tools/export_ast.py --hf-id build/default-model/checkpoint \\
        --labels-csv build/default-model/labels.csv --int8 --name sitehome-tiny-ast \\
        --thresholds build/default-model/thresholds.json --out models/sitehome-tiny-ast

Features are the daemon's own: Kaldi fbank (torchaudio.compliance.kaldi, the definition the
daemon's fbank matches), 128 mel bins, AST normalisation. Windows are 128 frames (1.28 s).
Multi-label BCE with SpecAugment-style masks. A share of the training clips (--real-share)
are scenes of real recordings of the `train` packages over real or synthesised backgrounds
(tools/real_mix.py), the rest synthesised clips as before. Per-label thresholds are chosen on
the real validation clips (OUT/thresholds.json); the figures on the real held-out packages
(clip level: the maximum over a clip's windows) and on synthesised held-out clips of another
seed go to OUT/metrics.json and OUT/metrics.md. Same seed, same data and the same model
(torch on the CPU is deterministic here).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from transformers import ASTConfig, ASTForAudioClassification

import real_mix
import synth
from real_mix import CLASSES, NAMES

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


def dataset(seed, count, real=None, real_share=0.0, short_share=0.0, distractor=0.0):
    """count clips: real scenes (real_mix.mixed_clip over the pool `real`) with probability
    real_share, synthesised clips otherwise (with an unlabelled tonal sound with probability
    `distractor`). With probability short_share a clip is shorter than a window (0.25-1.27 s)
    and its features are padded as the daemon pads a file that short (window_features): the
    model learns that the padding is no sound."""
    rng = np.random.default_rng(seed)
    pool = synth.SpeechPool(seed)
    xs = np.zeros((count, FRAMES, 128), dtype=np.float32)
    ys = np.zeros((count, len(NAMES)), dtype=np.float32)
    block = []
    for i in range(count):
        n = CLIP
        if short_share > 0 and rng.random() < short_share:
            n = int(rng.integers(int(0.25 * real_mix.SR), CLIP))
        if real is not None and rng.random() < real_share:
            audio, ys[i] = real_mix.mixed_clip(rng, n, real, pool)
        else:
            audio, ys[i, :len(synth.NAMES)] = synth.training_clip(rng, n, pool,
                                                                  distractor=distractor)
        block.append(audio)
        if len(block) == 256 or i == count - 1:
            xs[i + 1 - len(block):i + 1] = window_features(block)
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


def scores_of(model, xs):
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.sigmoid(model(input_values=torch.from_numpy(xs[i:i + 256])).logits)
                          for i in range(0, len(xs), 256)]).numpy()


def window_features(windows):
    """Features of windows as the daemon computes them: whole windows batched; a shorter one
    (a clip under 1.28 s) padded with zeros in log-mel units to 128 frames, then normalised."""
    out = np.zeros((len(windows), FRAMES, 128), dtype=np.float32)
    whole = [i for i, w in enumerate(windows) if len(w) == CLIP]
    if whole:
        out[whole] = features(np.stack([windows[i] for i in whole]))
    for i, w in enumerate(windows):
        if len(w) != CLIP:
            w = np.pad(w, (0, max(0, 400 - len(w))))
            fb = torchaudio.compliance.kaldi.fbank(
                torch.from_numpy(w).unsqueeze(0), htk_compat=True, sample_frequency=16000,
                use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0,
                frame_shift=10)[:FRAMES]
            fb = torch.nn.functional.pad(fb, (0, 0, 0, FRAMES - fb.shape[0]))
            out[i] = ((fb - AST_MEAN) / (2 * AST_STD)).numpy()
    return out


def real_scores(model, pool, hop):
    return real_mix.clip_scores(lambda ws: scores_of(model, window_features(ws)), pool, CLIP, hop)


def table(y, s, thresholds):
    """Per label with positives: AP, and F1/precision/recall at the label's threshold."""
    rows = {}
    for j, name in enumerate(NAMES):
        if y[:, j].sum() == 0:
            continue
        t = thresholds[name] if isinstance(thresholds, dict) else thresholds
        pred = s[:, j] >= t
        tp = float(np.sum(pred & (y[:, j] == 1)))
        prec = tp / max(float(pred.sum()), 1.0)
        rec = tp / max(float(y[:, j].sum()), 1.0)
        rows[name] = {"ap": average_precision(y[:, j], s[:, j]), "threshold": t,
                      "f1": float(2 * prec * rec / max(prec + rec, 1e-9)), "precision": prec,
                      "recall": rec, "positives": int(y[:, j].sum())}
    return rows


def false_triggers(pool, s, thresholds):
    """Background clips (none of the model's labels) that raise some label, and which."""
    t = np.array([thresholds[n] for n in NAMES])
    hits = []
    for i in pool.backgrounds:
        raised = [NAMES[j] for j in np.flatnonzero(s[i] >= t)]
        if raised:
            hits.append({"package": pool.rows[i]["package"], "path": pool.rows[i]["path"],
                         "start_s": pool.rows[i]["start_s"], "raised": raised,
                         "score": float(np.max(s[i] - t))})
    return len(pool.backgrounds), sorted(hits, key=lambda h: -h["score"])


def confusions(pool, y, s, thresholds, top=12):
    """Positive clips whose strongest raised label is not one of theirs."""
    t = np.array([thresholds[n] for n in NAMES])
    out = []
    for i in range(len(pool.rows)):
        wrong = [NAMES[j] for j in np.flatnonzero((s[i] >= t) & (y[i] == 0))]
        if wrong and y[i].sum() > 0:
            out.append(f"{';'.join(pool.labels[i])} -> {', '.join(wrong)} "
                       f"({pool.rows[i]['package']}: {pool.rows[i]['path'].split('!')[-1]})")
    return out[:top], len(out)


def save_feature_extractor(folder):
    """The checkpoint's preprocessor_config.json: the features it was trained on (a
    128-frame window, AST normalisation), which tools/export_ast.py reads and checks."""
    cfg = {"feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1,
           "sampling_rate": 16000, "num_mel_bins": 128, "max_length": FRAMES,
           "do_normalize": True, "mean": AST_MEAN, "std": AST_STD, "padding_value": 0.0,
           "return_attention_mask": False}
    (Path(folder) / "preprocessor_config.json").write_text(json.dumps(cfg, indent=1) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--real", type=Path, required=True, help="output folder of tools/real_sounds.py")
    p.add_argument("--real-share", type=float, default=0.55,
                   help="share of training clips that are scenes of real recordings")
    p.add_argument("--short-share", type=float, default=0.2,
                   help="share of training clips shorter than a window (padded as the daemon pads)")
    p.add_argument("--distractor", type=float, default=0.15,
                   help="share of synthesised training clips with an unlabelled tonal sound")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heldout-seed", type=int, default=2)
    p.add_argument("--val-seed", type=int, default=4, help="synthesised clips for thresholds")
    p.add_argument("--train", type=int, default=14000)
    p.add_argument("--heldout", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--mlp", type=int, default=768)
    p.add_argument("--stride", type=int, default=12, help="patch stride in time and frequency")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between a clip's windows")
    p.add_argument("--max-false", type=float, default=0.01,
                   help="largest share of real validation clips without a label that may raise it")
    p.add_argument("--evaluate-only", action="store_true",
                   help="only choose thresholds and rewrite OUT/metrics.* from OUT/checkpoint")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    train_pool = real_mix.RealPool(args.real, {"train"})
    if args.evaluate_only:
        model = ASTForAudioClassification.from_pretrained(args.out / "checkpoint").eval()
        save_feature_extractor(args.out / "checkpoint")
        finish(args, model, json.loads((args.out / "metrics.json").read_text()).get("train_seconds"))
        return
    print(f"batched fbank vs torchaudio: max |diff| = {check_features():.2e}", flush=True)
    xtr, ytr = dataset(args.seed, args.train, train_pool, args.real_share, args.short_share,
                       args.distractor)
    xho, yho = dataset(args.heldout_seed, args.heldout)
    print(f"data: {len(xtr)} training clips ({len(train_pool.rows)} real recordings), "
          f"{len(xho)} synthesised held-out clips in {time.time() - t0:.0f} s; "
          f"positives per label {dict(zip(NAMES, ytr.sum(0).astype(int).tolist()))}", flush=True)

    cfg = ASTConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                    num_attention_heads=args.heads, intermediate_size=args.mlp,
                    max_length=FRAMES, num_mel_bins=128, frequency_stride=args.stride,
                    time_stride=args.stride, num_labels=len(NAMES),
                    id2label=dict(enumerate(NAMES)),
                    label2id={n: i for i, n in enumerate(NAMES)},
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
        res = table(yho, scores_of(model, xho), 0.5)
        mean_ap = np.nanmean([r["ap"] for r in res.values()])
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / (len(xt) // args.batch):.4f}, "
              f"synthesised held-out mAP {mean_ap:.3f}, {time.time() - t0:.0f} s", flush=True)

    model.eval()
    model.save_pretrained(args.out / "checkpoint")
    save_feature_extractor(args.out / "checkpoint")
    lines = ["index,mid,display_name"] + [f'{i},{mid},"{n}"' for i, (n, mid) in enumerate(CLASSES)]
    (args.out / "labels.csv").write_text("\n".join(lines) + "\n")
    finish(args, model, round(time.time() - t0))


def finish(args, model, train_seconds):
    """Thresholds on the real validation clips; figures on the real held-out packages and on
    synthesised held-out clips: OUT/thresholds.json, OUT/metrics.json, OUT/metrics.md."""
    val = real_mix.RealPool(args.real, {"val"})
    test = real_mix.RealPool(args.real, {"test"})
    hop = int(args.hop * real_mix.SR)
    xsv, ysv = dataset(args.val_seed, 1000)
    xho, yho = dataset(args.heldout_seed, args.heldout)
    s_val, s_test = real_scores(model, val, hop), real_scores(model, test, hop)
    s_sv, s_ho = scores_of(model, xsv), scores_of(model, xho)
    y_val, y_test = val.targets(), test.targets()
    thresholds = real_mix.choose_thresholds(s_val, y_val, s_sv, ysv, max_false=args.max_false)
    (args.out / "thresholds.json").write_text(json.dumps(thresholds, indent=1) + "\n")
    n_bg, hits = false_triggers(test, s_test, thresholds)
    n_bg_val, hits_val = false_triggers(val, s_val, thresholds)
    real_rows, synth_rows = table(y_test, s_test, thresholds), table(yho, s_ho, thresholds)
    mean = lambda rows, key, least=1: float(np.mean([r[key] for r in rows.values()
                                                   if r["positives"] >= least] or [float("nan")]))
    conf, n_conf = confusions(test, y_test, s_test, thresholds)
    summary = {"seed": args.seed, "heldout_seed": args.heldout_seed, "train_clips": args.train,
               "real_share": args.real_share, "short_share": getattr(args, "short_share", 0.0),
               "distractor": getattr(args, "distractor", 0.0), "layers": args.layers, "epochs": args.epochs, "hop_s": args.hop,
               "train_seconds": train_seconds, "thresholds": thresholds,
               "real_test": {"clips": len(test.rows), "background_clips": n_bg,
                             "false_trigger_clips": len(hits),
                             "false_trigger_rate": len(hits) / max(n_bg, 1),
                             "mean_ap_labels_10_plus": mean(real_rows, "ap", 10),
                             "mean_ap": mean(real_rows, "ap"), "labels": real_rows,
                             "false_triggers": hits, "confusions": conf,
                             "confused_clips": n_conf},
               "real_val": {"clips": len(val.rows), "background_clips": n_bg_val,
                            "false_trigger_rate": len(hits_val) / max(n_bg_val, 1)},
               "synthetic_heldout": {"clips": len(xho), "mean_ap": mean(synth_rows, "ap"),
                                     "labels": synth_rows}}
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = ["| label | threshold | real AP | real F1 | real P | real R | real positives | "
          "synthetic AP | synthetic F1 | synthetic positives |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda rows, n, k: f"{rows[n][k]:.3f}" if n in rows else "–"
    for n in NAMES:
        md.append(f"| {n} | {thresholds[n]:.2f} | {fmt(real_rows, n, 'ap')} | {fmt(real_rows, n, 'f1')} | "
                  f"{fmt(real_rows, n, 'precision')} | {fmt(real_rows, n, 'recall')} | "
                  f"{real_rows[n]['positives'] if n in real_rows else 0} | {fmt(synth_rows, n, 'ap')} | "
                  f"{fmt(synth_rows, n, 'f1')} | {synth_rows[n]['positives'] if n in synth_rows else 0} |")
    md.append(f"| **mean** | | **{summary['real_test']['mean_ap']:.3f}** | "
              f"**{mean(real_rows, 'f1'):.3f}** | | | | **{summary['synthetic_heldout']['mean_ap']:.3f}** | "
              f"**{mean(synth_rows, 'f1'):.3f}** | |")
    md.append("")
    md.append(f"Real held-out: {len(test.rows)} clips; mean AP over the labels with at least 10 "
              f"positives {summary['real_test']['mean_ap_labels_10_plus']:.3f}; background clips "
              f"that raise some label: {len(hits)} of {n_bg} "
              f"({100 * summary['real_test']['false_trigger_rate']:.1f} %). Real validation "
              f"background clips raising a label: {len(hits_val)} of {n_bg_val}.")
    md.append("")
    md += [f"- false trigger: {', '.join(h['raised'])} on {h['package']}: "
           f"{h['path'].split('!')[-1]} at {h['start_s']} s" for h in hits[:15]]
    md += [f"- confusion: {c}" for c in conf]
    (args.out / "metrics.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

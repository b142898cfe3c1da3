"""Real recordings in training and evaluation of the default model: the pool of clips that
tools/real_sounds.py made, training scenes that mix them with real and synthesised
backgrounds, clip-level scoring (the maximum over a clip's windows, as a user sees a file),
and the per-label thresholds chosen on real validation clips."""

import csv
import wave
from pathlib import Path

import numpy as np

import synth

SR = synth.SR
# The model's labels: the synthesiser's 11, then sounds real recordings hold that the model
# must know as themselves rather than call them the nearest watched label.
EXTRA = [("Music", "/m/04rlf"), ("Animal", "/m/0jbk"), ("Bird", "/m/015p6"), ("Water", "/m/0838f")]
CLASSES = synth.CLASSES + EXTRA
NAMES = [n for n, _ in CLASSES]
# Share of a scene's sounds that are real recordings without any of the labels.
DISTRACTOR = 0.35
# Of the distractors, the share that are synthesised tonal sounds (synth.other_tones).
TONES = 0.3


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


class RealPool:
    """The clips of some splits of a real_sounds.py output, in manifest order."""

    def __init__(self, root, splits):
        root = Path(root)
        with (root / "manifest.csv").open() as f:
            self.rows = [r for r in csv.DictReader(f) if r["split"] in splits]
        if not self.rows:
            raise SystemExit(f"{root}/manifest.csv has no clips of split {splits}")
        unknown = {lab for r in self.rows for lab in r["labels"].split(";") if lab} - set(NAMES)
        if unknown:
            raise SystemExit(f"labels not in the model's label set: {sorted(unknown)}")
        self.audio = [read_wav(root / r["clip"]) for r in self.rows]
        self.labels = [[lab for lab in r["labels"].split(";") if lab] for r in self.rows]
        self.backgrounds = [i for i, labs in enumerate(self.labels) if not labs]
        self.by_label = {}
        for i, labs in enumerate(self.labels):
            for lab in labs:
                self.by_label.setdefault(lab, []).append(i)

    def targets(self):
        """(clips, labels) multi-hot in NAMES order."""
        y = np.zeros((len(self.rows), len(NAMES)), dtype=np.float32)
        for i, labs in enumerate(self.labels):
            for lab in labs:
                y[i, NAMES.index(lab)] = 1.0
        return y


def crop(rng, x, n):
    """n samples of x from a random offset (x repeated when it is shorter)."""
    if len(x) < n:
        x = np.tile(x, -(-n // len(x)))
    s = int(rng.integers(0, len(x) - n + 1))
    return x[s:s + n]


def mixed_clip(rng, n, pool, speech):
    """A clip of n samples: a real or synthesised background with 0-2 sounds on it, each a
    real recording of a label (chosen evenly over the pool's labels), a real recording
    without any of the labels (a distractor, unlabelled) or a synthesised sound, at
    -5..+30 dB over the background. Returns (audio, multi-hot over NAMES)."""
    bg_db = rng.uniform(-55, -20)
    if pool.backgrounds and rng.random() < 0.6:
        bed = crop(rng, pool.audio[pool.backgrounds[rng.integers(len(pool.backgrounds))]], n)
        bed = synth.norm(bed.astype(np.float64) + 1e-6 * rng.standard_normal(n))
    else:
        bed = synth.background(rng, n)
    x = bed * 10 ** (bg_db / 20)
    y = np.zeros(len(NAMES), dtype=np.float32)
    real_labels = sorted(pool.by_label)
    k = rng.choice([0, 1, 1, 1, 2, 2])
    snr = rng.uniform(-5, 30)
    for _ in range(k):
        length = int(rng.uniform(0.4, 4.0) * SR)
        pick = rng.random()
        if pick < DISTRACTOR + 0.45:
            if pick < DISTRACTOR * TONES:
                # a synthesised tonal sound with none of the labels (a ring, a chime, a
                # melody): beeps and bells must not be taken for an alarm
                s, labels = synth.sound(rng, synth.OTHER, length, speech), []
            else:
                if pick < DISTRACTOR and pool.backgrounds:
                    # a real sound with none of the labels, as loud as the labelled ones: a
                    # shot, a door or thunder must not be taken for the nearest watched label
                    i = pool.backgrounds[rng.integers(len(pool.backgrounds))]
                else:
                    label = real_labels[rng.integers(len(real_labels))]
                    i = pool.by_label[label][rng.integers(len(pool.by_label[label]))]
                src = pool.audio[i]
                length = min(length, len(src)) if rng.random() < 0.5 else length
                s = synth.norm(crop(rng, src, length).astype(np.float64))
                labels = pool.labels[i]
        else:
            label = synth.NAMES[rng.integers(len(synth.NAMES))]
            s = synth.sound(rng, label, length, speech)
            labels = [label]
        s = s * 10 ** ((bg_db + snr) / 20)
        start = int(rng.uniform(-length + 0.1 * SR, n - 0.1 * SR))
        a, b = max(0, start), min(n, start + length)
        if b > a:
            x[a:b] += s[a - start:b - start]
            if synth.active_seconds(s, a - start, b - start) >= 0.2:
                for lab in labels:
                    y[NAMES.index(lab)] = 1.0
        snr = float(np.clip(snr + rng.uniform(-10, 10), -5, 30))
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32), y


def clip_windows(x, clip, hop):
    """The windows of a clip as the daemon cuts a file: every hop while a whole window fits;
    a clip shorter than one window gives one window of what there is (its features are
    padded with zeros in log-mel units, as the daemon pads)."""
    if len(x) < clip:
        return [x]
    return [x[s:s + clip] for s in range(0, len(x) - clip + 1, hop)]


def clip_scores(score_windows, pool, clip, hop):
    """(clips, labels) scores: the maximum over each clip's windows."""
    return np.stack([score_windows(clip_windows(x, clip, hop)).max(axis=0).astype(np.float32)
                     for x in pool.audio])


def choose_thresholds(real_scores, real_y, synth_scores, synth_y, max_false=0.01,
                      floor=0.3, grid=np.arange(0.05, 0.96, 0.01)):
    """Per label: the thresholds at which at most max_false of the real validation clips
    without the label reach it; of those, the one with the best F1 on real validation
    positives (at least 5 of them), else on synthesised validation clips; never below floor."""
    out = {}
    for j, name in enumerate(NAMES):
        neg = real_scores[real_y[:, j] == 0, j]
        ok = [t for t in grid if t >= floor and np.mean(neg >= t) <= max_false]
        t_ok = ok if ok else [grid[-1]]
        if real_y[:, j].sum() >= 5:
            s, y = real_scores[:, j], real_y[:, j]
        else:
            s, y = synth_scores[:, j], synth_y[:, j]
        if y.sum() == 0:
            out[name] = round(float(t_ok[0]), 2)
            continue
        f1 = [f1_at(y, s, t) for t in t_ok]
        out[name] = round(float(t_ok[int(np.argmax(f1))]), 2)
    return out


def f1_at(y, s, t):
    pred = s >= t
    tp = float(np.sum(pred & (y == 1)))
    prec = tp / max(float(pred.sum()), 1.0)
    rec = tp / max(float(y.sum()), 1.0)
    return 2 * prec * rec / max(prec + rec, 1e-9)

#!/usr/bin/env python3
"""Writes samples/demo-20s.wav: a 20 s synthesised scene (16 kHz mono, 16-bit) for the
README's first command, with its annotation samples/demo-20s.csv (label,start_s,end_s).

Deterministic given --seed. Needs espeak-ng and sox (apt-get install espeak-ng sox).
"""

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SR = 16000


def speech(text, voice):
    with tempfile.TemporaryDirectory() as d:
        raw, out = Path(d) / "s.wav", Path(d) / "s.raw"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-D", "-r", str(SR), "-c", "1", "-b", "16", "-e",
                        "signed-integer", "-t", "raw", str(out)], check=True)
        return np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="samples/demo-20s")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    n = 20 * SR
    t = np.arange(n) / SR
    x = 0.01 * rng.standard_normal(n)  # background hiss
    notes = []

    def add(label, start, sig):
        i = int(start * SR)
        sig = sig[: n - i]
        x[i:i + len(sig)] += sig
        notes.append((label, start, start + len(sig) / SR))

    add("Speech", 1.0, 0.6 * speech("The site opens at seven. Keep the gate closed.", "en"))
    beeps = (np.sin(2 * np.pi * 1200 * t[: 4 * SR]) * ((t[: 4 * SR] % 1.0) < 0.5)).astype(np.float32)
    add("Reversing beeps", 7.0, 0.3 * beeps)
    k = 5 * SR
    hammer = rng.standard_normal(k) * (np.sin(2 * np.pi * 15 * t[:k]) > 0.3)
    add("Jackhammer", 13.0, 0.3 * hammer)
    x = np.clip(x, -1.0, 1.0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out.with_suffix(".wav")), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    rows = ["label,start_s,end_s"] + [f"{l},{a:.3f},{b:.3f}" for l, a, b in notes]
    out.with_suffix(".csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {out}.wav and {out}.csv")


if __name__ == "__main__":
    main()

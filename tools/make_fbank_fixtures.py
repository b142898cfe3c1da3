#!/usr/bin/env python3
"""Writes the Kaldi-fbank reference fixtures used by the Rust parity tests.

Signals are made here (espeak-ng speech, tones, noise, silence, clipped audio,
edge-case lengths). Each signal is stored as float32 samples in [-1, 1]; the
reference log-mel frames come from torchaudio.compliance.kaldi.fbank, run in float64
on the float32 (scaled) waveform, for the AST
setting (window "hanning", waveform unscaled) and the BEATs setting (window
"povey", waveform x 32768), 128 mel bins, 25 ms / 10 ms, snip_edges. A second,
independent reference (kaldi-native-fbank) is stored at 80 bins, the largest
common count it accepts with a 512-point FFT.

Why float64: run in float32, torchaudio's own rounding (FFT of frames whose loud bins
are 1e9 times the quiet ones) moves quiet log-mel bins by up to ~2.5e-3, so float32
torchaudio is not a sharp reference. cases.json records, per case, how far the
float32 torchaudio output lies from the float64 one, for the record.

Usage: python tools/make_fbank_fixtures.py [OUT_DIR]   (default tests/fixtures/fbank)
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchaudio.compliance.kaldi as ta_kaldi

SR = 16000
SETTINGS = {
    "ast": {"window_type": "hanning", "scale": 1.0},
    "beats": {"window_type": "povey", "scale": 32768.0},
}


def speech(rng):
    """Real synthetic speech from espeak-ng, resampled to 16 kHz with sox."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        sys.exit("espeak-ng and sox are needed: apt-get install espeak-ng sox")
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "s.wav"
        out = Path(d) / "s16.raw"
        subprocess.run(["espeak-ng", "-v", "en", "-s", "170", "-w", str(raw),
                        "Jackhammer started at seven."], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16",
                        "-e", "signed-integer", "-t", "raw", str(out)], check=True)
        x = np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    return x[: int(1.6 * SR)]


def signals():
    rng = np.random.default_rng(1234)
    t = np.arange(int(0.75 * SR)) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 137 * t)).astype(np.float32)
    noise = (0.3 * rng.standard_normal(int(0.6 * SR))).astype(np.float32)
    clipped = np.clip(1.8 * np.sin(2 * np.pi * 440 * t[: 9000]), -1.0, 1.0).astype(np.float32)
    quiet = (1e-4 * rng.standard_normal(5000)).astype(np.float32)
    return {
        "speech": speech(rng),
        "tone": tone,
        "noise": noise,
        "silence": np.zeros(4000, dtype=np.float32),
        "clipped": clipped,
        "quiet": quiet,
        "short_399": (0.1 * rng.standard_normal(399)).astype(np.float32),
        "one_frame_400": (0.1 * rng.standard_normal(400)).astype(np.float32),
        "odd_1737": (0.1 * rng.standard_normal(1737)).astype(np.float32),
    }


def torchaudio_fbank(x, window_type, scale, bins=128, dtype=torch.float64):
    if len(x) < 400:
        return np.zeros((0, bins), dtype=np.float32)
    w = (torch.from_numpy(x).unsqueeze(0) * scale).to(dtype)
    f = ta_kaldi.fbank(w, sample_frequency=SR, window_type=window_type, num_mel_bins=bins,
                       frame_length=25.0, frame_shift=10.0, dither=0.0, htk_compat=True,
                       use_energy=False)
    return f.numpy().astype(np.float32)


def knf_fbank(x, window_type, scale, bins):
    import kaldi_native_fbank as knf
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = SR
    opts.frame_opts.window_type = window_type
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = bins
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(SR, (x * scale).tolist())
    fb.input_finished()
    rows = [fb.get_frame(i) for i in range(fb.num_frames_ready)]
    return np.array(rows, dtype=np.float32).reshape(-1, bins)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/fbank")
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, x in signals().items():
        np.save(out / f"{name}.wav.npy", x)
        for setting, p in SETTINGS.items():
            ref = torchaudio_fbank(x, p["window_type"], p["scale"])
            f32 = torchaudio_fbank(x, p["window_type"], p["scale"], dtype=torch.float32)
            np.save(out / f"{name}.{setting}.npy", ref)
            f32_diff = float(np.abs(ref - f32).max()) if ref.size else 0.0
            cases.append({"signal": name, "setting": setting, "reference": "torchaudio",
                          "mel_bins": 128, "file": f"{name}.{setting}.npy",
                          "torchaudio_float32_max_abs_diff": f32_diff})
        if name in ("speech", "noise", "odd_1737"):
            p = SETTINGS["beats"]
            np.save(out / f"{name}.knf80.npy", knf_fbank(x, p["window_type"], p["scale"], 80))
            cases.append({"signal": name, "setting": "beats", "reference": "kaldi-native-fbank",
                          "mel_bins": 80, "file": f"{name}.knf80.npy"})
    (out / "cases.json").write_text(json.dumps({"sample_rate": SR, "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()

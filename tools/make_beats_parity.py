#!/usr/bin/env python3
"""Makes tests/fixtures/beats-official/: a small BEATs with random weights, run by the official
implementation (microsoft/unilm `beats/`, which the user checks out; its code is not part of
this project), on recordings shorter than, equal to and longer than one 10 s window.

    git clone https://github.com/microsoft/unilm /tmp/unilm
    python tools/make_beats_parity.py --unilm /tmp/unilm/beats

Writes:
- models/tiny-beats-official/ (via export_beats.py --checkpoint, from the checkpoint saved here
  in the official format, label_dict index -> AudioSet id as the published ones have);
- beats-official/{short,mid,long}.wav: 16-bit PCM, 16 kHz (0.5 s, 4 s, 16 s of tones, chirps
  and noise bursts);
- beats-official/<name>-classify.npy: BEATs.extract_features on each consecutive 998-frame
  window of the file (the last one with the frames left), what `classify` must give;
- beats-official/long-stream.npy: the same for the windows a stream emits every second
  (the last min(998, frames so far) frames), what `run` must give from its first window on.
It also prints how far the former padded windows were from the official outputs.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
FIX = HERE.parent / "tests" / "fixtures"
RATE, SHIFT, LENGTH, WINDOW, HOP = 16000, 160, 400, 998, 100
CFG = dict(input_patch_size=16, embed_dim=32, conv_bias=False, encoder_layers=2,
           encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
           activation_fn="gelu", layer_wise_gradient_decay_ratio=1.0, layer_norm_first=False,
           deep_norm=True, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
           encoder_layerdrop=0.0, dropout_input=0.0, conv_pos=16, conv_pos_groups=4,
           relative_position_embedding=True, num_buckets=320, max_distance=800,
           gru_rel_pos=True, finetuned_model=True, predictor_dropout=0.0, predictor_class=10)


def audio(seconds, seed):
    """Tones, a chirp and noise bursts, quantised to 16 bits (what the WAV holds)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    x += 0.1 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    bursts = (np.sin(2 * np.pi * 0.7 * t + seed) > 0.6).astype(float)
    x += 0.3 * bursts * rng.standard_normal(t.size)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def write_wav(path, pcm):
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def frames_of(n):
    return 0 if n < LENGTH else 1 + (n - LENGTH) // SHIFT


def official(model, pcm, first, count, exact_fbank=False):
    """BEATs.extract_features on the samples of frames [first, first + count). With
    `exact_fbank`, its fbank step (torchaudio's Kaldi fbank) runs in float64 and is rounded to
    float32 once, the reference soundsentry's fbank is checked against; the official code runs
    it in float32, whose rounding alone moves these scores by up to ~4e-4."""
    x = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    seg = x[first * SHIFT: first * SHIFT + LENGTH + (count - 1) * SHIFT]
    with torch.no_grad():
        if not exact_fbank:
            probs, _ = model.extract_features(seg.unsqueeze(0), padding_mask=None)
        else:
            import torchaudio.compliance.kaldi as ta_kaldi
            original = model.preprocess

            def preprocess(source, fbank_mean=15.41663, fbank_std=6.55582):
                fb = ta_kaldi.fbank(source[0].double().unsqueeze(0) * 2 ** 15, num_mel_bins=128,
                                    sample_frequency=16000, frame_length=25, frame_shift=10)
                return ((fb.float() - fbank_mean) / (2 * fbank_std)).unsqueeze(0)
            model.preprocess = preprocess
            try:
                probs, _ = model.extract_features(seg.unsqueeze(0), padding_mask=None)
            finally:
                model.preprocess = original
    return probs[0].numpy()


def padded(model, pcm, first, count):
    """What soundsentry did before: the window's log-mel padded with zeros to 998 frames."""
    x = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    seg = x[first * SHIFT: first * SHIFT + LENGTH + (count - 1) * SHIFT]
    with torch.no_grad():
        fb = model.preprocess(seg.unsqueeze(0))  # normalised
        pad = (0.0 - 15.41663) / (2 * 6.55582)
        full = torch.full((1, WINDOW, 128), pad)
        full[:, :count] = fb
        f = model.patch_embedding(full.unsqueeze(1))
        f = f.reshape(1, f.shape[1], -1).transpose(1, 2)
        f = model.layer_norm(f)
        if model.post_extract_proj is not None:
            f = model.post_extract_proj(f)
        h, _ = model.encoder(f, padding_mask=None)
        return torch.sigmoid(model.predictor(h).mean(dim=1))[0].numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unilm", required=True, type=Path, help="the official beats/ folder")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    sys.path.insert(0, str(args.unilm))
    from BEATs import BEATs, BEATsConfig  # the official implementation

    torch.manual_seed(args.seed)
    model = BEATs(BEATsConfig(CFG)).eval()
    with torch.no_grad():  # livelier scores than the near-0.5 of a fresh predictor
        model.predictor.weight.mul_(12.0)
    import audioset
    label_dict = {i: mid for i, (mid, _) in enumerate(audioset.table()[:CFG["predictor_class"]])}
    out = FIX / "beats-official"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "tiny-beats-official.pt"
        torch.save({"cfg": CFG, "model": model.state_dict(), "label_dict": label_dict}, ckpt)
        subprocess.run([sys.executable, str(HERE / "export_beats.py"), "--checkpoint", str(ckpt),
                        "--frames", str(WINDOW), "--seed", str(args.seed),
                        "--out", str(FIX / "models" / "tiny-beats-official")], check=True)
    worst_old = 0.0
    for name, seconds, seed in [("short", 0.5, 1), ("mid", 4.0, 2), ("long", 16.0, 3)]:
        pcm = audio(seconds, seed)
        write_wav(out / f"{name}.wav", pcm)
        total = frames_of(pcm.size)
        windows = [(first, min(WINDOW, total - first)) for first in range(0, total, WINDOW)]
        for first, count in windows:
            if count < WINDOW:
                old = padded(model, pcm, first, count)
                worst_old = max(worst_old, float(np.abs(old - official(model, pcm, first, count)).max()))
        save(out, f"{name}-classify", model, pcm, windows)
        print(f"{name}: {total} frames, {len(windows)} windows")
        if name == "long":
            ends = list(range(HOP, total + 1, HOP))
            if ends[-1] != total:
                ends.append(total)
            save(out, "long-stream", model, pcm, [(max(0, e - WINDOW), min(WINDOW, e)) for e in ends])
            print(f"long stream: {len(ends)} windows")
    print(f"padded short windows vs official: max |diff| = {worst_old:.3f}")


def save(out, name, model, pcm, windows):
    """<name>.npy: the official code with an exact fbank; <name>-f32fbank.npy: as it runs."""
    exact = np.stack([official(model, pcm, f, c, exact_fbank=True) for f, c in windows])
    plain = np.stack([official(model, pcm, f, c) for f, c in windows])
    np.save(out / f"{name}.npy", exact.astype(np.float32))
    np.save(out / f"{name}-f32fbank.npy", plain.astype(np.float32))
    print(f"{name}: float32 vs float64 fbank in the official code: max |diff| = "
          f"{np.abs(exact - plain).max():.2e}")


if __name__ == "__main__":
    main()

"""Writes mono 16-bit WAV files (the standard library's wave module): shared by the scripts
that make test audio."""

import wave

import numpy as np


def write_wav(path, rate, samples):
    """`samples` in full scale ±1 (floats, clipped) or already int16."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())

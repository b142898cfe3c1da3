"""AudioSet's class table (tools/data/audioset_class_labels_indices.csv, CC BY 4.0): names a
checkpoint's outputs by ontology id and display name. Plain Python, no torch."""

import csv
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "audioset_class_labels_indices.csv"
ATTRIBUTION = (
    'Output names from "AudioSet class labels" by Google LLC (J. F. Gemmeke et al., Audio Set: '
    "An ontology and human-labeled dataset for audio events, ICASSP 2017), CC BY 4.0, "
    "https://research.google.com/audioset/ ; unchanged.\n"
)


def table(path=TABLE):
    """[(mid, display_name)] in AudioSet's output order."""
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    return [(r["mid"], r["display_name"]) for r in rows]


def from_label_dict(label_dict, n, rows=None):
    """(labels, used_table) for a BEATs checkpoint's label_dict, which maps each output
    index to an AudioSet id (the official checkpoints) or, in some re-saved ones, an id or
    name to an index. Names come from the table; an id it does not know keeps the id as
    its name. Outputs the dict does not name are refused: a model whose outputs cannot be
    named is not exported silently with made-up names."""
    rows = table() if rows is None else rows
    by_mid = dict(rows)
    by_name = {name: mid for mid, name in rows}
    index_to_key = {}
    for k, v in (label_dict or {}).items():
        if isinstance(k, int) or (isinstance(k, str) and k.isdigit()):
            index_to_key[int(k)] = str(v)
        else:
            index_to_key[int(v)] = str(k)
    if not index_to_key:
        return [(f"/t/{i:03d}", f"Label {i:03d}") for i in range(n)], False
    missing = [i for i in range(n) if i not in index_to_key]
    if missing:
        raise SystemExit(f"label_dict names {len(index_to_key)} outputs, the model has {n}: "
                         f"outputs {missing[:5]}… have no label")
    labels, used = [], False
    for i in range(n):
        key = index_to_key[i]
        if key in by_mid:
            labels.append((key, by_mid[key]))
            used = True
        elif key in by_name:
            labels.append((by_name[key], key))
            used = True
        else:
            labels.append((key, key))
    return labels, used


def from_display_names(names, rows=None):
    """(labels, used_table) for an AST checkpoint's id2label (display names): each name the
    table knows gets its AudioSet id, any other keeps a /hf/<index> id."""
    rows = table() if rows is None else rows
    by_name = {name: mid for mid, name in rows}
    labels = [(by_name.get(name, f"/hf/{i}"), name) for i, name in enumerate(names)]
    return labels, any(name in by_name for name in names)

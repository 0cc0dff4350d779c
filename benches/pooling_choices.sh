#!/usr/bin/env bash
# The pooling choices of benches/pooling_choices.py for one saved patch-transformer encoder:
# `s2kit embed` writes every bundled set at every layer into OUT, then scikit-learn's copy of
# the linear probe scores [CLS] alone, the patch mean alone, both, and every layer joined.
# Python packages come from PyPI into target/probe-venv.
#
# Usage: benches/pooling_choices.sh MODEL OUT
#   e.g. benches/pooling_choices.sh models/views-mixed-1m runs/pooling/views
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 out=$2
venv=target/probe-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet h5py numpy scikit-learn
fi
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
read -r d layers < <("$venv/bin/python" -c "
import json, sys
c = json.load(open(sys.argv[1]))['transformer']
print(c['d_model'], c['layers'])" "$model/encoder.json")
mkdir -p "$out"
for set in GunPoint ItalyPowerDemand BasicMotions JapaneseVowels; do
  for layer in $(seq 1 "$layers"); do
    "$bin" embed --model "$model" --dataset "data/ucr/$set" --layer "$layer" \
      --out "$out/$set-layer$layer.h5" --force >/dev/null
  done
done
"$venv/bin/python" benches/pooling_choices.py "$d" "$out"

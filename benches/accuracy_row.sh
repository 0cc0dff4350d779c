#!/usr/bin/env bash
# One table row's cells: the TEST accuracy (mean over seeds) of MODEL on each bundled set,
# then their mean, each after a tab. TRANSFER_ARGS go to `s2kit transfer` (the protocol,
# seeds, epochs, readout...); the reports go to PREFIX-SET.json.
#
# Usage: benches/accuracy_row.sh BIN MODEL PREFIX TRANSFER_ARGS...
#   e.g. benches/accuracy_row.sh target/release/s2kit models/views-mixed-1m runs/ft/views --protocol finetune --seeds 3 --epochs 30
set -euo pipefail
bin=$1 model=$2 prefix=$3
shift 3
sum=0
for set in GunPoint ItalyPowerDemand BasicMotions JapaneseVowels; do
  "$bin" transfer --model "$model" --dataset "data/ucr/$set" "$@" --json "$prefix-$set.json" >/dev/null
  acc=$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['accuracy_mean'])" "$prefix-$set.json")
  printf '\t%s' "$acc"
  sum=$(python3 -c "print($sum + $acc)")
done
printf '\t%.4f' "$(python3 -c "print($sum / 4)")"

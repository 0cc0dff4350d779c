#!/usr/bin/env bash
# One table row's cells: the linear-probe accuracy of MODEL on each bundled set, then their
# mean, each after a tab. The reports go to PREFIX-SET.json; further arguments go to
# `s2kit transfer` (e.g. --layer 1, --levels).
#
# Usage: benches/probe_row.sh BIN MODEL PREFIX [TRANSFER_ARGS...]
set -euo pipefail
bin=$1 model=$2 prefix=$3
shift 3
sum=0
for set in GunPoint ItalyPowerDemand BasicMotions JapaneseVowels; do
  "$bin" transfer --model "$model" --dataset "data/ucr/$set" --protocol linear --seeds 1 \
    "$@" --json "$prefix-$set.json" >/dev/null
  acc=$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['accuracy_mean'])" "$prefix-$set.json")
  printf '\t%s' "$acc"
  sum=$(python3 -c "print($sum + $acc)")
done
printf '\t%.4f' "$(python3 -c "print($sum / 4)")"

#!/usr/bin/env bash
# The linear probe's cheap readout choices for each MODEL (a saved encoder directory): the
# window-resampled readout at the last layer, the readout at native resolution (--native),
# the layer chosen on TRAIN (--layer auto), and both; each without and with channel levels.
# Rows go to stdout:
#   model  readout  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
# Reports go to OUT/NAME-READOUT-SET.json.
#
# Usage: benches/readout_choices.sh OUT MODEL...
#   e.g. benches/readout_choices.sh runs/readouts models/views-mixed-1m models/tiny-mixed-1m
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
mkdir -p "$out"
printf 'model\treadout\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n'
for model in "$@"; do
  name=$(echo "$model" | tr '/' '_')
  for readout in "last layer" "native" "layer auto" "native, layer auto"; do
    args=()
    case $readout in
      native) args=(--native) ;;
      "layer auto") args=(--layer auto) ;;
      "native, layer auto") args=(--native --layer auto) ;;
    esac
    for levels in "" "--levels"; do
      tag=$(echo "$readout$levels" | tr -c 'a-z\n' '_')
      printf '%s\t%s%s%s\n' "$model" "$readout" "${levels:+ + levels}" \
        "$(benches/probe_row.sh "$bin" "$model" "$out/$name-$tag" "${args[@]}" $levels)"
    done
  done
done

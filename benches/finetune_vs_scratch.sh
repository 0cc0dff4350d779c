#!/usr/bin/env bash
# Fine-tuning (LP-FT) of each saved ENCODER against the same architecture from scratch, on
# every bundled set, with the quickstart's settings (at most 30 epochs) over SEEDS seeds.
# Rows (mean TEST accuracy over the seeds) go to stdout:
#   run  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
# Reports go to OUT/NAME-PROTOCOL-SET.json. Scratch uses the first encoder's architecture.
#
# Usage: benches/finetune_vs_scratch.sh OUT SEEDS ENCODER...
#   e.g. benches/finetune_vs_scratch.sh runs/ft 3 runs/quickstart/pretrain models/views-mixed-1m
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 seeds=$2
shift 2
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
mkdir -p "$out"
printf 'run\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n'
row() {
  local label=$1 model=$2 protocol=$3
  printf '%s%s\n' "$label" "$(benches/accuracy_row.sh "$bin" "$model" \
    "$out/$(echo "$model" | tr '/' '_')-$protocol" --protocol "$protocol" --seeds "$seeds" --epochs 30)"
}
first=$1
row "scratch (the architecture of $first)" "$first" scratch
for model in "$@"; do
  row "finetune $model" "$model" finetune
done

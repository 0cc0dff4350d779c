#!/usr/bin/env bash
# Fine-tuning (LP-FT) of each saved ENCODER against the same architecture from scratch, on
# every bundled set, with the quickstart's settings (at most 30 epochs) over SEEDS seeds.
# Rows (mean TEST accuracy over the seeds) go to stdout:
#   run  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
# Reports go to OUT/NAME-PROTOCOL-SET.json. Scratch uses the first encoder's architecture.
# FT_ARGS, if set, go to every `s2kit transfer` (how the epoch is chosen, the head) and are
# named in each row.
#
# Usage: [FT_ARGS=...] benches/finetune_vs_scratch.sh OUT SEEDS ENCODER...
#   e.g. benches/finetune_vs_scratch.sh runs/ft 3 runs/quickstart/pretrain models/views-mixed-1m
#        FT_ARGS="--folds 5 --head batchnorm" benches/finetune_vs_scratch.sh runs/ft-k5-bn 3 models/views-mixed-1m
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
  # shellcheck disable=SC2086 # FT_ARGS is a list of arguments
  printf '%s%s%s\n' "$label" "${FT_ARGS:+ ($FT_ARGS)}" "$(benches/accuracy_row.sh "$bin" "$model" \
    "$out/$(echo "$model" | tr '/' '_')-$protocol" --protocol "$protocol" --seeds "$seeds" --epochs 30 ${FT_ARGS:-})"
}
first=$1
row "scratch (the architecture of $first)" "$first" scratch
for model in "$@"; do
  row "finetune $model" "$model" finetune
done

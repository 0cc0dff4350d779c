#!/usr/bin/env bash
# Frozen-feature accuracy against pretraining compute, for one pretraining recipe.
#
# Usage: benches/scaling_study.sh RECIPE PRESET SAMPLES OUT STEP...
#   e.g. benches/scaling_study.sh recipes/pretrain-tiny-long.toml generators/mixed.toml 200000 runs/long 0 1000 3000 10000 20000
# Generates (or resumes) a corpus of SAMPLES samples of PRESET (seed 11) in OUT/corpus,
# (or, with KEEP_CORPUS=1, reads the complete corpus already there, unchanged),
# then pretrains RECIPE in OUT/pretrain, stopping at each STEP (0 exports the random
# initialisation) and resuming from the checkpoint; at each stop the exported encoder is kept
# in OUT/encoders/step-STEP and scored by the linear probe (`transfer --protocol linear`) on
# every bundled set, reading each layer. Rows go to OUT/scaling.tsv:
#   step  pairs_seen  layer  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=$1 preset=$2 samples=$3 out=$4
shift 4
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
[ -n "${KEEP_CORPUS:-}" ] ||
  "$bin" generate --config "$preset" --samples "$samples" --shard-size 10000 --seed 11 \
    --out "$out/corpus" --resume >/dev/null
batch=$(awk -F' *= *' '/^batch_size/{print $2}' "$recipe")
layers=$(awk -F' *= *' '/^\[model.series.transformer\]/{s=1} s && /^layers/{print $2; exit}' "$recipe")
table="$out/scaling.tsv"
[ -f "$table" ] || printf 'step\tpairs_seen\tlayer\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n' > "$table"
for stop in "$@"; do
  resume=()
  [ -d "$out/pretrain/checkpoint" ] && resume=(--resume)
  start=$(date +%s)
  "$bin" pretrain --recipe "$recipe" --data "$out/corpus" --out "$out/pretrain" --stop-at "$stop" "${resume[@]}" >/dev/null
  echo "step $stop reached ($(( $(date +%s) - start )) s for this leg)" >&2
  kept="$out/encoders/step-$stop"
  mkdir -p "$kept"
  cp "$out/pretrain/encoder.json" "$out/pretrain/encoder.safetensors" "$kept/"
  for layer in $(seq 1 "$layers"); do
    printf '%s\t%s\t%s%s\n' "$stop" "$(( stop * batch ))" "$layer" \
      "$(benches/probe_row.sh "$bin" "$kept" "$kept/layer$layer" --layer "$layer")" | tee -a "$table"
  done
done

#!/usr/bin/env bash
# Which pretraining losses help the frozen features: the recipe as it is, then with each
# objective weight (mpm_weight, mlm_weight, itc_weight) set to 0 in turn, each trained for
# STEPS steps on one corpus and probed by the linear protocol (last layer, without and with
# --levels) on every bundled set. SEED, if given, replaces the recipe's training seed
# (initialisation, batches, masks); the corpus is the same for every seed. Rows go to
# OUT/ablation.tsv:
#   variant  levels  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
#
# Usage: benches/ablation_study.sh RECIPE PRESET SAMPLES STEPS OUT [SEED]
#   e.g. benches/ablation_study.sh recipes/pretrain-tiny-long.toml generators/mixed.toml 100000 3000 runs/ablation
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=$1 preset=$2 samples=$3 steps=$4 out=$5 seed=${6:-}
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
"$bin" generate --config "$preset" --samples "$samples" --shard-size 10000 --seed 11 \
  --out "$out/corpus" --resume >/dev/null
mkdir -p "$out/recipes"
table="$out/ablation.tsv"
[ -f "$table" ] || printf 'variant\tlevels\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n' > "$table"
for variant in all no-mpm no-mlm no-itc; do
  r="$out/recipes/$variant.toml"
  # The recipe with `steps` (and the seed, if given) replaced and, for no-X, X's weight set
  # to 0.
  key=${variant#no-}_weight
  awk -v steps="$steps" -v key="$key" -v seed="$seed" '
    /^steps *=/ { print "steps = " steps; next }
    /^seed *=/ && seed != "" { print "seed = " seed; next }
    $1 == key { print key " = 0.0"; next }
    { print }' "$recipe" > "$r"
  run="$out/$variant"
  resume=()
  [ -d "$run/checkpoint" ] && resume=(--resume)
  start=$(date +%s)
  "$bin" pretrain --recipe "$r" --data "$out/corpus" --out "$run" "${resume[@]}" >/dev/null
  echo "$variant trained ($(( $(date +%s) - start )) s)" >&2
  benches/levels_rows.sh "$bin" "$run" "$variant" | tee -a "$table"
done

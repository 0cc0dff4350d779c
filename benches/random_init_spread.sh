#!/usr/bin/env bash
# How far a random initialisation alone moves the frozen-feature baseline: the encoder of
# RECIPE at step 0 (`s2kit pretrain --stop-at 0`, nothing trained) for each training SEED,
# probed by the linear protocol at its last layer on every bundled set, without and with
# --levels. The "gain over random init" of a pretrained encoder is measured against one such
# draw; this gives the spread of that baseline. Rows go to OUT/random-init.tsv:
#   seed  levels  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
#
# Usage: benches/random_init_spread.sh RECIPE OUT SEED...
#   e.g. benches/random_init_spread.sh recipes/pretrain-views-tiny-long.toml runs/init-views 0 1 2 3 4
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=$1 out=$2
shift 2
# Each draw is the recipe with its seed line replaced: without one, every draw would be the same.
grep -q '^seed *=' "$recipe" || { echo "$recipe: no 'seed = N' line to vary" >&2; exit 1; }
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
window=$(awk -F' *= *' '/^\[model.series\]/{s=1} s && /^length/{split($2, v, " "); print v[1]; exit}' "$recipe")
# Step 0 reads no pairs, but pretrain opens a corpus whose series cover the window.
"$bin" generate --config generators/s2.toml --length "$window" --samples 100 --seed 0 \
  --out "$out/corpus" --resume >/dev/null
mkdir -p "$out/recipes"
table="$out/random-init.tsv"
[ -f "$table" ] || printf 'seed\tlevels\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n' > "$table"
for seed in "$@"; do
  r="$out/recipes/seed-$seed.toml"
  awk -v seed="$seed" '/^seed *=/ { print "seed = " seed; next } { print }' "$recipe" > "$r"
  run="$out/seed-$seed"
  [ -f "$run/encoder.json" ] ||
    "$bin" pretrain --recipe "$r" --data "$out/corpus" --out "$run" --stop-at 0 >/dev/null
  benches/levels_rows.sh "$bin" "$run" "$seed" | tee -a "$table"
done

#!/usr/bin/env bash
# The last encoder of each KIND's run in OUT (from benches/objective_comparison.sh) read the
# other ways the comparison reports: the linear probe with channel levels (`--levels`), at
# the last layer, beside the random initialisation's (step 0) with levels, and fine-tuning (LP-FT, 30 epochs at most, one seed: the quickstart's
# settings). Rows, after the scaling table's last-step rows, go to OUT/KIND/final.tsv:
#   readout  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean
#
# Usage: benches/objective_final.sh OUT STEP KIND...
#   e.g. benches/objective_final.sh runs/objectives 20000 symtime views timemae fei crosstimenet
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 step=$2
shift 2
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
for kind in "$@"; do
  dir="$out/$kind"
  enc="$dir/encoders/step-$step"
  table="$dir/final.tsv"
  printf 'readout\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n' > "$table"
  awk -F'\t' -v s="$step" '$1 == s { printf "layer %s", $3; for (i = 4; i <= NF; i++) printf "\t%s", $i; print "" }' \
    "$dir/scaling.tsv" >> "$table"
  awk -F'\t' '$1 == 0 { printf "random init, layer %s", $3; for (i = 4; i <= NF; i++) printf "\t%s", $i; print "" }' \
    "$dir/scaling.tsv" >> "$table"
  printf 'last layer + levels%s\n' "$(benches/probe_row.sh "$bin" "$enc" "$enc/levels" --levels)" >> "$table"
  init="$dir/encoders/step-0"
  printf 'random init + levels%s\n' "$(benches/probe_row.sh "$bin" "$init" "$init/levels" --levels)" >> "$table"
  printf 'finetune%s\n' "$(benches/accuracy_row.sh "$bin" "$enc" "$enc/finetune" \
    --protocol finetune --seeds 1 --epochs 30)" >> "$table"
  echo "$kind:" >&2
  cat "$table" >&2
done

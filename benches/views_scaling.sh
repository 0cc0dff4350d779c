#!/usr/bin/env bash
# View contrast, the best objective of the comparison, along the three axes of the scaling
# study: pairs seen (to 2.05M), corpus size (20,000, 200,000 and 1,000,000 `mixed.toml`
# samples, seed 11) and model size (tiny, and the mid-sized tower of pretrain-mini.toml).
# Each leg is benches/scaling_study.sh; the corpora are generated (or resumed) in OUT/cN/corpus
# and the mini run reads the 1M corpus.
#
# Usage: benches/views_scaling.sh OUT [LEG...]
#   legs (default: all but the extra seeds, in this order): c1m c20k mini c200k levels
#   c1m    tiny, 32,000 steps on the 1M corpus, probed at 0 3000 10000 20000 32000
#   c20k   tiny, the same schedule on the 20k corpus, probed at its end
#   mini   the mid-sized tower, 10,000 steps on the 1M corpus, probed at 0 3000 10000
#   c200k  tiny, the same schedule on the 200k corpus, probed at its end
#   c20k-seedN  the c20k leg with training seed N (another initialisation, other batches and
#          views), probed at 0 and at its end: the spread between seeds
#   levels the last encoder of each finished leg (and its random init) read with --levels,
#          rows in OUT/levels.tsv
# Rows as scaling_study.sh's go to OUT/LEG/scaling.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
legs=("$@")
[ ${#legs[@]} -gt 0 ] || legs=(c1m c20k mini c200k levels)
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
tiny=recipes/pretrain-views-tiny-2m.toml mini=recipes/pretrain-views-mini.toml
timed() {
  local leg=$1 start
  shift
  start=$(date +%s)
  S2KIT="$bin" "$@"
  echo "$leg: $(( $(date +%s) - start )) s" | tee -a "$out/wall.txt" >&2
}
mkdir -p "$out"
for leg in "${legs[@]}"; do
  case $leg in
    c1m) timed c1m benches/scaling_study.sh "$tiny" generators/mixed.toml 1000000 "$out/c1m" 0 3000 10000 20000 32000 ;;
    c20k) timed c20k benches/scaling_study.sh "$tiny" generators/mixed.toml 20000 "$out/c20k" 32000 ;;
    c200k) timed c200k benches/scaling_study.sh "$tiny" generators/mixed.toml 200000 "$out/c200k" 32000 ;;
    mini)
      mkdir -p "$out/mini"
      [ -e "$out/mini/corpus" ] || ln -s ../c1m/corpus "$out/mini/corpus"
      KEEP_CORPUS=1 timed mini benches/scaling_study.sh "$mini" generators/mixed.toml 0 "$out/mini" 0 3000 10000 ;;
    levels)
      table="$out/levels.tsv"
      printf 'run\tstep\tGunPoint\tItalyPowerDemand\tBasicMotions\tJapaneseVowels\tmean\n' > "$table"
      seeded=("$out"/c20k-seed*)
      for run in c1m c20k mini c200k "${seeded[@]#"$out"/}"; do
        [ -d "$out/$run" ] || continue
        for enc in "$out/$run"/encoders/step-*; do
          [ -d "$enc" ] || continue
          step=${enc##*step-}
          printf '%s\t%s%s\n' "$run" "$step" \
            "$(benches/probe_row.sh "$bin" "$enc" "$enc/levels" --levels)" | tee -a "$table"
        done
      done ;;
    c20k-seed*)
      seed=${leg#c20k-seed}
      mkdir -p "$out/$leg"
      sed "s/^seed = 0$/seed = $seed/" "$tiny" > "$out/$leg/recipe.toml"
      [ -e "$out/$leg/corpus" ] || ln -s ../c20k/corpus "$out/$leg/corpus"
      KEEP_CORPUS=1 timed "$leg" benches/scaling_study.sh "$out/$leg/recipe.toml" generators/mixed.toml 0 "$out/$leg" 0 32000 ;;
    *) echo "unknown leg $leg (c1m c20k mini c200k levels c20k-seedN)" >&2; exit 2 ;;
  esac
done

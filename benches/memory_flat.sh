#!/usr/bin/env bash
# Peak memory against corpus size: generating 100,000 and 1,000,000 samples of s2.toml, and
# pretraining the tiny recipe for the same number of steps over a 20,000- and a 200,000-sample
# corpus. Flat memory means each pair agrees within 10%. Peak RSS is read from
# `/usr/bin/time -v` ("Maximum resident set size").
#
# Usage: benches/memory_flat.sh [OUT_DIR] [STEPS]   (defaults: target/memory-flat, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/memory-flat}
steps=${2:-200}
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
rm -rf "$out" && mkdir -p "$out"
peak() { # peak LABEL CMD...: runs CMD, prints LABEL and its peak RSS in MiB
  local label=$1
  shift
  /usr/bin/time -v "$@" >/dev/null 2>"$out/time.txt"
  awk -v l="$label" '/Maximum resident set size/ { printf "| %s | %.0f |\n", l, $NF / 1024 }' "$out/time.txt"
}
printf '| run | peak RSS, MiB |\n|---|---|\n'
for n in 100000 1000000; do
  peak "generate s2.toml, $n samples" \
    "$bin" generate --config generators/s2.toml --samples "$n" --seed 1 --out "$out/gen-$n"
  rm -rf "$out/gen-$n"
done
sed "s/^steps = .*/steps = $steps/" recipes/pretrain-tiny.toml >"$out/recipe.toml"
for n in 20000 200000; do
  "$bin" generate --config generators/s2.toml --samples "$n" --seed 2 --out "$out/corpus-$n" >/dev/null
  peak "pretrain tiny, $steps steps, $n-sample corpus" \
    "$bin" pretrain --recipe "$out/recipe.toml" --data "$out/corpus-$n" --out "$out/run-$n"
done

#!/usr/bin/env bash
# Pretraining throughput of each objective, back to back on one corpus: STEPS steps of each
# KIND's comparison recipe (OUT/KIND/recipe.toml from benches/objective_comparison.sh:
# batch 64, the tiny encoder), reporting the median pairs/s of the steps after the first 10
# (the loader's warm-up) from metrics.csv. Prints one line per kind.
#
# Usage: benches/objective_throughput.sh CORPUS OUT STEPS KIND...
#   e.g. benches/objective_throughput.sh runs/long/corpus runs/objectives 60 symtime views timemae fei crosstimenet symtime-views
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=$1 out=$2 steps=$3
shift 3
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for kind in "$@"; do
  "$bin" pretrain --recipe "$out/$kind/recipe.toml" --data "$corpus" --out "$tmp/$kind" \
    --stop-at "$steps" >/dev/null
  python3 - "$tmp/$kind/metrics.csv" "$kind" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[10:]
print(f"{sys.argv[2]}\t{statistics.median(float(r['pairs_per_s']) for r in rows):.0f} pairs/s (median of {len(rows)} steps)")
PY
done

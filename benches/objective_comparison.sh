#!/usr/bin/env bash
# The objectives compared on one corpus, one budget and one encoder: each KIND's tiny recipe
# (recipes/pretrain-KIND-tiny.toml) with the schedule of recipes/pretrain-tiny-long.toml
# (batch 64, 20,000 steps: 1.28M pairs) and its queue length, trained on CORPUS and probed at
# each STEP by benches/scaling_study.sh. The symtime row is recipes/pretrain-tiny-long.toml
# itself; symtime-views is that recipe with the views_* lines of
# recipes/pretrain-symtime-views-tiny.toml. CORPUS is the corpus of the symtime scaling run (runs/long/corpus after
# `benches/scaling_study.sh recipes/pretrain-tiny-long.toml generators/mixed.toml 200000 runs/long ...`).
#
# Usage: benches/objective_comparison.sh CORPUS OUT KIND... -- STEP...
#   e.g. benches/objective_comparison.sh runs/long/corpus runs/objectives views timemae fei -- 0 3000 10000 20000
# Writes OUT/KIND/recipe.toml, OUT/KIND/scaling.tsv (rows as scaling_study.sh's) and
# OUT/KIND/wall.txt (time and pairs/s of the training steps, from metrics.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=$(realpath "$1") out=$2
shift 2
kinds=()
while [ "$1" != "--" ]; do kinds+=("$1"); shift; done
shift
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
long=recipes/pretrain-tiny-long.toml
queue=$(awk -F' *= *' '/^queue_size/{print $2; exit}' "$long")
for kind in "${kinds[@]}"; do
  dir="$out/$kind"
  mkdir -p "$dir"
  if [ "$kind" = symtime ]; then
    cp "$long" "$dir/recipe.toml"
  elif [ "$kind" = symtime-views ]; then
    views=$(grep '^views_' recipes/pretrain-symtime-views-tiny.toml)
    awk -v v="$views" '{ print } /^alpha_ramp_steps/ { print v }' "$long" > "$dir/recipe.toml"
  else
    # The kind's model and [objectives] (a queue as long as the long recipe's), then the long
    # recipe's [train].
    { sed -n '/^\[train\]/q;p' "recipes/pretrain-$kind-tiny.toml" |
        sed "s/^queue_size = [0-9]*/queue_size = $queue/"
      sed -n '/^\[train\]/,$p' "$long"; } > "$dir/recipe.toml"
  fi
  [ -e "$dir/corpus" ] || ln -s "$corpus" "$dir/corpus"
  KEEP_CORPUS=1 S2KIT="$bin" benches/scaling_study.sh "$dir/recipe.toml" generators/mixed.toml 0 "$dir" "$@"
  python3 - "$dir" <<'PY'
import csv, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/pretrain/metrics.csv")))
batch = int(next(l.split("=")[1] for l in open(f"{d}/recipe.toml") if l.startswith("batch_size")))
seconds = sum(batch / float(r["pairs_per_s"]) for r in rows)
with open(f"{d}/wall.txt", "w") as f:
    f.write(f"{len(rows)} steps of batch {batch}: {seconds:.0f} s in training steps, "
            f"{len(rows) * batch / seconds:.0f} pairs/s\n")
PY
done

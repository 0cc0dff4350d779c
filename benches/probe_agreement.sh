#!/usr/bin/env bash
# The linear probe against scikit-learn, on the same features, and MiniRocket against aeon.
#
# Usage: benches/probe_agreement.sh [ENCODER_DIR] [SEEDS]
# For every bundled set: `s2kit embed` writes the features of ENCODER_DIR (default: the
# quickstart's runs/quickstart/pretrain) and of MiniRocket (seed 0); s2kit's own probe
# (`transfer --protocol linear`, and with `--levels`) and scikit-learn's RidgeClassifierCV
# score them; then aeon's
# MiniRocketClassifier runs over SEEDS seeds (default 3) on the raw files. Python packages
# come from PyPI into target/probe-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=${1:-runs/quickstart/pretrain}
seeds=${2:-3}
venv=target/probe-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet h5py numpy scikit-learn aeon
fi
cargo build --quiet --release
bin=target/release/s2kit
out=target/probe-agreement
mkdir -p "$out"
printf '%-18s %-16s %8s %8s %8s\n' dataset model s2kit sklearn diff
for dir in data/ucr/*/; do
  name=$(basename "$dir")
  for label in encoder encoder+levels minirocket; do
    model=$([ "$label" = minirocket ] && echo minirocket || echo "$encoder")
    levels=()
    [ "$label" = encoder+levels ] && levels=(--levels)
    "$bin" embed --model "$model" --dataset "$dir" --out "$out/$name-$label.h5" --force >/dev/null
    "$bin" transfer --model "$model" --dataset "$dir" --protocol linear --seeds 1 "${levels[@]}" \
      --json "$out/$name-$label.json" >/dev/null
    ours=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy_mean'])" "$out/$name-$label.json")
    theirs=$("$venv/bin/python" benches/probe_agreement.py "${levels[@]}" "$out/$name-$label.h5" | awk '{print $2}')
    awk -v n="$name" -v m="$label" -v a="$ours" -v b="$theirs" 'BEGIN{printf "%-18s %-16s %8.4f %8.4f %+8.4f\n", n, m, a, b, a-b}'
  done
done
echo "aeon MiniRocketClassifier, $seeds seeds (accuracy per seed):"
"$venv/bin/python" benches/aeon_minirocket.py "$seeds" data/ucr/*/
echo "s2kit minirocket, $seeds seeds:"
for dir in data/ucr/*/; do
  "$bin" transfer --model minirocket --dataset "$dir" --protocol linear --seeds "$seeds" \
    --json "$out/$(basename "$dir")-minirocket-seeds.json" >/dev/null
  "$venv/bin/python" -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['dataset'], ' '.join('%.4f' % s['scores']['accuracy'] for s in r['seeds']), 'mean %.4f' % r['accuracy_mean'])" "$out/$(basename "$dir")-minirocket-seeds.json"
done

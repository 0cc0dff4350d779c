#!/usr/bin/env bash
# FCN baselines on the bundled UCR/UEA sets: FCN from scratch (3 seeds each), and FCN transfer
# as in Fawaz et al. 2018 (train on a source set, replace the head, fine-tune every layer on
# the target). Writes JSON reports to target/baselines/ and prints a summary table.
#
# Usage: benches/transfer_baselines.sh [SEEDS]
# Epoch budgets (maximum; early stopping on the validation split may end sooner): the default
# 300 (patience 100) for the univariate sets; 60 for BasicMotions and 20 for JapaneseVowels,
# whose channels are encoded one by one (6 x 40 and 12 x 270 series per epoch: about 3x and
# 12x the cost of a GunPoint epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-3}
out=target/baselines
mkdir -p "$out"
cargo build --quiet --release
bin=target/release/s2kit
export RAYON_NUM_THREADS=1   # measured: as fast as 2 threads for FCN on this machine

run() { # name dataset model protocol epochs [extra...]
  local name=$1 data=$2 model=$3 protocol=$4 epochs=$5
  shift 5
  local t0=$SECONDS
  "$bin" transfer --dataset "data/ucr/$data" --model "$model" --protocol "$protocol" \
    --seeds "$seeds" --epochs "$epochs" --json "$out/$name.json" "$@" > "$out/$name.txt"
  echo "$name: $((SECONDS - t0)) s"
}

run GunPoint-fcn-scratch GunPoint fcn scratch 300 --save-encoder "$out/fcn-GunPoint"
run ItalyPowerDemand-fcn-scratch ItalyPowerDemand fcn scratch 300
run BasicMotions-fcn-scratch BasicMotions fcn scratch 60
run JapaneseVowels-fcn-scratch JapaneseVowels fcn scratch 20
run ItalyPowerDemand-fcn-from-GunPoint ItalyPowerDemand "$out/fcn-GunPoint" finetune 300

echo
printf '%-40s %18s %18s\n' run accuracy macro-F1
for f in "$out"/*.json; do
  python3 - "$f" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
name = os.path.basename(sys.argv[1])[:-5]
print(f"{name:40s} {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}    {r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f}")
PY
done

#!/usr/bin/env bash
# Step time of SymTime-style pretraining in candle (s2kit) and PyTorch on CPU: the same
# architecture, batch, token length and thread count, in one run.
#
# Usage: benches/compare_pytorch.sh [STEPS] [ROUNDS]
# Settings: tiny recipe, batch 32, 48 tokens; small recipe, batch 16, 48 tokens; 1 and 2
# threads each. Each program reports its mean step time over STEPS steps (after 2 warm-up
# steps); the two programs run alternately ROUNDS times and the table shows the medians,
# because a shared VM's speed drifts by 10% or more between runs. PyTorch comes from PyPI
# into target/torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
rounds=${2:-3}
venv=target/torch-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
fi
cargo build --quiet --release --example pretrain_step
vocab=$(target/release/examples/pretrain_step --vocab)
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
printf '%-8s %6s %8s %14s %14s %8s\n' recipe batch threads candle_ms torch_ms ratio
for setting in "tiny 32" "small 16"; do
  set -- $setting
  for threads in 1 2; do
    c_all="" t_all=""
    for _ in $(seq "$rounds"); do
      c_all+="$(RAYON_NUM_THREADS=$threads target/release/examples/pretrain_step "recipes/pretrain-$1.toml" "$2" 48 "$steps" | awk '/ms\/step/{print $3}')"$'\n'
      t_all+="$(OMP_NUM_THREADS=$threads "$venv/bin/python" benches/pytorch_step.py "recipes/pretrain-$1.toml" "$2" 48 "$steps" "$threads" "$vocab" | awk '/ms\/step/{print $3}')"$'\n'
    done
    c=$(printf '%s' "$c_all" | median)
    t=$(printf '%s' "$t_all" | median)
    awk -v r="$1" -v b="$2" -v th="$threads" -v c="$c" -v t="$t" 'BEGIN{printf "%-8s %6s %8s %14.1f %14.1f %7.2fx\n", r, b, th, c, t, c/t}'
  done
done

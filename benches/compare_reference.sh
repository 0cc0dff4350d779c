#!/usr/bin/env bash
# Runs the reference generator (PyPI s2generator 0.0.23, in a venv) and s2kit on the same
# settings (L = 256, 1 -> 1 and random dims 1-6 -> 1-12) and prints both rates and their ratio.
#
# Usage: benches/compare_reference.sh [REF_SAMPLES_1TO1] [REF_SAMPLES_MULTI] [S2KIT_SAMPLES]
# Defaults: 200, 30, 40000. The reference runs one process with one BLAS thread; s2kit's
# per-core figure is its single-thread, in-memory rate.
set -euo pipefail
cd "$(dirname "$0")/.."
ref_single=${1:-200}
ref_multi=${2:-30}
ours=${3:-40000}
venv=target/reference-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet s2generator==0.0.23
fi
echo "reference: s2generator 0.0.23, $ref_single requests 1->1, $ref_multi requests multi-dim"
ref=$("$venv/bin/python" benches/reference_throughput.py "$ref_single" "$ref_multi")
echo "$ref"
echo "s2kit: cargo run --release --example generator_throughput -- $ours"
out=$(cargo run --quiet --release --example generator_throughput -- "$ours")
echo "$out"
single=$(echo "$out" | awk '/1 -> 1/{p=1} /1-6 -> 1-12/{p=0} p && /in memory, 1 thread/{print $(NF-1)}')
multi=$(echo "$out" | awk '/1-6 -> 1-12/{p=1} p && /in memory, 1 thread/{print $(NF-1)}')
ref_s=$(echo "$ref" | awk '$1=="1to1"{print $5}')
ref_m=$(echo "$ref" | awk '$1=="multi"{print $5}')
echo
printf '%-12s %14s %14s %10s\n' setting "reference/s" "s2kit/s/core" ratio
awk -v r="$ref_s" -v o="$single" 'BEGIN{printf "%-12s %14.2f %14.0f %9.0fx\n", "1 -> 1", r, o, o/r}'
awk -v r="$ref_m" -v o="$multi" 'BEGIN{printf "%-12s %14.2f %14.0f %9.0fx\n", "1-6 -> 1-12", r, o, o/r}'

#!/usr/bin/env bash
# Two table rows for one encoder: LABEL, "no" or "yes" for --levels, then the linear-probe
# cells of benches/probe_row.sh (each bundled set, then the mean). Reports go to
# MODEL/levels-no-SET.json and MODEL/levels-yes-SET.json.
#
# Usage: benches/levels_rows.sh BIN MODEL LABEL
set -euo pipefail
bin=$1 model=$2 label=$3
for levels in no yes; do
  flag=()
  [ "$levels" = yes ] && flag=(--levels)
  printf '%s\t%s%s\n' "$label" "$levels" \
    "$("$(dirname "$0")/probe_row.sh" "$bin" "$model" "$model/levels-$levels" "${flag[@]}")"
done

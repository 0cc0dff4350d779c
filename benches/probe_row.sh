#!/usr/bin/env bash
# One table row's cells: the linear-probe accuracy of MODEL on each bundled set (one seed; the
# probe is deterministic), then their mean, each after a tab (benches/accuracy_row.sh). The
# reports go to PREFIX-SET.json; further arguments go to `s2kit transfer` (e.g. --layer 1,
# --levels).
#
# Usage: benches/probe_row.sh BIN MODEL PREFIX [TRANSFER_ARGS...]
set -euo pipefail
bin=$1 model=$2 prefix=$3
shift 3
exec "$(dirname "$0")/accuracy_row.sh" "$bin" "$model" "$prefix" --protocol linear --seeds 1 "$@"

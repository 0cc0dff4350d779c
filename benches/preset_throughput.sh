#!/usr/bin/env bash
# Generation throughput per preset on one thread: ok-samples/s and rejected candidates per
# accepted sample, from `s2kit generate --threads 1 --seed 3 --json` (the whole pipeline:
# generation, compressed shards, SHA-256, manifest).
#
# Usage: benches/preset_throughput.sh [SCALE]   (default 1: 20,000 s2, 5,000 s2-multidim,
#        4,000 mixed, 4,000 ode samples; SCALE multiplies them)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-1}
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '| preset | samples | ok-samples/s, 1 thread | rejected per accepted |\n|---|---|---|---|\n'
for spec in s2:20000 s2-multidim:5000 mixed:4000 ode:4000; do
  preset=${spec%%:*}
  n=$(( ${spec##*:} * scale ))
  rm -rf "$out/c"
  "$bin" generate --config "generators/$preset.toml" --samples "$n" --threads 1 --seed 3 \
    --out "$out/c" --json >"$out/summary.json"
  python3 - "$out/summary.json" "$preset" "$n" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rate = d["accepted"] / d["seconds"]
print(f"| `{sys.argv[2]}.toml` | {sys.argv[3]} | {rate:,.0f} | {d['rejected_candidates'] / max(1, d['accepted']):.2f} |")
PY
done

#!/usr/bin/env bash
# Pipeline scaling from 1 to 2 threads on s2.toml: the whole of `s2kit generate` (generation,
# compression, HDF5 writes, fsync, SHA-256, manifest), 1 and 2 threads alternating for
# ROUNDS rounds, so that drift in the machine's speed hits both alike. Prints each run and
# the median ratio of ok-samples/s.
#
# Usage: benches/pipeline_scaling.sh [ROUNDS] [SAMPLES]   (defaults 5, 80000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
n=${2:-80000}
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# $bin generate --config generators/s2.toml --samples $n --seed 3 --threads T --json"
printf 'round\tthreads\tok_samples_per_s\twriter_share\n'
for r in $(seq "$rounds"); do
  for t in 1 2; do
    rm -rf "$out/c"
    "$bin" generate --config generators/s2.toml --samples "$n" --threads "$t" --seed 3 \
      --out "$out/c" --json >"$out/r$r-t$t.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%s\t%s\t%.0f\t%.3f" % (sys.argv[2], sys.argv[3], d["accepted"]/d["seconds"], d["writer_share"]))' \
      "$out/r$r-t$t.json" "$r" "$t"
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rate = lambda r, t: (lambda d: d["accepted"] / d["seconds"])(json.load(open(f"{out}/r{r}-t{t}.json")))
ratios = [rate(r, 2) / rate(r, 1) for r in range(1, rounds + 1)]
print(f"scaling 1 -> 2 threads: median {statistics.median(ratios):.2f}x "
      f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
PY

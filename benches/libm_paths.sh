#!/usr/bin/env bash
# Are shards the same whichever code path glibc's libm picks? glibc chooses its sin, cos, exp,
# log and pow variants by CPU feature (FMA and AVX2 builds, or SSE2 ones), so workers of one
# corpus on different x86-64 machines can run different maths. This generates each preset
# twice on this machine, once as it is and once with GLIBC_TUNABLES hiding FMA and AVX2 from
# glibc, and compares the shards byte for byte; where they differ, it counts the differing
# output rows by sample kind (needs python3 with h5py and numpy, e.g. PYTHON=venv/bin/python).
#
# Usage: benches/libm_paths.sh [SAMPLES]   (default 1500 per preset, seed 3, one thread)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1500}
bin=${S2KIT:-target/release/s2kit}
py=${PYTHON:-python3}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tunables=glibc.cpu.hwcaps=-AVX2,-FMA
echo "# $bin generate --config generators/PRESET.toml --samples $n --seed 3 --threads 1, as is and with GLIBC_TUNABLES=$tunables"
for preset in s2 s2-multidim mixed ode; do
  for path in native sse2; do
    env=()
    [ "$path" = native ] || env=(GLIBC_TUNABLES=$tunables)
    env "${env[@]}" "$bin" generate --config "generators/$preset.toml" --samples "$n" \
      --seed 3 --threads 1 --out "$out/$preset-$path" >/dev/null
  done
  differing=()
  for shard in "$out/$preset-native"/shard-*.h5; do
    twin="$out/$preset-sse2/$(basename "$shard")"
    cmp -s "$shard" "$twin" || differing+=("$shard" "$twin")
  done
  if [ ${#differing[@]} -eq 0 ]; then
    echo "$preset: shards byte-identical"
    continue
  fi
  "$py" - "$preset" "$n" "${differing[@]}" <<'PY'
import sys
import h5py
import numpy as np

preset, n, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
names = {0: "explicit", 1: "ODE"}
samples, rows_by_kind, worst, other = 0, {}, 0.0, set()
for a, b in zip(*[iter(h5py.File(p) for p in paths)] * 2):
    other |= {k for k in a if k != "outputs" and not np.array_equal(a[k][()], b[k][()])}
    x, y = a["outputs"][()], b["outputs"][()]
    if x.shape != y.shape:
        sys.exit(f"{preset}: shards differ in which outputs were accepted: {x.shape} vs {y.shape}")
    rows = np.unique(np.argwhere(x != y)[:, 0])
    owner = np.searchsorted(a["output_offsets"][()], rows, side="right") - 1
    samples += len(np.unique(owner))
    for k in a["kind"][()][owner]:
        rows_by_kind[names[int(k)]] = rows_by_kind.get(names[int(k)], 0) + 1
    for r in rows:
        worst = max(worst, (np.abs(x[r].astype(np.float64) - y[r]) / np.maximum(np.abs(x[r]), 1e-30)).max())
by_kind = ", ".join(f"{v} {k} rows" for k, v in sorted(rows_by_kind.items()))
print(f"{preset}: shards differ; {samples} of {n} sample ids have differing outputs "
      f"({by_kind or 'none'}; largest relative difference {worst:.1e}); "
      f"other datasets that differ: {', '.join(sorted(other)) or 'none'}")
PY
done

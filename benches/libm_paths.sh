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
  if cmp -s "$out/$preset-native/shard-000000.h5" "$out/$preset-sse2/shard-000000.h5"; then
    echo "$preset: shards byte-identical"
    continue
  fi
  "$py" - "$out/$preset-native/shard-000000.h5" "$out/$preset-sse2/shard-000000.h5" "$preset" <<'PY'
import sys
import h5py
import numpy as np

a, b, preset = h5py.File(sys.argv[1]), h5py.File(sys.argv[2]), sys.argv[3]
same = [k for k in a if k != "outputs" and np.array_equal(a[k][()], b[k][()])]
x, y = a["outputs"][()], b["outputs"][()]
if x.shape != y.shape:
    sys.exit(f"{preset}: shards differ in which outputs were accepted: {x.shape} vs {y.shape}")
rows = np.unique(np.argwhere(x != y)[:, 0])
owner = np.searchsorted(a["output_offsets"][()], rows, side="right") - 1
kinds = a["kind"][()][owner]
worst = max((np.abs(x[r].astype(np.float64) - y[r]) / np.maximum(np.abs(x[r]), 1e-30)).max() for r in rows)
names = {0: "explicit", 1: "ODE"}
by_kind = ", ".join(f"{int((kinds == k).sum())} {names[int(k)]} rows" for k in np.unique(kinds))
print(f"{preset}: shards differ; {len(np.unique(owner))} of {len(a['kind'])} samples have differing outputs "
      f"({by_kind}; largest relative difference {worst:.1e}); identical datasets: {', '.join(same)}")
PY
done

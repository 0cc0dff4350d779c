#!/usr/bin/env bash
# Instructions per accepted sample, per preset, on one thread: valgrind's callgrind counts
# instructions, not seconds, so the figure repeats from run to run of one binary whatever
# else the machine does (wall-clock rates here move by up to 30% between runs). With OLD, the
# same runs of a second binary go beside, for a before/after comparison. Under valgrind
# SHA-256 takes its software path, so the counts hold more hashing than a native run.
#
# Usage: benches/preset_instructions.sh [OLD_BINARY]   (S2KIT picks the new binary; default
#        target/release/s2kit. 3,000 s2, 400 s2-multidim, 300 mixed, 600 ode samples.)
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:-}
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -z "$old" ] || [ -x "$old" ] || { echo "$old: not an executable" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Instructions and accepted samples of one run, tab-separated.
count() {
  local binary=$1 preset=$2 n=$3
  rm -rf "$out/c"
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$binary" generate \
    --config "generators/$preset.toml" --samples "$n" --threads 1 --seed 3 --out "$out/c" \
    --json >"$out/summary.json" 2>"$out/valgrind.log"
  local ir
  ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/valgrind.log")
  python3 -c 'import json,sys; print(sys.argv[2] + "\t" + str(json.load(open(sys.argv[1]))["accepted"]))' \
    "$out/summary.json" "$ir"
}

echo "# valgrind --tool=callgrind BINARY generate --config generators/PRESET.toml --samples N --threads 1 --seed 3 --json"
if [ -n "$old" ]; then
  printf '| preset | samples | instructions per accepted sample, %s | %s | change |\n|---|---|---|---|---|\n' "$old" "$bin"
else
  printf '| preset | samples | instructions per accepted sample |\n|---|---|---|\n'
fi
for spec in s2:3000 s2-multidim:400 mixed:300 ode:600; do
  preset=${spec%%:*} n=${spec##*:}
  read -r ir ok < <(count "$bin" "$preset" "$n")
  if [ -n "$old" ]; then
    read -r ir_old ok_old < <(count "$old" "$preset" "$n")
    python3 -c 'import sys; p, n, a, b, c, d = sys.argv[1:]; x, y = int(a) / int(b), int(c) / int(d)
print(f"| `{p}.toml` | {n} | {x / 1e6:.3f} M | {y / 1e6:.3f} M | {100 * (y / x - 1):+.1f}% |")' \
      "$preset" "$n" "$ir_old" "$ok_old" "$ir" "$ok"
  else
    python3 -c 'import sys; p, n, a, b = sys.argv[1:]; print(f"| `{p}.toml` | {n} | {int(a) / int(b) / 1e6:.3f} M |")' \
      "$preset" "$n" "$ir" "$ok"
  fi
done

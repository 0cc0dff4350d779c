#!/usr/bin/env bash
# The per-core targets of issue 13 were set on another machine, measured with the binary of
# commit 76eca8d (s2.toml 17,424, s2-multidim.toml 2,447 ok-samples/s). This runs that binary
# and the current one alternately here, one thread, seed 3, on the presets of their own
# checkouts, so that drift in this machine's speed hits both alike, and prints each run and,
# per preset, the median ratio current / baseline: the issue's rate times that ratio is what
# the current binary would do on the issue's machine, if the two scale alike.
#
# Usage: benches/against_issue_baseline.sh BASELINE_CHECKOUT [ROUNDS]   (default 5 rounds)
#   BASELINE_CHECKOUT: a checkout of 76eca8d with target/release/s2kit built, e.g.
#     git worktree add /tmp/wt-76 76eca8d && (cd /tmp/wt-76 && cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BASELINE_CHECKOUT [ROUNDS]" >&2; exit 2; }
base=$1
rounds=${2:-5}
[ -x "$base/target/release/s2kit" ] || { echo "$base/target/release/s2kit: not built" >&2; exit 1; }
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# BINARY generate --config CHECKOUT/generators/PRESET.toml --samples N --seed 3 --threads 1 --json"
printf 'round\tpreset\tbaseline_ok_per_s\tcurrent_ok_per_s\n'
for r in $(seq "$rounds"); do
  for spec in s2:20000 s2-multidim:5000; do
    preset=${spec%%:*} n=${spec##*:}
    for side in baseline current; do
      if [ "$side" = baseline ]; then b=$base/target/release/s2kit dir=$base; else b=$bin dir=.; fi
      rm -rf "$out/c"
      "$b" generate --config "$dir/generators/$preset.toml" --samples "$n" --threads 1 --seed 3 \
        --out "$out/c" --json >"$out/$r-$preset-$side.json"
    done
    python3 -c 'import json,sys; r=lambda s: (lambda d: d["accepted"]/d["seconds"])(json.load(open(s)))
print("%s\t%s\t%.0f\t%.0f" % (sys.argv[3], sys.argv[4], r(sys.argv[1]), r(sys.argv[2])))' \
      "$out/$r-$preset-baseline.json" "$out/$r-$preset-current.json" "$r" "$preset"
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
issue = {"s2": 17424, "s2-multidim": 2447}
rate = lambda f: (lambda d: d["accepted"] / d["seconds"])(json.load(open(f)))
for preset, at_issue in issue.items():
    ratios = [rate(f"{out}/{r}-{preset}-current.json") / rate(f"{out}/{r}-{preset}-baseline.json")
              for r in range(1, rounds + 1)]
    m = statistics.median(ratios)
    print(f"{preset}: current / baseline, median {m:.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"times the issue's {at_issue:,}/s: {at_issue * m:,.0f}/s")
PY

#!/usr/bin/env bash
# The native-resolution readout on series longer than the encoder's window, which none of the
# bundled sets is. Two such UCR sets ship inside aeon's wheel (PyPI): ACSF1 (1,460 points,
# 10 classes, 100/100 cases) and OSULeaf (427 points, 6 classes, 200/242). The script takes
# their .ts files from the wheel (no install), then probes each MODEL resampled to the window
# (the default) and at native resolution (--native: windows of 256 points, readouts averaged),
# without and with levels, and MiniRocket beside them. Rows go to stdout:
#   model  readout  ACSF1  OSULeaf  mean
# Reports go to OUT/NAME-READOUT-SET.json; the sets to OUT/data/.
#
# Usage: benches/long_series.sh OUT MODEL...
#   e.g. benches/long_series.sh runs/long-series models/views-mixed-1m models/tiny-mixed-1m
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
bin=${S2KIT:-target/release/s2kit}
[ -n "${S2KIT:-}" ] || cargo build --quiet --release
sets=(ACSF1 OSULeaf)
mkdir -p "$out/data" target/aeon-wheel
wheel=$(ls target/aeon-wheel/aeon-1.6.0-*.whl 2>/dev/null || true)
if [ -z "$wheel" ]; then
  python3 -m pip download --quiet --no-deps --dest target/aeon-wheel aeon==1.6.0
  wheel=$(ls target/aeon-wheel/aeon-1.6.0-*.whl)
fi
for set in "${sets[@]}"; do
  mkdir -p "$out/data/$set"
  for split in TRAIN TEST; do
    unzip -o -q -j "$wheel" "aeon/datasets/data/$set/${set}_$split.ts" -d "$out/data/$set"
  done
done
row() {
  local model=$1 prefix=$2
  shift 2
  local sum=0 acc
  for set in "${sets[@]}"; do
    "$bin" transfer --model "$model" --dataset "$out/data/$set" --protocol linear "$@" \
      --json "$prefix-$set.json" >/dev/null
    acc=$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['accuracy_mean'])" "$prefix-$set.json")
    printf '\t%s' "$acc"
    sum=$(python3 -c "print($sum + $acc)")
  done
  printf '\t%.4f' "$(python3 -c "print($sum / ${#sets[@]})")"
}
printf 'model\treadout\t%s\t%s\tmean\n' "${sets[@]}"
printf 'minirocket\t%s\n' "$(row minirocket "$out/minirocket")"
for model in "$@"; do
  name=$(echo "$model" | tr '/' '_')
  for readout in "resampled" "native"; do
    args=()
    [ "$readout" = native ] && args=(--native)
    for levels in "" "--levels"; do
      printf '%s\t%s%s%s\n' "$model" "$readout" "${levels:+ + levels}" \
        "$(row "$model" "$out/$name-$readout${levels:+-levels}" "${args[@]}" $levels)"
    done
  done
done

#!/usr/bin/env bash
# Hostile sweep: throws bad, huge, corrupt and concurrent input at the s2kit CLI and checks
# that every try ends the way a hardened command line should.
#
#   benches/hostile_sweep.sh [path/to/s2kit]          (default: target/release/s2kit)
#
# Each try runs in its own scratch directory under one mktemp -d directory (removed at the end;
# KEEP=1 keeps it), under `timeout $TIMEOUT` (default 60 s), `ulimit -v $MEM_LIMIT_KB` (default
# 6000000 KiB, so a runaway allocation aborts instead of taking the machine's memory) and
# `nice -n $NICE` (default 10). ONLY=REGEX runs only the tries whose names match (and the
# control tries, which build the shared fixtures).
# Per try it records the exit code, whether stderr shows a panic ("panicked"/"RUST_BACKTRACE"),
# whether the process died by a signal or the timeout (rc 124 or rc >= 128), and how many
# non-empty lines stderr has. Expectations (the "expected" column, kind[:detail]):
#
#   error   non-zero exit, no panic, no signal, exactly one stderr line starting with "error"
#   usage   rejected by the argument parser: exit 2 and "error:" first (clap adds usage lines)
#   ok      exit 0, no panic
#   clean   either ok, or a refusal that satisfies `error`; never a panic, signal or timeout
#
# A detail after the colon names an extra check made by the try (e.g. `error:in use` also
# wants "in use" in the message). At the end: a table (name, expected, rc, verdict, first line
# of stderr), the notes some tries record (accuracies, wall times), "N of M behaved", and a
# non-zero exit status if any try failed. Needs bash, coreutils, awk and python3.
# Sized for 2 cores: tiny corpora (<= 5,000 samples), 4-step recipes, one CPU-heavy process at
# a time except in the two concurrency tries; a few minutes in all, most of it in tries that
# run into the timeout.

set -u
export LC_ALL=C
unset RUST_BACKTRACE RUST_LIB_BACKTRACE # panics then say "run with RUST_BACKTRACE=1"

BIN=${1:-target/release/s2kit}
if [[ ! -x $BIN ]]; then
  echo "hostile_sweep: no executable s2kit at '$BIN' (pass its path as \$1)" >&2
  exit 2
fi
BIN=$(realpath "$BIN")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIMEOUT=${TIMEOUT:-60}
MEM_KB=${MEM_LIMIT_KB:-6000000}
NICE=${NICE:-10} # the tries yield to other work on the machine
command -v python3 >/dev/null || { echo "hostile_sweep: python3 is needed" >&2; exit 2; }

WORK=$(mktemp -d -t s2kit-hostile.XXXXXX)
RESULTS=$WORK/results.tsv
FIX=$WORK/fixtures
PIDS=$WORK/pids
mkdir -p "$FIX" "$WORK/tries"
: >"$RESULTS"
: >"$PIDS"
cleanup() {
  local pid
  # Background processes that concurrency tries started and normally ended themselves; only
  # those still running this binary (timeout passes the signal on to its s2kit).
  while read -r pid; do
    grep -qaF -- "$BIN" "/proc/$pid/cmdline" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done <"$PIDS"
  if [[ ${KEEP:-0} == 1 ]]; then echo "scratch kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

GEN=$REPO/generators
IPD=$REPO/data/ucr/ItalyPowerDemand
MODEL=$REPO/models/tiny-mixed-1m
START=$SECONDS

# ---------------------------------------------------------------------------------------------
# Machinery
# ---------------------------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# x CMD...: runs one command of a try in the current directory, limited in time and memory;
# stdout goes to ./out, stderr to ./err. Sets RC and SECS.
x() {
  local t0
  t0=$(now)
  (
    ulimit -v "$MEM_KB" 2>/dev/null
    ulimit -c 0
    nice -n "$NICE" timeout -k 5 "$TIMEOUT" "$@" >out 2>err </dev/null
  ) 2>/dev/null # the subshell's own "Aborted"/"Killed" notices
  RC=$?
  SECS=$(elapsed "$t0")
}

# xbg TAG CMD...: the same in the background, into TAG.out, TAG.err and TAG.rc.
xbg() {
  local tag=$1
  shift
  (
    (
      ulimit -v "$MEM_KB" 2>/dev/null
      ulimit -c 0
      echo "$BASHPID" >>"$PIDS"
      exec nice -n "$NICE" timeout -k 5 "$TIMEOUT" "$@" >"$tag.out" 2>"$tag.err" </dev/null
    ) 2>/dev/null
    echo $? >"$tag.rc"
  ) &
}

# start_raw TAG CMD...: starts CMD itself in the background (no timeout wrapper, so that $!
# is the s2kit process and can be killed); sets BGPID. The caller must kill or wait for it.
start_raw() {
  local tag=$1
  shift
  (
    ulimit -v "$MEM_KB" 2>/dev/null
    ulimit -c 0
    exec nice -n "$NICE" "$@" >"$tag.out" 2>"$tag.err" </dev/null # nice execs: $! stays the pid
  ) &
  BGPID=$!
  echo "$BGPID" >>"$PIDS"
}

first_line() { # first non-empty line of a file, carriage returns flattened, shortened
  tr '\r' '\n' <"$1" 2>/dev/null | grep -m1 . | cut -c1-110
}
stderr_lines() { tr '\r' '\n' <"$1" 2>/dev/null | grep -c .; }

# reasons KIND RC ERRFILE: prints why the outcome breaks KIND (nothing if it conforms).
reasons() {
  local kind=$1 rc=$2 err=$3 r=() lines first
  lines=$(stderr_lines "$err")
  first=$(first_line "$err")
  if grep -q panicked "$err" 2>/dev/null; then
    r+=(panic)
  elif grep -q RUST_BACKTRACE "$err" 2>/dev/null; then
    r+=("backtrace note") # e.g. "memory allocation of N bytes failed", then abort
  fi
  if ((rc == 124)); then
    r+=(timeout)
  elif ((rc >= 128)); then
    r+=("signal $((rc - 128))")
  fi
  case $kind in
  error)
    ((rc == 0)) && r+=("exit 0")
    ((rc != 0 && lines != 1)) && r+=("$lines stderr lines")
    ((rc != 0)) && ! [[ $first =~ ^(error|Error|ERROR) ]] && r+=("no error line")
    ;;
  usage)
    ((rc != 2)) && r+=("exit $rc, not 2")
    [[ $first =~ ^error ]] || r+=("no error line")
    ;;
  ok)
    ((rc != 0)) && r+=("exit $rc")
    ;;
  clean)
    if ((rc != 0 && rc < 124)); then
      ((lines != 1)) && r+=("$lines stderr lines")
      [[ $first =~ ^(error|Error|ERROR) ]] || r+=("no error line")
    fi
    ;;
  esac
  local IFS=,
  echo "${r[*]}"
}

# row NAME EXPECTED RC VERDICT FIRST NOTE: appends one result and prints a progress line.
row() {
  local f=("$@") i
  for i in "${!f[@]}"; do f[i]=${f[i]//$'\t'/ }; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${f[@]}" >>"$RESULTS"
  printf '  %-34s %-5s %s\n' "$1" "$3" "$4" >&2
}

# judge EXPECTED [EXTRA_REASON] [NOTE]: classifies the last x of the current try against
# EXPECTED (kind[:detail]); EXTRA_REASON, when not empty, is a failed try-specific check.
judge() {
  local expect=$1 extra=${2:-} note=${3:-} r
  r=$(reasons "${expect%%:*}" "$RC" err)
  [[ -n $extra ]] && r=${r:+$r,}$extra
  row "$TRY" "$expect" "$RC" "$([[ -z $r ]] && echo OK || echo "FAIL: $r")" "$(first_line err)" "$note"
}

# sweep NAME FUNCTION: runs one try in its own scratch directory, in a subshell so that no try
# can stop the sweep; a try that records nothing (its setup broke) is recorded as failed.
sweep() {
  local name=$1 fn=$2 dir=$WORK/tries/$1
  [[ -z ${ONLY:-} || $name == control_* || $name =~ $ONLY ]] || return 0
  mkdir -p "$dir"
  (cd "$dir" && TRY=$name && "$fn") </dev/null
  grep -q "^$name	" "$RESULTS" || row "$name" "?" "-" "FAIL: the try's setup broke" "" ""
}

# try NAME EXPECTED CMD...: a try that is a single command.
_try_body() { x "${TRY_CMD[@]}"; judge "$TRY_EXPECT"; }
try() {
  TRY_EXPECT=$2
  TRY_CMD=("${@:3}")
  sweep "$1" _try_body
}

# Helpers for building broken inputs.
set_key() { # set_key FILE KEY VALUE: rewrites the line `KEY = ...` of a TOML file
  sed -i "s|^$2 = .*|$2 = $3|" "$1"
  grep -qxF "$2 = $3" "$1"
}
json_edit() { # json_edit FILE PYTHON: runs PYTHON with the parsed file as `m`, writes it back
  python3 - "$1" "$2" <<'EOF'
import json, sys
path, code = sys.argv[1], sys.argv[2]
m = json.load(open(path))
exec(code)
json.dump(m, open(path, "w"), indent=2)
EOF
}
flip_byte() { # flip_byte FILE: inverts the byte in the middle of FILE
  python3 - "$1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(b)
EOF
}
dataset() { # dataset NAME [SOURCE_DIR]: copies a UCR set into ./NAME/NAME_{TRAIN,TEST}.ts
  local name=$1 src=${2:-$IPD} base
  base=$(basename "$src")
  mkdir -p "$name"
  cp "$src/${base}_TRAIN.ts" "$name/${name}_TRAIN.ts"
  cp "$src/${base}_TEST.ts" "$name/${name}_TEST.ts"
}
mean_accuracy() { awk '$1 == "mean" { print $2; exit }' out; }
pipeline_recipe() { # pipeline_recipe OUT SEED DATASET: a tiny `s2kit run` recipe on stdout
  cat <<EOF
out = "$1"

[generate]
preset = "$GEN/s2.toml"
samples = 200
seed = $2
shard_size = 50

[pretrain]
recipe = "$FIX/recipe.toml"
steps = 4

[transfer]
datasets = ["$3"]
seeds = 1
epochs = 2
fcn_epochs = 2
EOF
}

# ---------------------------------------------------------------------------------------------
# Fixtures, shared read-only by the tries (each try copies what it modifies). Their commands
# are recorded as control tries: they must succeed, or the tries built on them say little.
# ---------------------------------------------------------------------------------------------

echo "s2kit hostile sweep: $BIN (scratch $WORK, timeout ${TIMEOUT}s, memory ${MEM_KB} KiB)" >&2

# A 4-step version of the tiny recipe that checkpoints every 2 steps.
cp "$REPO/recipes/pretrain-tiny.toml" "$FIX/recipe.toml" &&
  set_key "$FIX/recipe.toml" steps 4 && set_key "$FIX/recipe.toml" checkpoint_every 2 &&
  set_key "$FIX/recipe.toml" warmup_steps 1 && set_key "$FIX/recipe.toml" alpha_ramp_steps 2 ||
  echo "hostile_sweep: could not write the tiny recipe; the pretrain tries will fail" >&2
try control_generate ok "$BIN" generate --config "$GEN/s2.toml" --samples 200 --shard-size 50 --out "$FIX/corpus"
try control_generate_seed5 ok "$BIN" generate --config "$GEN/s2.toml" --samples 200 --shard-size 50 --seed 5 --out "$FIX/corpus5"
try control_inspect_verify ok "$BIN" inspect --verify "$FIX/corpus"
try control_pretrain ok "$BIN" pretrain --recipe "$FIX/recipe.toml" --data "$FIX/corpus" --out "$FIX/run-done"
try control_pretrain_stop_at_2 ok "$BIN" pretrain --recipe "$FIX/recipe.toml" --data "$FIX/corpus" --out "$FIX/run-half" --stop-at 2
try control_transfer_minirocket ok "$BIN" transfer --dataset "$IPD" --model minirocket --protocol linear --seeds 1
try control_embed ok "$BIN" embed --dataset "$IPD" --model "$MODEL" --out features.h5
try control_plot ok "$BIN" plot "$FIX/corpus" --out samples.png

# ---------------------------------------------------------------------------------------------
# generate: numeric flags at 0, -1, nan, huge; workers out of range; bad --out.
# ---------------------------------------------------------------------------------------------

S2=$GEN/s2.toml
U64=18446744073709551615
try gen_samples_0 error "$BIN" generate --config "$S2" --samples 0 --out o
try gen_samples_neg usage "$BIN" generate --config "$S2" --samples=-1 --out o
try gen_samples_nan usage "$BIN" generate --config "$S2" --samples=nan --out o
try gen_samples_1e15 error "$BIN" generate --config "$S2" --samples 1000000000000000 --out o
try gen_samples_u64max error "$BIN" generate --config "$S2" --samples $U64 --out o
try gen_samples_and_shard_u64max error "$BIN" generate --config "$S2" --samples $U64 --shard-size $U64 --out o
try gen_shard_size_0 error "$BIN" generate --config "$S2" --samples 20 --shard-size 0 --out o
try gen_shard_size_u64max ok "$BIN" generate --config "$S2" --samples 20 --shard-size $U64 --out o
try gen_length_u64max error "$BIN" generate --config "$S2" --samples 20 --length $U64 --out o
try gen_length_1e9 error "$BIN" generate --config "$S2" --samples 2 --threads 1 --length 1000000000 --out o
try gen_length_0 error "$BIN" generate --config "$S2" --samples 20 --length 0 --out o
try gen_length_1 error "$BIN" generate --config "$S2" --samples 20 --length 1 --out o
try gen_length_neg usage "$BIN" generate --config "$S2" --samples 20 --length=-1 --out o
try gen_threads_100000 clean "$BIN" generate --config "$S2" --samples 20 --threads 100000 --out o
try gen_threads_neg usage "$BIN" generate --config "$S2" --samples 20 --threads=-1 --out o
try gen_worker_out_of_range error "$BIN" generate --config "$S2" --samples 20 --worker 3 --workers 2 --out o
try gen_workers_0 error "$BIN" generate --config "$S2" --samples 20 --workers 0 --out o
try gen_workers_u32max ok "$BIN" generate --config "$S2" --samples 20 --workers 4294967295 --out o
try gen_seed_u64max ok "$BIN" generate --config "$S2" --samples 20 --seed $U64 --out o
try gen_seed_neg usage "$BIN" generate --config "$S2" --samples 20 --seed=-1 --out o
try gen_compression_bogus usage "$BIN" generate --config "$S2" --samples 20 --compression zstd --out o

# --out: a file, below a file, a non-empty directory; --resume into a directory that holds
# no corpus; --resume of a finished corpus with other arguments.
t_out_file() { echo hi >afile; x "$BIN" generate --config "$S2" --samples 20 --out afile; judge error; }
t_out_below_file() { echo hi >afile; x "$BIN" generate --config "$S2" --samples 20 --out afile/sub; judge error; }
t_out_nonempty() {
  mkdir o && echo keep >o/notes.txt
  x "$BIN" generate --config "$S2" --samples 20 --out o
  judge error "$([[ $(ls o) == notes.txt ]] || echo "wrote into it")"
}
t_resume_foreign() {
  mkdir o && echo keep >o/notes.txt
  x "$BIN" generate --config "$S2" --samples 20 --out o --resume
  judge error
}
t_resume_other_seed() {
  cp -r "$FIX/corpus" c
  x "$BIN" generate --config "$S2" --samples 200 --shard-size 50 --seed 3 --out c --resume
  judge error
}
sweep gen_out_is_file t_out_file
sweep gen_out_below_file t_out_below_file
sweep gen_out_nonempty_no_resume t_out_nonempty
sweep gen_resume_into_foreign_dir t_resume_foreign
sweep gen_resume_other_seed t_resume_other_seed

# ---------------------------------------------------------------------------------------------
# generate: presets with inf, nan, zero, absurd sizes, bounds nothing can meet, bad keys.
# ---------------------------------------------------------------------------------------------

# preset_try NAME EXPECTED SOURCE KEY VALUE: SOURCE preset with `KEY = VALUE`, then generate.
preset_try() {
  P_SRC=$3 P_KEY=$4 P_VAL=$5
  TRY_EXPECT=$2
  sweep "$1" _preset_body
}
_preset_body() {
  cp "$GEN/$P_SRC" p.toml && set_key p.toml "$P_KEY" "$P_VAL" || return
  x "$BIN" generate --config p.toml --samples 50 --threads 1 --out o
  judge "$TRY_EXPECT"
}
preset_try preset_kinds_ode_inf error mixed.toml ode inf
preset_try preset_kinds_explicit_nan error mixed.toml explicit nan
preset_try preset_max_condition_nan error s2.toml max_condition nan
preset_try preset_max_condition_0 error s2.toml max_condition 0.0
# min_rel_std above any std: every candidate is "near-constant", so every sample fails.
preset_try preset_every_sample_rejected error s2.toml min_rel_std 1e300
preset_try preset_input_scale_inf error s2.toml input_scale "[0.0, inf]"
preset_try preset_outputs_1e9 error s2.toml outputs "[1, 1000000000]"
preset_try preset_mixture_k_max_1e9 error s2.toml k_max 1000000000
preset_try preset_arma_p_max_1e9 error s2.toml p_max 1000000000
preset_try preset_ode_rtol_inf error ode.toml rtol inf
preset_try preset_length_string error s2.toml length '"long"'
t_preset_unknown_key() {
  printf 'length = 64\nbogus_key = 3\n' >p.toml
  x "$BIN" generate --config p.toml --samples 20 --out o
  judge error "$(grep -q bogus_key err || echo "key not named")"
}
sweep preset_unknown_key t_preset_unknown_key
try preset_missing error "$BIN" generate --config no-such-preset.toml --samples 20 --out o
try preset_is_a_directory error "$BIN" generate --config "$GEN" --samples 20 --out o

# ---------------------------------------------------------------------------------------------
# generate --resume twice at once on one partial corpus: one must finish, the other must be
# refused with "in use".
# ---------------------------------------------------------------------------------------------

t_gen_concurrent_resume() {
  local args=(generate --config "$GEN/mixed.toml" --samples 400 --shard-size 20 --threads 1 --out c)
  local i why=() a b
  start_raw first "$BIN" "${args[@]}" # about 7 s of work on one core; killed midway
  for i in $(seq 150); do
    (($(ls c/shard-*.h5 2>/dev/null | wc -l) >= 4)) && break
    sleep 0.1
  done
  kill -9 "$BGPID" 2>/dev/null
  wait "$BGPID" 2>/dev/null
  xbg a "$BIN" "${args[@]}" --resume
  xbg b "$BIN" "${args[@]}" --resume
  wait
  a=$(cat a.rc) b=$(cat b.rc)
  local winner=a loser=b
  ((a != 0)) && winner=b loser=a
  if ((a != 0 && b != 0)); then
    why+=("both failed")
  elif ((a == 0 && b == 0)); then
    why+=("both ran")
  else
    r=$(reasons error "$(cat $loser.rc)" $loser.err)
    [[ -n $r ]] && why+=("$r")
    grep -qi "in use" $loser.err || why+=("no 'in use'")
  fi
  r=$(reasons clean "$(cat $winner.rc)" $winner.err)
  [[ -n $r ]] && why+=("$r")
  local IFS=,
  row "$TRY" "error:in use" "$a/$b" "$([[ ${#why[@]} == 0 ]] && echo OK || echo "FAIL: ${why[*]}")" \
    "$(first_line $loser.err)" ""
}
sweep gen_concurrent_resume t_gen_concurrent_resume

# ---------------------------------------------------------------------------------------------
# Corpus edits on a finished corpus (200 samples, 4 shards of 50), read back by inspect,
# inspect --verify, pretrain and merge.
# ---------------------------------------------------------------------------------------------

# manifest_try NAME PYTHON: edits a copy's manifest (as `m`), then inspect --verify.
# With a third argument, shard 0 is also copied to that path (relative to c/..).
manifest_try() { M_CODE=$2 M_COPY=${3:-}; sweep "$1" _manifest_body; }
_manifest_body() {
  cp -r "$FIX/corpus" c && json_edit c/manifest.json "$M_CODE" || return
  [[ -z $M_COPY ]] || cp c/shard-000000.h5 "$M_COPY" || return
  x "$BIN" inspect --verify c
  judge error
}
manifest_try manifest_shard_listed_twice 'm["shards"][3] = dict(m["shards"][0])'
manifest_try manifest_shard_appended_twice 'm["shards"].append(dict(m["shards"][0]))'
manifest_try manifest_shard_samples_changed 'm["shards"][1]["samples"] = 49'
manifest_try manifest_total_samples_changed 'm["samples"] = 300'
manifest_try manifest_format_version_999 'm["format_version"] = 999'
# A shard outside the corpus directory, with the right checksum: it must not be read.
manifest_try manifest_file_dotdot 'm["shards"][0]["file"] = "../x.h5"' x.h5
t_manifest_truncated() {
  cp -r "$FIX/corpus" c && head -c 300 "$FIX/corpus/manifest.json" >c/manifest.json
  x "$BIN" inspect c
  judge error
}
sweep manifest_truncated t_manifest_truncated
t_flipped_verify() {
  cp -r "$FIX/corpus" c && flip_byte c/shard-000001.h5 || return
  x "$BIN" inspect --verify c
  judge error
}
t_flipped_pretrain() {
  cp -r "$FIX/corpus" c && flip_byte c/shard-000001.h5 || return
  x "$BIN" pretrain --recipe "$FIX/recipe.toml" --data c --out run
  judge error
}
t_truncated_pretrain() {
  cp -r "$FIX/corpus" c && truncate -s 60000 c/shard-000002.h5 || return
  x "$BIN" pretrain --recipe "$FIX/recipe.toml" --data c --out run
  judge error
}
sweep shard_flipped_byte_verify t_flipped_verify
sweep shard_flipped_byte_pretrain t_flipped_pretrain
sweep shard_truncated_pretrain t_truncated_pretrain

# merge: a part that names a deleted shard; parts of two different corpora; a worker missing.
workers_corpus() { # workers_corpus DIR [SEED_OF_WORKER_1]
  "$BIN" generate --config "$S2" --samples 200 --shard-size 50 --worker 0 --workers 2 --out "$1" >/dev/null 2>&1 &&
    "$BIN" generate --config "$S2" --samples 200 --shard-size 50 --worker 1 --workers 2 \
      --seed "${2:-0}" --out "$1" --resume >/dev/null 2>&1
}
t_merge_missing_shard() {
  workers_corpus w && rm w/shard-000001.h5 || return
  x "$BIN" merge w
  judge error
}
t_merge_mixed_parts() { workers_corpus w 9 || return; x "$BIN" merge w; judge error; }
t_merge_missing_part() {
  "$BIN" generate --config "$S2" --samples 200 --shard-size 50 --worker 0 --workers 2 --out w >/dev/null 2>&1 || return
  x "$BIN" merge w
  judge error
}
t_pretrain_unmerged() {
  workers_corpus w || return
  x "$BIN" pretrain --recipe "$FIX/recipe.toml" --data w --out run
  judge error
}
sweep merge_part_names_missing_shard t_merge_missing_shard
sweep merge_parts_of_two_corpora t_merge_mixed_parts
sweep merge_worker_part_missing t_merge_missing_part
sweep pretrain_on_unmerged_parts t_pretrain_unmerged
try inspect_missing_dir error "$BIN" inspect no-such-corpus
try merge_finished_corpus error "$BIN" merge "$FIX/corpus"

# ---------------------------------------------------------------------------------------------
# plot: counts 0, huge, u64; panel counts; --out a directory or without extension.
# ---------------------------------------------------------------------------------------------

t_plot_count_100000() { # a corpus with more rows than any picture can hold
  "$BIN" generate --config "$S2" --samples 5000 --length 16 --shard-size 5000 --out big >/dev/null 2>&1 || return
  x "$BIN" plot big --count 100000 --out p.png
  judge clean
}
sweep plot_count_100000 t_plot_count_100000
try plot_count_0 error "$BIN" plot "$FIX/corpus" --count 0 --out p.png
try plot_count_u64max clean "$BIN" plot "$FIX/corpus" --count $U64 --out p.png
try plot_count_neg usage "$BIN" plot "$FIX/corpus" --count=-1 --out p.png
try plot_max_outputs_0 error "$BIN" plot "$FIX/corpus" --max-outputs 0 --out p.png
try plot_max_outputs_100000 clean "$BIN" plot "$FIX/corpus" --max-outputs 100000 --out p.png
t_plot_out_dir() { mkdir d; x "$BIN" plot "$FIX/corpus" --out d; judge error; }
sweep plot_out_is_directory t_plot_out_dir
try plot_out_no_extension clean "$BIN" plot "$FIX/corpus" --out samples
try plot_out_missing_parent error "$BIN" plot "$FIX/corpus" --out no/such/dir/p.png

# ---------------------------------------------------------------------------------------------
# pretrain: resume a finished run backwards, with other data, from a corrupt checkpoint;
# recipes that cannot train; a run directory in use by another pretrain.
# ---------------------------------------------------------------------------------------------

R=$FIX/recipe.toml
t_resume_stop_before() {
  cp -r "$FIX/run-done" run || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --resume --stop-at 1
  judge error
}
t_resume_finished() {
  cp -r "$FIX/run-done" run || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --resume
  judge "clean:no 0.0 loss" "$(grep -q 'final loss 0.0000' out err && echo "reports loss 0.0000")"
}
t_resume_other_data() {
  cp -r "$FIX/run-half" run || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus5" --out run --resume
  judge error
}
t_resume_flipped_checkpoint() {
  cp -r "$FIX/run-half" run && flip_byte run/checkpoint/online.safetensors || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --resume
  judge error
}
t_resume_truncated_state() {
  cp -r "$FIX/run-half" run && truncate -s 100 run/checkpoint/state.json || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --resume
  judge error
}
t_resume_changed_recipe() {
  cp -r "$FIX/run-half" run && cp "$R" r.toml && set_key r.toml lr 5e-4 || return
  x "$BIN" pretrain --recipe r.toml --data "$FIX/corpus" --out run --resume
  judge error
}
t_fresh_into_run() {
  cp -r "$FIX/run-done" run || return
  x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run
  judge error
}
sweep pretrain_resume_stop_at_before t_resume_stop_before
sweep pretrain_resume_finished t_resume_finished
sweep pretrain_resume_other_data t_resume_other_data
sweep pretrain_resume_flipped_checkpoint t_resume_flipped_checkpoint
sweep pretrain_resume_truncated_state t_resume_truncated_state
sweep pretrain_resume_changed_recipe t_resume_changed_recipe
sweep pretrain_fresh_into_existing_run t_fresh_into_run

# recipe_try NAME EXPECTED KEY VALUE [KEY VALUE...]: the tiny recipe edited, then pretrain.
recipe_try() {
  TRY_EXPECT=$2
  RECIPE_EDITS=("${@:3}")
  sweep "$1" _recipe_body
}
_recipe_body() {
  cp "$R" r.toml || return
  local i
  for ((i = 0; i < ${#RECIPE_EDITS[@]}; i += 2)); do
    set_key r.toml "${RECIPE_EDITS[i]}" "${RECIPE_EDITS[i + 1]}" || return
  done
  x "$BIN" pretrain --recipe r.toml --data "$FIX/corpus" --out run
  judge "$TRY_EXPECT"
}
recipe_try pretrain_all_objective_weights_0 error mpm_weight 0.0 mlm_weight 0.0 itc_weight 0.0
recipe_try pretrain_lr_nan error lr nan
recipe_try pretrain_lr_inf error lr inf
recipe_try pretrain_batch_size_0 error batch_size 0
recipe_try pretrain_batch_size_1e9 error batch_size 1000000000
recipe_try pretrain_temperature_0 error temperature 0.0
recipe_try pretrain_momentum_nan error momentum nan
recipe_try pretrain_heads_not_dividing error heads 3
try pretrain_stop_at_neg usage "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --stop-at=-1
try pretrain_device_bogus error "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out run --device cuda:99
try pretrain_missing_data error "$BIN" pretrain --recipe "$R" --data no-such-corpus --out run
t_pretrain_out_file() { echo hi >afile; x "$BIN" pretrain --recipe "$R" --data "$FIX/corpus" --out afile; judge error; }
sweep pretrain_out_is_file t_pretrain_out_file

t_pretrain_concurrent() { # a second pretrain --resume on a run directory that one is writing
  local i
  cp "$R" long.toml && set_key long.toml steps 100 || return
  export RAYON_NUM_THREADS=1
  start_raw first "$BIN" pretrain --recipe long.toml --data "$FIX/corpus" --out run
  for i in $(seq 300); do [[ -e run/checkpoint/state.json ]] && break; sleep 0.1; done
  x "$BIN" pretrain --recipe long.toml --data "$FIX/corpus" --out run --resume
  kill "$BGPID" 2>/dev/null
  wait "$BGPID" 2>/dev/null
  judge "error:in use" "$(grep -qi 'in use' err || echo "no 'in use'")"
}
sweep pretrain_run_dir_in_use t_pretrain_concurrent

# ---------------------------------------------------------------------------------------------
# transfer / embed: saved encoders whose encoder.json lies; --save-encoder onto files;
# numeric flags.
# ---------------------------------------------------------------------------------------------

# encoder_try NAME EXPECTED FROM TO [embed]: models/tiny-mixed-1m copied, its encoder.json
# edited (FROM -> TO, sed syntax), then a linear probe on ItalyPowerDemand (or embed).
encoder_try() {
  TRY_EXPECT=$2 ENC_FROM=$3 ENC_TO=$4 ENC_CMD=${5:-transfer}
  sweep "$1" _encoder_body
}
_encoder_body() {
  cp -r "$MODEL" enc && sed -i "s/$ENC_FROM/$ENC_TO/" enc/encoder.json &&
    grep -q "$ENC_TO" enc/encoder.json || return
  if [[ $ENC_CMD == embed ]]; then
    x "$BIN" embed --dataset "$IPD" --model enc --out f.h5
  else
    x "$BIN" transfer --dataset "$IPD" --model enc --protocol linear --seeds 1
  fi
  judge "$TRY_EXPECT"
}
encoder_try encoder_length_1e9 error '"length": 256' '"length": 1000000000'
encoder_try encoder_length_1e9_embed error '"length": 256' '"length": 1000000000' embed
encoder_try encoder_heads_not_dividing error '"heads": 4' '"heads": 3'
encoder_try encoder_heads_0 error '"heads": 4' '"heads": 0'
encoder_try encoder_layers_3_of_2 error '"layers": 2' '"layers": 3'
encoder_try encoder_layers_1_of_2 error '"layers": 2' '"layers": 1'
encoder_try encoder_layers_1_of_2_embed error '"layers": 2' '"layers": 1' embed
encoder_try encoder_patch_0 error '"patch": 16' '"patch": 0'
encoder_try encoder_architecture_bogus error '"patch_transformer"' '"lstm"'

t_save_encoder_nonempty() {
  mkdir keep && echo keep >keep/notes.txt
  x "$BIN" transfer --dataset "$IPD" --model fcn --protocol scratch --seeds 1 --epochs 2 --save-encoder keep
  judge error "$([[ $(ls keep) == notes.txt ]] || echo "wrote into it")"
}
sweep transfer_save_encoder_nonempty t_save_encoder_nonempty
t_json_unwritable() { # refused before the work, not after it
  x "$BIN" transfer --dataset "$IPD" --model minirocket --protocol linear --seeds 1 --json no/such/dir/r.json
  judge "error:before work" "$(grep -q mean out && echo "refused only after the work")"
}
sweep transfer_json_unwritable t_json_unwritable

FCN=(--dataset "$IPD" --model fcn --protocol scratch --epochs 2)
try transfer_seeds_0 error "$BIN" transfer --dataset "$IPD" --model minirocket --protocol linear --seeds 0
try transfer_seeds_u64max error "$BIN" transfer --dataset "$IPD" --model minirocket --protocol linear --seeds $U64
try transfer_epochs_0 error "$BIN" transfer --dataset "$IPD" --model fcn --protocol scratch --seeds 1 --epochs 0
try transfer_epochs_u64max_patience_1 ok "$BIN" transfer --dataset "$IPD" --model fcn --protocol scratch --seeds 1 --epochs $U64 --patience 1 --folds 0
try transfer_epochs_u64max_folds error "$BIN" transfer --dataset "$IPD" --model fcn --protocol scratch --seeds 1 --epochs $U64 --folds 5
try transfer_seeds_neg usage "$BIN" transfer "${FCN[@]}" --seeds=-1
try transfer_batch_size_0 error "$BIN" transfer "${FCN[@]}" --seeds 1 --batch-size 0
try transfer_batch_size_1e9 ok "$BIN" transfer "${FCN[@]}" --seeds 1 --batch-size 1000000000
try transfer_lr_nan error "$BIN" transfer "${FCN[@]}" --seeds 1 --lr nan
try transfer_lr_inf error "$BIN" transfer "${FCN[@]}" --seeds 1 --lr inf
try transfer_lr_neg error "$BIN" transfer "${FCN[@]}" --seeds 1 --lr=-1
try transfer_lr_0 error "$BIN" transfer "${FCN[@]}" --seeds 1 --lr 0
try transfer_val_fraction_0 error "$BIN" transfer "${FCN[@]}" --seeds 1 --val-fraction 0
try transfer_val_fraction_1 error "$BIN" transfer "${FCN[@]}" --seeds 1 --val-fraction 1
try transfer_val_fraction_nan error "$BIN" transfer "${FCN[@]}" --seeds 1 --val-fraction nan
try transfer_val_fraction_inf error "$BIN" transfer "${FCN[@]}" --seeds 1 --val-fraction inf
try transfer_patience_0 clean "$BIN" transfer "${FCN[@]}" --seeds 1 --patience 0
try transfer_layer_u64max error "$BIN" transfer --dataset "$IPD" --model "$MODEL" --protocol linear --seeds 1 --layer $U64
try transfer_layer_0 error "$BIN" transfer --dataset "$IPD" --model "$MODEL" --protocol linear --seeds 1 --layer 0
try transfer_layer_99 error "$BIN" transfer --dataset "$IPD" --model "$MODEL" --protocol linear --seeds 1 --layer 99
try transfer_device_bogus error "$BIN" transfer "${FCN[@]}" --seeds 1 --device cuda:99
try transfer_fcn_linear error "$BIN" transfer --dataset "$IPD" --model fcn --protocol linear --seeds 1
try transfer_not_a_dataset error "$BIN" transfer --dataset "$REPO/data/ucr" --model minirocket --protocol linear --seeds 1
try embed_layer_0 error "$BIN" embed --dataset "$IPD" --model "$MODEL" --out f.h5 --layer 0
try embed_seed_u64max ok "$BIN" embed --dataset "$IPD" --model minirocket --out f.h5 --seed $U64
try embed_fcn error "$BIN" embed --dataset "$IPD" --model fcn --out f.h5
t_embed_out_existing() { echo x >f.h5; x "$BIN" embed --dataset "$IPD" --model minirocket --out f.h5; judge error; }
sweep embed_out_exists t_embed_out_existing

# ---------------------------------------------------------------------------------------------
# transfer: .ts files that are valid but unusual, malformed, or numerically hostile
# (built from ItalyPowerDemand: 67 TRAIN / 1029 TEST cases of length 24, classes 1 and 2).
# ---------------------------------------------------------------------------------------------

probe() { x "$BIN" transfer --dataset "$1" --model "${2:-minirocket}" --protocol linear --seeds 1; }
t_ts_bom() { # a UTF-8 byte order mark, as some Windows editors write
  dataset bom || return
  local f
  for f in bom/*.ts; do { printf '\xef\xbb\xbf'; cat "$f"; } >t && mv t "$f"; done
  probe bom
  judge ok
}
t_ts_dup_label() {
  dataset dup && sed -i 's/^@classLabel true 1 2/@classLabel true 1 1 2/' dup/*.ts || return
  probe dup
  judge error
}
t_ts_two_dims_univariate() { # every row gets a second dimension; the header still says univariate
  dataset two || return
  local f
  for f in two/*.ts; do
    awk 'd && NF { i = match($0, /:[^:]*$/); print substr($0, 1, i - 1) ":" $0; next }
         /^@data/ { d = 1 } { print }' "$f" >t && mv t "$f"
  done
  grep -q '^@univariate true' two/two_TRAIN.ts || return
  probe two
  judge error
}
t_ts_one_class() {
  dataset one || return
  awk 'd && NF && !/:1$/ { next } /^@data/ { d = 1 } { print }' one/one_TRAIN.ts >t && mv t one/one_TRAIN.ts
  probe one
  judge error
}
t_ts_single_case_finetune() { # class 2 has one TRAIN case: no validation case can hold it
  dataset lone || return
  awk 'd && NF && /:2$/ { if (seen++) next } /^@data/ { d = 1 } { print }' lone/lone_TRAIN.ts >t &&
    mv t lone/lone_TRAIN.ts
  x "$BIN" transfer --dataset lone --model "$MODEL" --protocol finetune --seeds 1 --epochs 2 --json r.json
  local extra=""
  if ((RC == 0)) &&
    ! grep -qiE '(only one|single|\<1|one) (train(ing)? )?case\>|warn|cannot validate|no validation' out err; then
    extra="exit 0 without saying class 2 has one case"
  fi
  judge "clean:says so" "$extra" "$(grep -o '"best_val_loss": *[0-9.e-]*' r.json 2>/dev/null | head -1)"
}
scaled() { # scaled NAME FACTOR MODEL: every value times FACTOR, then a linear probe
  dataset "$1" || return
  local f
  for f in "$1"/*.ts; do
    awk -v s="$2" 'd && NF {
        n = split($0, dims, ":"); out = ""
        for (k = 1; k < n; k++) {
          m = split(dims[k], v, ","); row = ""
          for (j = 1; j <= m; j++) row = row (j > 1 ? "," : "") sprintf("%.8e", v[j] * s)
          out = out row ":"
        }
        print out dims[n]; next
      } /^@data/ { d = 1 } { print }' "$f" >t && mv t "$f"
  done
  probe "$1" "$3"
  local acc
  acc=$(mean_accuracy)
  judge "ok:acc>=0.8" "$(awk -v a="${acc:-0}" 'BEGIN { if (a < 0.8) print "accuracy " a " (chance 0.5)" }')" \
    "accuracy ${acc:-none}"
}
t_ts_scaled_encoder() { scaled small 1e-40 "$MODEL"; }
t_ts_scaled_minirocket() { scaled small 1e-40 minirocket; }
t_ts_beyond_f32() { # 1e39 overflows f32: the value must be refused with its file and line
  dataset big || return
  awk 'd && NF && ++r == 5 { n = split($0, v, ","); v[3] = "1e39"; s = v[1]
         for (j = 2; j <= n; j++) s = s "," v[j]; print s; print NR > "line"; next }
       /^@data/ { d = 1 } { print }' big/big_TRAIN.ts >t && mv t big/big_TRAIN.ts
  probe big
  judge "error:file:line" "$(grep -q "big_TRAIN.ts:$(cat line)" err || echo "file:line not named")"
}
t_ts_missing_channel() { # one case of BasicMotions whose channel 2 is all "?"
  dataset miss "$REPO/data/ucr/BasicMotions" || return
  awk 'd && NF && !done { n = split($0, dims, ":"); m = split(dims[3], v, ",")
         s = "?"; for (j = 2; j <= m; j++) s = s ",?"; dims[3] = s; out = dims[1]
         for (k = 2; k <= n; k++) out = out ":" dims[k]; print out; done = 1; next }
       /^@missing/ { print "@missing true"; next } /^@data/ { d = 1 } { print }' \
    miss/miss_TRAIN.ts >t && mv t miss/miss_TRAIN.ts
  probe miss
  judge "clean:warns" "$( ((RC == 0)) && ! grep -qiE 'warn|note:' out err && echo "no warning")"
}
t_ts_undeclared_label() {
  dataset und && sed -i '0,/:2$/s/:2$/:7/' und/und_TRAIN.ts || return
  probe und
  judge error
}
t_ts_ragged_equal_length() {
  dataset rag || return
  awk 'd && NF && ++r == 3 { sub(/,[^,:]*:/, ":") } /^@data/ { d = 1 } { print }' rag/rag_TRAIN.ts >t &&
    mv t rag/rag_TRAIN.ts
  probe rag
  judge error
}
sweep ts_utf8_bom t_ts_bom
sweep ts_duplicate_class_label t_ts_dup_label
sweep ts_two_dims_marked_univariate t_ts_two_dims_univariate
sweep ts_train_has_one_class t_ts_one_class
sweep ts_single_train_case_finetune t_ts_single_case_finetune
sweep ts_scaled_1e-40_encoder t_ts_scaled_encoder
sweep ts_scaled_1e-40_minirocket t_ts_scaled_minirocket
sweep ts_value_1e39 t_ts_beyond_f32
sweep ts_all_missing_channel t_ts_missing_channel
sweep ts_undeclared_label t_ts_undeclared_label
sweep ts_short_row_equal_length t_ts_ragged_equal_length

# ---------------------------------------------------------------------------------------------
# run (pipeline): a missing dataset must stop it before generation; a changed recipe must not
# be answered with the old table.
# ---------------------------------------------------------------------------------------------

t_run_missing_dataset() {
  pipeline_recipe prun 7 "$REPO/data/ucr/NoSuchSet" >p.toml
  x "$BIN" run p.toml
  judge "error:before generating" "$(ls prun/corpus/*.h5 >/dev/null 2>&1 && echo "generated first")" \
    "failed after ${SECS}s"
}
t_run_changed_seed() {
  pipeline_recipe prun 7 "$IPD" >p.toml
  x "$BIN" run p.toml
  ((RC == 0)) || return
  sed -i 's/^seed = 7/seed = 8/' p.toml
  x "$BIN" run p.toml
  local extra="" seed
  seed=$(python3 -c 'import json; print(json.load(open("prun/corpus/manifest.json"))["seed"])' 2>/dev/null)
  if ((RC == 0)); then
    grep -qiE 'chang|differ|stale|recomput|regenerat|rerun' out err || extra="exit 0, silent about the change"
    [[ $seed == 8 ]] || extra=${extra:+$extra,}"corpus still seed ${seed:-?}"
  fi
  judge "clean:notices" "$extra"
}
t_run_unknown_key() {
  { pipeline_recipe prun 7 "$IPD"; echo "bogus = 1"; } >p.toml
  x "$BIN" run p.toml
  judge error
}
t_run_samples_0() {
  pipeline_recipe prun 7 "$IPD" | sed 's/^samples = 200/samples = 0/' >p.toml
  x "$BIN" run p.toml
  judge error
}
sweep run_missing_dataset t_run_missing_dataset
sweep run_rerun_after_seed_change t_run_changed_seed
sweep run_recipe_unknown_key t_run_unknown_key
sweep run_samples_0 t_run_samples_0

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

echo
printf '%-36s %-24s %-6s %-34s %s\n' name expected rc verdict first-line-of-stderr
printf '%-36s %-24s %-6s %-34s %s\n' ---- -------- -- ------- --------------------
while IFS=$'\t' read -r name expect rc verdict first note; do
  printf '%-36s %-24s %-6s %-34s %s\n' "$name" "$expect" "$rc" "$verdict" "${first:--}"
done <"$RESULTS"
notes=$(awk -F'\t' '$6 != "" { printf "  %-36s %s\n", $1, $6 }' "$RESULTS")
[[ -n $notes ]] && printf '\nnotes:\n%s\n' "$notes"
total=$(wc -l <"$RESULTS")
good=$(awk -F'\t' '$4 == "OK"' "$RESULTS" | wc -l)
echo
echo "$good of $total behaved ($((SECONDS - START)) s)"
((good == total))

#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build (fuzz/README.md): first every seed and every saved
# regression input once (a crash there fails at once: deterministic, what the test gate runs), then,
# only when FUZZ_SECONDS is set, that many seconds of fresh random fuzzing per target
# (scripts/fuzz.sh SECONDS, on demand, never part of the gate).
#
#   fuzz/run_fuzzers.sh [BUILD_DIR]            (default build-fuzz)
#
# Environment:
#   FUZZ_SECONDS   seconds of fuzzing per target (default 0: replay seeds and regressions only)
#   FUZZ_TARGETS   targets to run (default: "image exif safetensors config http")
#   FUZZ_JOBS      targets fuzzed at the same time (default 1; each uses one core)
#   FUZZ_WORK      working folder: grown corpora, logs, crash artifacts (default BUILD_DIR/fuzz-work)
# Exit status: 0 when no target found anything; 1 otherwise (the crash input is kept under
# FUZZ_WORK/<target>/, a reproduction command is printed).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-fuzz}
SECONDS_PER=${FUZZ_SECONDS:-0}
TARGETS=${FUZZ_TARGETS:-image exif safetensors config http}
JOBS=${FUZZ_JOBS:-1}
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
mkdir -p "$WORK"

max_len() {
  case $1 in
    image) echo 16384 ;; safetensors | http) echo 8192 ;; config) echo 4096 ;; exif) echo 1024 ;; *) echo 4096 ;;
  esac
}
dict_of() {
  case $1 in
    image | exif) echo fuzz/dict/image.dict ;; http) echo fuzz/dict/http.dict ;; *) echo fuzz/dict/json.dict ;;
  esac
}

# Largest single allocation allowed (MB). Images: the target's 1 Mpx limit needs at most ~10 MB at
# once (16-bit RGBA scanlines), so anything bigger is an allocation sized by untrusted data.
malloc_limit() {
  case $1 in
    image) echo 16 ;; *) echo 64 ;;
  esac
}

# libFuzzer's own flags, common to every run.
common_flags() {
  echo -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb="$(malloc_limit "$1")" -max_len="$(max_len "$1")" \
    -dict="$(dict_of "$1")"
}

status=0
for t in $TARGETS; do
  bin=$BUILD/fuzz/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin not built (cmake --build $BUILD --target fuzzers)" >&2
    exit 2
  fi
  # Replay: seeds and regressions, each input once.
  inputs=(fuzz/corpus/"$t"/*)
  [ -d fuzz/regressions/"$t" ] && inputs+=(fuzz/regressions/"$t"/*)
  if ! "$bin" $(common_flags "$t") -runs=0 "${inputs[@]}" > "$WORK/$t.replay.log" 2>&1; then
    echo "fuzz_$t: FAILED on a seed or regression input:" >&2
    tail -40 "$WORK/$t.replay.log" >&2
    status=1
  else
    echo "fuzz_$t: ${#inputs[@]} seed and regression inputs replayed, no finding"
  fi
done
[ "$status" = 0 ] || exit 1
[ "$SECONDS_PER" -gt 0 ] 2>/dev/null || exit 0

run_one() {
  local t=$1 bin=$BUILD/fuzz/fuzz_$1 dir=$WORK/$1
  mkdir -p "$dir/corpus"
  # New inputs go to the first folder (the work copy); the committed seeds are read only.
  "$bin" $(common_flags "$t") -max_total_time="$SECONDS_PER" -print_final_stats=1 \
    -artifact_prefix="$dir/" "$dir/corpus" fuzz/corpus/"$t" > "$dir/fuzz.log" 2>&1
  local rc=$?
  local done_line execs cov ft units
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$dir/fuzz.log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log")
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<<"$done_line")
  units=$(ls "$dir/corpus" | wc -l)
  if [ $rc -eq 0 ]; then
    echo "fuzz_$t: ${SECONDS_PER}s, ${execs:-?} executions, cov ${cov:-?} edges, ft ${ft:-?} features, corpus $units inputs: no finding"
  else
    echo "fuzz_$t: FINDING (exit $rc) after ${execs:-?} executions; log $dir/fuzz.log" >&2
    grep -E 'ERROR|SUMMARY|runtime error|deadly signal|Test unit written' "$dir/fuzz.log" | head -20 >&2
    for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
      [ -e "$a" ] && echo "  reproduce: $bin $a" >&2
    done
    return 1
  fi
}

pids=()
for t in $TARGETS; do
  run_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status

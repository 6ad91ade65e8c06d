#!/usr/bin/env bash
# Fresh random fuzzing, on demand (never part of the test gate, which only replays fuzz/corpus and
# fuzz/regressions: scripts/test.sh stage fuzz). Builds the clang fuzz tree, replays every seed and
# regression input, then fuzzes each target for SECONDS, FUZZ_JOBS targets at a time.
#
#   scripts/fuzz.sh SECONDS [TARGET...]       targets: image exif safetensors config http (default all)
#
# A finding prints the command that reproduces it; fuzz/README.md says how to fix it and promote the
# input into fuzz/regressions/<target>/ so that every later gate replays it.
# Environment: M2FP_FUZZ_DIR (build tree, default build-fuzz), FUZZ_JOBS (default: the core count),
# FUZZ_WORK (grown corpora, logs, crash files; default BUILD/fuzz-work).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || ! [ "$1" -gt 0 ] 2>/dev/null; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
seconds=$1
shift
BUILD=${M2FP_FUZZ_DIR:-build-fuzz}
scripts/deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DM2FP_FUZZ=ON -DM2FP_BUILD_TESTS=OFF -DM2FP_BUILD_BENCH=OFF
cmake --build "$BUILD" -j"$(nproc)" --target fuzzers
targets="${*:-image exif safetensors config http}"
FUZZ_SECONDS=$seconds FUZZ_TARGETS=$targets FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)} fuzz/run_fuzzers.sh "$BUILD"

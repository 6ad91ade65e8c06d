#!/usr/bin/env bash
# tests/load/run_load.sh: the long load run of `m2fp serve` (tests/load/load_test.py; CTest runs a short
# one, server_load_short). 1, 4 and 16 clients, 40 + 80 + 160 mixed requests (good photos of three
# sizes, repeated photos, hostile uploads), then peak memory with --workers 1 and 2. A few minutes on
# 2 cores; loopback only; bounded in count (and --max-seconds per level).
#
#   tests/load/run_load.sh [--bin build/m2fp] [--testdata build/testdata] [--out load.json] [-- load_test.py options]
#
# Prints what else was running (the numbers depend on it), the table, and writes the JSON report.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/m2fp
TESTDATA=build/testdata
OUT=load.json
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --testdata) TESTDATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run_load: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "run_load: $BIN not built" >&2; exit 1; }
[ -f "$TESTDATA/cihp_synth.safetensors" ] || {
  echo "run_load: $TESTDATA/cihp_synth.safetensors missing (ctest -R fixture_synthetic_cihp)" >&2; exit 1; }

echo "run_load: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes now:"
top -b -n 1 -o %CPU 2>/dev/null | sed -n '7,12p' | sed 's/^/  /' || true
M2FP_BIN=$BIN M2FP_TESTDATA=$TESTDATA OMP_NUM_THREADS=2 /usr/bin/python3 tests/load/load_test.py \
  --levels 1,4,16 --requests 40,80,160 --max-seconds 240 --memory --check --json "$OUT" "${EXTRA[@]}"
echo "run_load: load average after $(cut -d' ' -f1-3 /proc/loadavg); report in $OUT"

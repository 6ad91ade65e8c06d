#!/usr/bin/env bash
# tests/load/run_load.sh: the long load runs of `m2fp serve` (CTest runs a short one, server_load_short).
# Not part of CTest: they take minutes and load the machine; loopback only.
#
#   tests/load/run_load.sh [mixed] [--bin build/m2fp] [--testdata build/testdata] [--out load.json]
#                          [-- load_test.py options]
#   tests/load/run_load.sh wrk [--bin build/m2fp] [--model FILE] [--photo FILE] [--duration 30]
#                          [--engine-duration 180] [-- extra m2fp serve options]
#
# mixed (the default; docs/SCALING.md): tests/load/load_test.py with 1, 4 and 16 clients, 40 + 80 + 160
#   mixed requests (good photos of three sizes, repeated photos, hostile uploads), then peak memory with
#   --workers 1 and 2; bounded in count (and --max-seconds per level). Prints what else was running
#   (the numbers depend on it), the table, and writes the JSON report.
# wrk (docs/SERVICE.md): three runs of wrk (Debian package), 4 connections, against one server started
#   here (port 0, its own catalogue in a temporary folder):
#     health   GET /health: the HTTP layer alone
#     cached   POST /predict with one photo: after the first parse every answer comes from the result cache
#     engine   POST /predict with a new SHA-256 per request (bytes appended after the image end): every
#              request goes through the queue and the engine
#   Prints wrk's summary (requests/s, latency percentiles) per run, the load average before and after, and
#   the server's peak resident memory (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=mixed
case "${1:-}" in mixed|wrk) MODE=$1; shift ;; esac
BIN=build/m2fp
TESTDATA=build/testdata
OUT=load.json
MODEL=
PHOTO=data/astronaut.png
DUR=30
EDUR=180
EXTRA=()
while [ $# -gt 0 ]; do
  case "$MODE:$1" in
    *:--bin) BIN=$2; shift 2 ;;
    mixed:--testdata) TESTDATA=$2; shift 2 ;;
    mixed:--out) OUT=$2; shift 2 ;;
    wrk:--model) MODEL=$2; shift 2 ;;
    wrk:--photo) PHOTO=$2; shift 2 ;;
    wrk:--duration) DUR=$2; shift 2 ;;
    wrk:--engine-duration) EDUR=$2; shift 2 ;;
    *:--) shift; EXTRA=("$@"); break ;;
    *) echo "run_load $MODE: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "run_load: $BIN not built" >&2; exit 1; }
MODEL=${MODEL:-$TESTDATA/cihp_synth.safetensors}
[ -f "$MODEL" ] || { echo "run_load: $MODEL missing (ctest -R fixture_synthetic_cihp)" >&2; exit 1; }

if [ "$MODE" = mixed ]; then
  echo "run_load: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes now:"
  top -b -n 1 -o %CPU 2>/dev/null | sed -n '7,12p' | sed 's/^/  /' || true
  M2FP_BIN=$BIN M2FP_TESTDATA=$TESTDATA OMP_NUM_THREADS=2 /usr/bin/python3 tests/load/load_test.py \
    --levels 1,4,16 --requests 40,80,160 --max-seconds 240 --memory --check --json "$OUT" "${EXTRA[@]}"
  echo "run_load: load average after $(cut -d' ' -f1-3 /proc/loadavg); report in $OUT"
  exit 0
fi

command -v wrk >/dev/null || { echo "run_load: wrk not installed (apt-get install wrk)" >&2; exit 1; }
[ -e "$PHOTO" ] || { echo "run_load: $PHOTO missing" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill $SPID 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BIN" serve --model "$MODEL" --port 0 --catalog "$TMP/catalog.db" --quiet "${EXTRA[@]}" >"$TMP/out" 2>"$TMP/err" &
SPID=$!
for _ in $(seq 1 600); do grep -q "listening on" "$TMP/out" 2>/dev/null && break; sleep 0.2; done
URL=$(sed -n 's/.*listening on //p' "$TMP/out")
[ -n "$URL" ] || { cat "$TMP/err" >&2; exit 1; }
LUA=tests/load/post_photo.lua
echo "server: $URL (pid $SPID) $(head -1 "$TMP/err")"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo; echo "== health: GET /health, 4 connections, ${DUR}s"
wrk -t4 -c4 -d"${DUR}s" --timeout 30s --latency "$URL/health" | sed -n '/Thread Stats/,$p'

echo; echo "== cached: POST /predict $PHOTO (same photo: result cache), 4 connections, ${DUR}s"
curl -s -o /dev/null -w "first (uncached) request: %{http_code} in %{time_total} s\n" -H "Content-Type: image/png" \
  --data-binary @"$PHOTO" "$URL/predict"
PHOTO=$PHOTO PATHQ=/predict wrk -t4 -c4 -d"${DUR}s" --timeout 600s --latency -s "$LUA" "$URL" | sed -n '/Thread Stats/,$p'

echo; echo "== engine: POST /predict, a new SHA-256 per request (no cache, no coalescing), 4 connections, ${EDUR}s"
PHOTO=$PHOTO PATHQ=/predict UNIQUE=1 wrk -t4 -c4 -d"${EDUR}s" --timeout 900s --latency -s "$LUA" "$URL" | sed -n '/Thread Stats/,$p'

echo
echo "server peak memory: $(grep VmHWM /proc/$SPID/status | xargs); now $(grep VmRSS /proc/$SPID/status | xargs)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "$URL/metrics" | grep -E '^m2fp_(engine_duration_seconds_(sum|count)|cache_(hits|misses)_total|rejected_total|http_requests_total\{endpoint="/predict")'

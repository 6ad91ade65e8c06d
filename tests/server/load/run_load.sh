#!/usr/bin/env bash
# tests/server/load/run_load.sh: load on `m2fp serve` over loopback with wrk (Debian package), 4 clients.
#
#   tests/server/load/run_load.sh [--bin build/m2fp] [--model FILE] [--photo FILE] [--duration 30]
#                                 [--engine-duration 180] [-- extra m2fp serve options]
#
# Three runs against one server started here (port 0, its own catalogue in a temporary folder):
#   health   GET /health: the HTTP layer alone
#   cached   POST /predict with one photo: after the first parse every answer comes from the result cache
#   engine   POST /predict with a new SHA-256 per request (bytes appended after the image end): every
#            request goes through the queue and the engine
# Prints wrk's summary (requests/s, latency percentiles) per run, the load average before and after, and
# the server's peak resident memory (VmHWM). Not part of CTest: it takes minutes and loads the machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=build/m2fp
MODEL=build/testdata/cihp_synth.safetensors
PHOTO=data/astronaut.png
DUR=30
EDUR=180
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --photo) PHOTO=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --engine-duration) EDUR=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run_load: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "run_load: wrk not installed (apt-get install wrk)" >&2; exit 1; }
for f in "$BIN" "$MODEL" "$PHOTO"; do [ -e "$f" ] || { echo "run_load: $f missing" >&2; exit 1; }; done

TMP=$(mktemp -d)
trap 'kill $SPID 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BIN" serve --model "$MODEL" --port 0 --catalog "$TMP/catalog.db" --quiet "${EXTRA[@]}" >"$TMP/out" 2>"$TMP/err" &
SPID=$!
for _ in $(seq 1 600); do grep -q "listening on" "$TMP/out" 2>/dev/null && break; sleep 0.2; done
URL=$(sed -n 's/.*listening on //p' "$TMP/out")
[ -n "$URL" ] || { cat "$TMP/err" >&2; exit 1; }
LUA=tests/server/load/post_photo.lua
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

#!/bin/bash
# bench/measure_issue14.sh: the measurements of README "Performance" (issue 14's table), in one go:
# bench_e2e fp32 with the 12 MP case, bf16, fp32 with --warm-up (each with its own convolution-peak
# probe, --prepare, RUNS runs), then `m2fp parse` of the photo and of a 4000x3000 JPEG under
# /usr/bin/time. Prints the lines the table is filled from; the JSON of each bench_e2e run goes to
# OUT_DIR. Run it on a quiet machine and compare ratios, not milliseconds, across runs.
#
# usage: bench/measure_issue14.sh [BUILD_DIR] [MODEL] [PHOTO] [BIG_JPEG] [OUT_DIR]
#   defaults: build, build/testdata/cihp_synth.safetensors, data/bench_548x342.png,
#   a 4000x3000 JPEG made from PHOTO with PIL (bilinear, quality 90) in OUT_DIR, OUT_DIR = a new temporary folder
# environment: RUNS (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODEL=${2:-$BUILD/testdata/cihp_synth.safetensors}
PHOTO=${3:-data/bench_548x342.png}
OUT=${5:-$(mktemp -d /tmp/measure_issue14_XXXXXX)}
RUNS=${RUNS:-5}
mkdir -p "$OUT"
BIG=${4:-$OUT/big12.jpg}
if [ ! -f "$BIG" ]; then
  /usr/bin/python3 -c "
import sys
from PIL import Image
Image.open(sys.argv[1]).convert('RGB').resize((4000, 3000), Image.BILINEAR).save(sys.argv[2], quality=90)" "$PHOTO" "$BIG"
fi
for f in "$BUILD/bench/bench_e2e" "$BUILD/m2fp" "$MODEL" "$PHOTO" "$BIG"; do
  [ -e "$f" ] || { echo "measure_issue14: $f is missing" >&2; exit 2; }
done
E2E="$BUILD/bench/bench_e2e --model $MODEL --image $PHOTO --runs $RUNS --prepare"
KEEP='^(runs|cpu use|conv peak|backbone|pixel_decoder|transformer_decoder|network|total|pre_post|cold start|peak RSS|ratio|decode|preprocess|postprocess|write|outfits|outputs|total_with_write)'
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(uptime)"
grep -m1 'model name' /proc/cpuinfo || true
echo "== fp32, 12 MP case"
$E2E --big-photo --json "$OUT/e2e_fp32_big.json" 2>&1 | grep -E "$KEEP"
echo "== bf16"
$E2E --precision bf16 --json "$OUT/e2e_bf16.json" 2>&1 | grep -E "$KEEP"
echo "== fp32 --warm-up"
$E2E --warm-up --json "$OUT/e2e_warmup.json" 2>&1 | grep -E "$KEEP"
for img in "$PHOTO" "$BIG"; do
  rm -rf "$OUT/parse"
  /usr/bin/time -f "m2fp parse $img: %e s wall, %U user %S sys, max RSS %M KB" \
    "$BUILD/m2fp" parse --model "$MODEL" --out "$OUT/parse" "$img" > /dev/null 2> "$OUT/time.txt" || { cat "$OUT/time.txt" >&2; exit 1; }
  tail -1 "$OUT/time.txt"
done
echo "JSON: $OUT; $(uptime)"

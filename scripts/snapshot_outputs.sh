#!/usr/bin/env bash
# Writes every output m2fp.cpp gives for a fixed set of photos into one folder, so that a refactor can
# be checked byte for byte: run it before and after, then `diff -r BEFORE AFTER`.
#
#   scripts/snapshot_outputs.sh BUILD_DIR OUT_DIR
#
# For each synthetic model (BUILD_DIR/testdata/{cihp,lip}_synth.safetensors, written by the test
# fixtures) and each photo (the parity photos under BUILD_DIR/testdata/parity, plus data/*.png|jpg
# when scripts/fetch_demo_image.sh has run): `m2fp parse --dump-tensors` on every ISA path the CPU has
# (result.json, labels.png, parsing.png, labels_color.png, every tensors/*.npy) and the /predict answer
# of `m2fp serve`. Values that differ between runs by nature (timings_ms, request ids) are removed
# from the JSON documents and the checkout's absolute path is written <ROOT> (two checkouts compare
# equal); nothing else is touched.
set -euo pipefail
BUILD=${1:?usage: snapshot_outputs.sh BUILD_DIR OUT_DIR}
OUT=${2:?usage: snapshot_outputs.sh BUILD_DIR OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/m2fp
PY=/usr/bin/python3
rm -rf "$OUT"
mkdir -p "$OUT"

photos=()
for p in "$BUILD"/testdata/parity/*/photo.png "$ROOT"/data/*.png "$ROOT"/data/*.jpg; do
  [ -f "$p" ] && photos+=("$p")
done
[ ${#photos[@]} -gt 0 ] || { echo "snapshot: no photos (run the parity tests first)" >&2; exit 1; }

# Strips run-dependent values from a JSON document, in place.
normalise() {
  ROOT=$ROOT "$PY" - "$@" <<'PYEOF'
import json, os, sys
root = os.environ['ROOT']
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ('timings_ms', 'request_id', 'queue_ms')}
    if isinstance(v, list):
        return [strip(x) for x in v]
    if isinstance(v, str):
        return v.replace(root, '<ROOT>')
    return v
for path in sys.argv[1:]:
    with open(path) as f:
        doc = json.load(f)
    with open(path, 'w') as f:
        json.dump(strip(doc), f, indent=1, sort_keys=True)
PYEOF
}

isas=(scalar avx2)
grep -q avx512f /proc/cpuinfo && isas+=(avx512)
for model in cihp lip; do
  M=$BUILD/testdata/${model}_synth.safetensors
  [ -f "$M" ] || { echo "snapshot: $M missing (run the fixtures)" >&2; exit 1; }
  for isa in "${isas[@]}"; do
    i=0
    for p in "${photos[@]}"; do
      d=$OUT/parse/$model/$isa/$i-$(basename "$(dirname "$p")")-$(basename "$p")
      mkdir -p "$d"
      M2FP_ISA=$isa OMP_NUM_THREADS=2 "$BIN" parse --model "$M" --out "$d" --dump-tensors --short-edge 224 "$p" \
        > "$d/stdout.txt" 2> "$d/stderr.txt" || echo "exit $?" >> "$d/stderr.txt"
      find "$d" -name result.json | while read -r f; do normalise "$f"; done
      rm -f "$d/stdout.txt" "$d/stderr.txt"  # they print timings
      i=$((i + 1))
    done
  done
  # /predict through the server
  port=$((20000 + RANDOM % 20000))
  OMP_NUM_THREADS=2 "$BIN" serve --model "$M" --port "$port" --catalog "$OUT/catalog-$model.db" > "$OUT/serve-$model.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.2; done
  i=0
  for p in "${photos[@]}"; do
    f=$OUT/predict/$model/$i-$(basename "$(dirname "$p")")-$(basename "$p").json
    mkdir -p "$(dirname "$f")"
    curl -fs -F "image=@$p" "http://127.0.0.1:$port/predict" > "$f" || echo '{"curl": "failed"}' > "$f"
    normalise "$f"
    i=$((i + 1))
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$OUT/serve-$model.log" "$OUT/catalog-$model.db"*
done
echo "snapshot: $(find "$OUT" -type f | wc -l) files in $OUT"

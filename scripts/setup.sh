#!/usr/bin/env bash
# One command on a fresh Debian machine: install every dependency, build m2fp.cpp, get a model
# (the real CIHP checkpoint from ModelScope with tools/download_model.py when the machine can reach
# it; else the SYNTHETIC checkpoint, in the exact ModelScope format with random weights), fetch a
# real photo from a Debian package, and parse it. Outputs land in out/demo/. The last line says
# which model the demo used.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"

REAL_MODEL=data/models/m2fp_cihp.safetensors
SYNTHETIC_MODEL=data/models/m2fp_cihp_synthetic.safetensors
MODEL=$SYNTHETIC_MODEL
if [ -f "$REAL_MODEL" ]; then
  MODEL=$REAL_MODEL
else
  echo "setup: trying to download the real CIHP checkpoint from ModelScope (tools/download_model.py)"
  # The tool's stderr (progress, error) is shown and kept to quote its error in one line.
  download_err=$(mktemp)
  if { /usr/bin/python3 tools/download_model.py cihp -o data/models --timeout 5 2>&1 1>&3 \
         | tee "$download_err" >&2; } 3>&1; then
    MODEL=$REAL_MODEL
  else
    why=$(grep -m1 'error:' "$download_err" | sed -e 's/^download_model.py: error: //' -e 's/;.*//' || true)
    echo "setup: no real checkpoint (${why:-the download failed}); using the synthetic one instead"
  fi
  rm -f "$download_err"
fi
if [ "$MODEL" = "$SYNTHETIC_MODEL" ] && [ ! -f "$MODEL" ]; then
  echo "setup: writing the synthetic CIHP checkpoint (random weights) and converting it"
  /usr/bin/python3 tools/make_synthetic_checkpoint.py --variant cihp --seed 0 \
      --out data/models/cihp_synthetic --convert "$MODEL"
fi
scripts/fetch_demo_image.sh data
./build/m2fp info --model "$MODEL"
echo
./build/m2fp parse --model "$MODEL" --out out/demo --verbose data/astronaut.png
echo
echo "setup: done. Results in out/demo/astronaut/ (result.json, labels.png, parsing.png)."
# Which weights the demo used, as the model file itself says (result.json model.synthetic): a mirror
# could serve synthetic weights under the real name.
synthetic=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["synthetic"])' \
            out/demo/astronaut/result.json)
if [ "$synthetic" = False ]; then
  echo "setup: demo parsed with the REAL CIHP checkpoint ($MODEL)"
else
  echo "setup: NOTE the weights are SYNTHETIC (random): the parsing shows the engine works, not what the trained model sees."
  echo "setup: demo parsed with the SYNTHETIC checkpoint (random weights) ($MODEL); for the real one see README.md, Using the real checkpoint"
fi

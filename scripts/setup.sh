#!/usr/bin/env bash
# One command on a fresh Debian machine: install every dependency, build m2fp.cpp, create the
# embedded default model (a SYNTHETIC checkpoint in the exact ModelScope format, random weights:
# the real one cannot be downloaded here, see README), fetch a real photo from a Debian package,
# and parse it. Outputs land in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"

MODEL=data/models/m2fp_cihp_synthetic.safetensors
if [ ! -f "$MODEL" ]; then
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
echo "setup: NOTE the weights are SYNTHETIC (random): the parsing shows the engine works, not what the trained model sees."

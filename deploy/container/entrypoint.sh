#!/bin/sh
# deploy/container/entrypoint.sh: the container's start (Containerfile). The model $M2FP_MODEL (default
# /models/m2fp_cihp.safetensors, a mounted volume; the name the download writes); when missing and M2FP_DOWNLOAD=1, downloaded from
# ModelScope ($M2FP_VARIANT, cihp or lip) into its folder first. Then `m2fp serve` on 0.0.0.0, with any
# arguments given to the container added.
set -eu
model=${M2FP_MODEL:-/models/m2fp_cihp.safetensors}
share=$(dirname "$(dirname "$(readlink -f "$0")")")
if [ ! -f "$model" ]; then
  if [ "${M2FP_DOWNLOAD:-1}" != 1 ]; then
    echo "m2fp: no model at $model (mount one, or set M2FP_DOWNLOAD=1)" >&2
    exit 1
  fi
  dir=$(dirname "$model")
  echo "m2fp: no model at $model: downloading ${M2FP_VARIANT:-cihp} from ModelScope into $dir" >&2
  python3 "$share/tools/download_model.py" "${M2FP_VARIANT:-cihp}" -o "$dir"
  if [ ! -f "$model" ]; then
    got=$(ls -t "$dir"/*.safetensors 2>/dev/null | head -1)
    [ -n "$got" ] || { echo "m2fp: the download left no .safetensors in $dir" >&2; exit 1; }
    model=$got
  fi
fi
exec m2fp serve --model "$model" --host 0.0.0.0 --port "${M2FP_PORT:-5000}" "$@"

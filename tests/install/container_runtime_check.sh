#!/usr/bin/env bash
# tests/install/container_runtime_check.sh SRC BUILD MODEL
# The Containerfile's runtime stage, checked without a container (for machines that cannot run one):
#   - every shared library the installed bin/m2fp and lib/libm2fp.so.0 need comes from a Debian package
#     the runtime stage installs (or from what debian:12-slim already has);
#   - the entrypoint (deploy/container/entrypoint.sh), run from an installed prefix as the image lays
#     it out, serves on 0.0.0.0, and the HEALTHCHECK script (deploy/container/healthcheck.py) passes;
#   - without a model and with M2FP_DOWNLOAD=0 it stops with a message.
set -euo pipefail
SRC=$(cd "$1" && pwd); BUILD=$(cd "$2" && pwd); MODEL=$(realpath "$3")
T=$(mktemp -d /tmp/m2fp-container.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
P=$T/opt/m2fp
cmake --install "$BUILD" --prefix "$P" > /dev/null
mkdir -p "$P/share/m2fp/tools" "$P/share/m2fp/deploy" "$P/deploy/batch"
cp "$SRC/tools/download_model.py" "$SRC/tools/convert_weights.py" "$P/share/m2fp/tools/"
cp "$SRC/deploy/container/entrypoint.sh" "$SRC/deploy/container/healthcheck.py" "$P/share/m2fp/deploy/"

# The runtime stage's package list, read from the Containerfile itself.
pkgs=$(awk '/^FROM .* AS runtime/{r=1} r && /apt-get install/{f=1} f{print} f && !/\\$/{exit}' "$SRC/Containerfile" \
       | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -v -E '^(apt-get|install|rm|rf|update)$' | sort -u)
# debian:12-slim's own libraries (Priority: required): libc6, libgcc-s1, libstdc++6 (apt needs it), zlib1g.
base="libc6 libgcc-s1 libstdc++6 zlib1g"
# ... and everything apt pulls in with them
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
            --no-enhances --no-pre-depends $pkgs $base 2>/dev/null | grep -v '^ ' | sed 's/:amd64$//' | sort -u)
echo "runtime stage: $(echo $pkgs | wc -w) packages, $(echo "$closure" | wc -l) with their dependencies"
missing=0
for f in "$P/bin/m2fp" "$P/lib/libm2fp.so.0"; do
  while read -r lib path; do
    [ -n "$path" ] || continue
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) || pkg=
    [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
    # a package the runtime installs, or one of their dependencies (apt pulls those in)
    pkg=${pkg%:amd64}
    if echo "$closure" | grep -qx "$pkg"; then echo "  $(basename "$f"): $lib <- $pkg"; else echo "MISSING: $(basename "$f") needs $lib ($pkg)"; missing=1; fi
  done < <(ldd "$f" | awk '$3 ~ /^\// {print $1, $3}')
done
[ $missing = 0 ] || { echo "FAIL: the runtime stage lacks a library"; exit 1; }

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== no model, no download: refused"
if env PATH="$P/bin:$PATH" M2FP_MODEL="$T/models/none.safetensors" M2FP_DOWNLOAD=0 "$P/share/m2fp/deploy/entrypoint.sh" 2> "$T/err"; then
  echo "FAIL: started without a model"; exit 1
fi
cat "$T/err"
echo "== entrypoint with a mounted model, health check"
(cd "$T" && exec env PATH="$P/bin:$PATH" M2FP_MODEL="$MODEL" M2FP_PORT="$port" M2FP_CATALOG="$T/catalog.db" \
   "$P/share/m2fp/deploy/entrypoint.sh" --threads 2) > "$T/serve.log" 2>&1 &
pid=$!
for i in $(seq 1 120); do
  if M2FP_PORT=$port python3 "$P/share/m2fp/deploy/healthcheck.py" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$T/serve.log"; echo "FAIL: m2fp serve ended"; exit 1; }
  sleep 1
done
M2FP_PORT=$port python3 "$P/share/m2fp/deploy/healthcheck.py" || { cat "$T/serve.log"; echo "FAIL: unhealthy"; exit 1; }
grep -m1 -i "0.0.0.0" "$T/serve.log" || true
echo "healthy on 0.0.0.0:$port"
echo "container_runtime_check: OK"

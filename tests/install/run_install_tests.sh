#!/usr/bin/env bash
# tests/install/run_install_tests.sh SRC BUILD MODEL PHOTO [PYTHON]
# The installed tree (ctest install_tests): `cmake --install` into a temporary prefix, then
#   - the files of the tree (binary, header, library and its links, CMake package, m2fp.pc, share/m2fp,
#     the Python package);
#   - libm2fp.so.0 exports only m2fp_* (nm -D), has its SONAME;
#   - examples/c built against the prefix via pkg-config (cc) and via find_package (a separate CMake
#     project), and run on MODEL and PHOTO;
#   - the installed `m2fp parse`, run from outside the source tree, finds the outfit tables under
#     <prefix>/share/m2fp/outfit;
#   - the Python package's tests (pytest) and examples/python against the installed package.
# (The model download tests, tests/python/test_download.py, are python_tests': they run the source
# tree's tools/download_model.py, not anything installed.)
set -euo pipefail
SRC=$(cd "$1" && pwd); BUILD=$(cd "$2" && pwd); MODEL=$(realpath "$3"); PHOTO=$(realpath "$4")
PY=${5:-/usr/bin/python3}
T=$(mktemp -d /tmp/m2fp-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
P=$T/prefix
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "install into $P"
cmake --install "$BUILD" --prefix "$P" > "$T/install.log" || { cat "$T/install.log"; fail "cmake --install"; }
for f in bin/m2fp include/m2fp.h lib/libm2fp.so lib/libm2fp.so.0 lib/cmake/m2fp/m2fpConfig.cmake \
         lib/cmake/m2fp/m2fpConfigVersion.cmake lib/cmake/m2fp/m2fpTargets.cmake lib/pkgconfig/m2fp.pc \
         share/m2fp/outfit/garments.json share/m2fp/outfit/rules.json share/m2fp/outfit/seed_catalog.csv \
         share/m2fp/web/index.html lib/python3/dist-packages/m2fp/__init__.py; do
  [ -e "$P/$f" ] || fail "missing $f in the installed tree"
done
[ -L "$P/lib/libm2fp.so" ] && [ -L "$P/lib/libm2fp.so.0" ] || fail "libm2fp.so and .so.0 must be links"
echo "installed: $(cd "$P" && find . -type f -o -type l | wc -l) files"

step "exported symbols"
readelf -d "$P/lib/libm2fp.so.0" | grep -q 'SONAME.*\[libm2fp.so.0\]' || fail "SONAME is not libm2fp.so.0"
nm -D --defined-only "$P/lib/libm2fp.so.0" | awk '{print $NF}' | sed 's/@.*//' > "$T/syms"
bad=$(grep -v -E '^(m2fp_[a-z_0-9]+|M2FP_0)$' "$T/syms" || true)
[ -z "$bad" ] || { echo "$bad" | head -20; fail "symbols other than m2fp_* exported"; }
echo "exported: $(grep -c '^m2fp_' "$T/syms") m2fp_* symbols, nothing else (version node M2FP_0)"

step "examples/c via pkg-config"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
cc -std=c99 -Wall -Wextra -Werror "$SRC/examples/c/parse.c" $(pkg-config --cflags --libs m2fp) \
   -Wl,-rpath,"$(pkg-config --variable=libdir m2fp)" -o "$T/parse_pc"
(cd "$T" && ./parse_pc "$MODEL" "$PHOTO") | tee "$T/pc.out"

step "examples/c via find_package (separate CMake project)"
cmake -S "$SRC/examples/c" -B "$T/ex" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release > "$T/ex.log" \
  || { cat "$T/ex.log"; fail "configure examples/c"; }
cmake --build "$T/ex" > "$T/exb.log" || { cat "$T/exb.log"; fail "build examples/c"; }
(cd "$T" && "$T/ex/parse" "$MODEL" "$PHOTO") > "$T/cm.out"
cmp "$T/pc.out" "$T/cm.out" || fail "the two builds of examples/c print different results"
echo "same output as the pkg-config build"

step "the installed m2fp, outside the source tree"
(cd "$T" && env -u M2FP_OUTFIT_DATA "$P/bin/m2fp" parse --model "$MODEL" --out "$T/out" --threads 2 "$PHOTO")
stem=$(basename "${PHOTO%.*}")
grep -q "\"$P/share/m2fp/outfit/seed_catalog.csv (in memory)\"" "$T/out/$stem/result.json" \
  || fail "the installed m2fp did not read the outfit tables of $P/share/m2fp/outfit"
echo "outfit tables read from $P/share/m2fp/outfit"

step "Python package (pytest) against the installed tree"
export PYTHONPATH="$P/lib/python3/dist-packages" PYTHONDONTWRITEBYTECODE=1
(cd "$T" && env -u M2FP_LIBRARY -u M2FP_OUTFIT_DATA M2FP_BIN="$P/bin/m2fp" M2FP_MODEL="$MODEL" M2FP_PHOTO="$PHOTO" \
   "$PY" -m pytest -q -p no:cacheprovider "$SRC/tests/install/test_python_package.py")
(cd "$T" && env -u M2FP_LIBRARY -u M2FP_OUTFIT_DATA "$PY" -c "
import m2fp, sys
assert m2fp.library_path.startswith('$P/'), m2fp.library_path
r = m2fp.Model('$MODEL', threads=2).parse('$PHOTO')
assert r.json['catalog']['path'].startswith('$P/share/m2fp/outfit/'), r.json['catalog']
print('library', m2fp.library_path, '; catalogue', r.json['catalog']['path'])")

step "examples/python"
(cd "$T" && env -u M2FP_LIBRARY "$PY" "$SRC/examples/python/parse.py" "$MODEL" "$PHOTO")

echo "install_tests: OK"

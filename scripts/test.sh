#!/usr/bin/env bash
# Runs the whole m2fp.cpp test suite on a fresh Debian machine: installs the Debian packages it
# needs (scripts/deps.sh), builds (Release), and runs every test with CTest: GoogleTest suites
# (kernels on every ISA path, loader incl. under ASan, engine parity against the PyTorch reference,
# outfit), the Python tests (converter, synthetic checkpoints, reference).
# .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
BUILD=${M2FP_BUILD_DIR:-build}
JOBS=$(nproc)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 3600 "$@"

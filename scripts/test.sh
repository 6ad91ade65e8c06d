#!/usr/bin/env bash
# Runs the whole m2fp.cpp test suite on a fresh Debian machine: installs the Debian packages it
# needs (scripts/deps.sh), builds (Release), and runs every test with CTest: GoogleTest suites
# (kernels on every ISA path, loader incl. under ASan, engine parity against the PyTorch reference,
# outfit, server), the Python tests (converter, synthetic checkpoints, reference, `m2fp serve` and
# `m2fp catalog` as processes) and the web page in headless chromium (tests/browser).
# .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
BUILD=${M2FP_BUILD_DIR:-build}
JOBS=$(nproc)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$JOBS"
# The browser test's node packages (playwright-core, pinned by tests/browser/package-lock.json); with
# them and Debian's chromium present the test must run, not skip.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
export M2FP_REQUIRE_BROWSER=1
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 3600 "$@"

#!/usr/bin/env bash
# Installs every Debian package m2fp.cpp needs to build, test, benchmark and serve.
# Idempotent; needs root (or sudo) for apt-get. Set M2FP_SKIP_APT=1 to skip (packages present).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config git ca-certificates
  # engine
  libdnnl-dev libstb-dev libjpeg62-turbo-dev nlohmann-json3-dev libdeflate-dev
  # service (cpp-httplib's header also needs libssl-dev, zlib1g-dev and libbrotli-dev: its dependencies);
  # its browser test (Debian's chromium driven by playwright-core under node) and load test (wrk)
  libcpp-httplib-dev libsqlite3-dev sqlite3 chromium nodejs wrk
  # the service behind a load balancer and batch parsing across machines (deploy/, docs/SCALING.md):
  # nginx (run by the tests with a prefix of their own, never as a system service), GNU parallel,
  # PyYAML to read the Kubernetes manifest in its test
  nginx parallel python3-yaml
  # systemd-analyze verify on deploy/systemd/m2fp.service (tests/systemd; systemd is not started)
  systemd
  # tests and benchmarks
  libgtest-dev libbenchmark-dev
  # AVX-512 kernels tested on machines without AVX-512 (tests/kernels_emu)
  libsimde-dev
  # fuzzing (fuzz/, scripts/test.sh stage fuzz): clang with libFuzzer and the sanitizer runtimes,
  # LLVM's OpenMP for the clang build
  clang libclang-rt-14-dev libomp-dev
  # PyTorch reference and converter tests (Debian's torch; OpenBLAS for fast fp32 matmul)
  python3 python3-torch python3-numpy python3-pil libopenblas0-pthread
  # the Python package's tests against an installed tree (tests/install)
  python3-pytest
  # the OpenAPI description and real answers validated against it (tests/server/test_openapi.py)
  python3-jsonschema
)

if [ "${M2FP_SKIP_APT:-0}" = 1 ]; then exit 0; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (tests/browser): Debian ships it apart from nodejs; a nodejs from elsewhere (NodeSource) brings
# its own npm and conflicts with Debian's package, so ask for npm only when there is none.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Runs the whole m2fp.cpp test suite on a fresh Debian machine: installs the Debian packages it
# needs (scripts/deps.sh), then three stages (M2FP_STAGES, default "release sanitize fuzz"):
#
#   release   Release build (M2FP_BUILD_DIR, default build) and every CTest test: GoogleTest suites
#             (kernels on every ISA path, loader (under ASan too when the sanitize stage does not
#             run), engine parity against the PyTorch reference, outfit, server), the Python
#             tests (converter, synthetic checkpoints, reference, the `m2fp` command line incl.
#             fault cases, `m2fp serve` and `m2fp catalog` as processes, a short converter fuzz
#             loop) and the web page in headless chromium.
#   sanitize  the same code built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC,
#             -DM2FP_SANITIZE=ON, M2FP_ASAN_DIR, default build-asan): the kernel, loader, engine,
#             outfit, application-layer (test_service) and command-line tests (engine parity on two
#             cases of the best ISA only: the rest is the release stage's).
#   fuzz      the libFuzzer targets (clang, -DM2FP_FUZZ=ON, M2FP_FUZZ_DIR, default build-fuzz): every
#             committed seed and regression input replayed, under ASan + UBSan. Deterministic: no
#             fresh random fuzzing here (that is scripts/fuzz.sh, on demand). fuzz/README.md.
#
# Extra arguments go to the release stage's ctest. .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
STAGES=${M2FP_STAGES:-release sanitize fuzz}
JOBS=$(nproc)
stage_start=0
begin() { stage_start=$SECONDS; echo "==== test.sh: stage $1"; }
end() { echo "==== test.sh: stage $1 done in $((SECONDS - stage_start)) s"; }

for stage in $STAGES; do
  case $stage in
    release)
      begin release
      BUILD=${M2FP_BUILD_DIR:-build}
      # The loader suite under ASan is the sanitize stage's test_loader when that stage runs.
      LOADER_ASAN=ON
      case " $STAGES " in *" sanitize "*) LOADER_ASAN=OFF ;; esac
      cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DM2FP_WERROR=ON -DM2FP_LOADER_ASAN_TESTS=$LOADER_ASAN
      cmake --build "$BUILD" -j"$JOBS"
      # The browser test's node packages (playwright-core, pinned by tests/browser/package-lock.json);
      # with them and Debian's chromium present the test must run, not skip.
      (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
      M2FP_REQUIRE_BROWSER=1 ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 3600 "$@"
      end release
      ;;
    sanitize)
      begin sanitize
      ASAN_BUILD=${M2FP_ASAN_DIR:-build-asan}
      # -O1 -g1: quicker to build than -O2 -g, line numbers in the reports.
      cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DM2FP_SANITIZE=ON -DM2FP_BUILD_BENCH=OFF
      cmake --build "$ASAN_BUILD" -j"$JOBS" --target test_kernels test_kernels_parity test_loader test_engine test_outfit test_service m2fp
      # Leaks are checked; the suppressions are third-party allocations kept until exit (see the file).
      export ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=0
      export LSAN_OPTIONS=suppressions=$PWD/scripts/sanitizers/lsan.supp:print_suppressions=0
      export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
      # Labels: one per GoogleTest binary, "cli" for the command-line tests. The scalar-path parity
      # runs and three of the five parity cases are the release stage's (minutes under ASan).
      ctest --test-dir "$ASAN_BUILD" --output-on-failure -j"$JOBS" --timeout 1800 \
        -L '^(test_kernels|test_kernels_parity|test_loader|test_engine|test_outfit|test_service|cli)$' \
        -E 'SyntheticParity.*(_scalar|cihp_portrait|lip_large|lip_quirk)'
      unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
      end sanitize
      ;;
    fuzz)
      begin fuzz
      FUZZ_BUILD=${M2FP_FUZZ_DIR:-build-fuzz}
      cmake -S . -B "$FUZZ_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DM2FP_FUZZ=ON -DM2FP_BUILD_TESTS=OFF -DM2FP_BUILD_BENCH=OFF
      cmake --build "$FUZZ_BUILD" -j"$JOBS" --target fuzzers
      FUZZ_SECONDS=0 fuzz/run_fuzzers.sh "$FUZZ_BUILD"
      end fuzz
      ;;
    *)
      echo "test.sh: unknown stage '$stage' (release, sanitize, fuzz)" >&2
      exit 2
      ;;
  esac
done

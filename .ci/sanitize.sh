#!/usr/bin/env bash
# Builds libqat and its tests with clang, AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer, runs a representative subset
# of the tests, and builds the libFuzzer targets in the same tree for
# .ci/fuzz.sh.  Any sanitizer report fails the run.
#
# The subset: every GoogleTest suite, the C example, the kernel demo and the
# CLI stage test.  Left out, to stay within CI's time budget: the ONNX
# Runtime interop tests (same library code as the CLI tests, plus node), the
# consumer builds (packaging only), the SIGKILL crash-safety loop (slow under
# ASan; it runs in the main suite), the Python example (an uninstrumented
# interpreter cannot load an ASan library without LD_PRELOAD) and the
# exported-symbol check (the sanitizer runtimes export their own symbols),
# the real-model suite and the PyTorch autograd comparison (minutes of
# training on torchvision-sized models, ten times slower under ASan; the
# ops they use have their own gtests here),
# and the two tests that run under an address-space limit (prlimit --as,
# RLIMIT_AS): ASan reserves terabytes of shadow memory at start-up and
# aborts under such a limit.  All of these run in the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${QAT_SANITIZE_BUILD_DIR:-build-sanitize}
# vptr and function checks need the C++ UBSan runtime, which the C example
# (linked by the C driver) does not get.
flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize=vptr,function -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DQAT_BUILD_FUZZERS=ON -DQAT_BUILD_BENCHMARKS=OFF -DQAT_INSTALL=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build "$build_dir" -j "$(nproc)"
# --build-only: what .ci/fuzz.sh needs when it runs alone.
if [ "${1:-}" = "--build-only" ]; then exit 0; fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" \
  -E '^(ort\.|mpi\.|consumer\.|real_models\.|torch\.|examples\.python|python\.|cli\.crash_safety|capi\.exported_symbols|CliTest\.HostileInputsExitWithAMessageNotASignal|BadInputCatalogue\.AllocationFailureIsAStatusAtEveryEntryPoint)'

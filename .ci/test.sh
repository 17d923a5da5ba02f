#!/usr/bin/env bash
# The README's second command: install the dependencies, build, run every
# test, then the sanitizer run and the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash .ci/install-ort.sh
bash .ci/build.sh
(cd "${QAT_BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)")
# The Python package's pytest run (ctest label `python`), summary included.
cat "${QAT_BUILD_DIR:-build}/tests/python_pytest/pytest.log" 2>/dev/null || true
# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer (a
# named subset), then each fuzzer for a bounded time.
bash .ci/sanitize.sh
bash .ci/fuzz.sh

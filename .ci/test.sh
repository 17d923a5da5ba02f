#!/usr/bin/env bash
# The README's second command: install the dependencies, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash .ci/install-ort.sh
bash .ci/build.sh
cd "${QAT_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"

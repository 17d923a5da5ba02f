#!/usr/bin/env bash
# ctest's python.pytest: installs the package the way README.md says (a venv
# over Debian's site packages, pip --no-build-isolation, offline) and runs its
# pytest suite against the installed copy.
#   run_pytest.sh LIBQAT_SO QAT_CLI WORK_DIR
set -euo pipefail
lib=$1 cli=$2 work=$3
src="$(cd "$(dirname "$0")/../.." && pwd)"
python=/usr/bin/python3
if ! "$python" -m pytest --version >/dev/null 2>&1; then
  echo "python.pytest: pytest is missing (Debian package python3-pytest); skipped"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
# pip builds in the source folder: build from a copy, so the tree stays clean.
cp -r "$src/capi/python" "$work/package"
if "$python" -m venv --system-site-packages "$work/venv" >/dev/null 2>&1; then
  "$work/venv/bin/pip" install --quiet --no-build-isolation --no-index "$work/package"
  python="$work/venv/bin/python"
else
  echo "python.pytest: python3-venv is missing; testing the source tree's package"
  export PYTHONPATH="$src/capi/python"
fi
cd "$src/tests/python"
# Also kept in WORK_DIR/pytest.log, which .ci/test.sh prints (ctest shows a
# passing test's output only with -V).
set +e
LIBQAT_LIBRARY="$lib" QAT_CLI="$cli" "$python" -m pytest -v -p no:cacheprovider . 2>&1 |
  tee "$work/pytest.log"
exit "${PIPESTATUS[0]}"

# Sourced by the CLI tests that build their models with Debian's python3
# (onnx + numpy): reads QAT_BINARY WORK_DIR into $qat and $work, sets $here
# (tests/cli) and $py, exits 77 (ctest: skipped) when python3 lacks onnx or
# numpy, starts in an empty $work, and defines fail MESSAGE.
set -euo pipefail
qat=$1 work=$2
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
py=/usr/bin/python3
if ! "$py" -c 'import onnx, numpy' 2> /dev/null; then
  echo "SKIPPED: $py has no onnx or numpy"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAILED: $*"; exit 1; }

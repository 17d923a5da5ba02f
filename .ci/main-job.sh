#!/usr/bin/env bash
# The README's first command: install the dependencies, build, run the main
# job.  Until the Fashion-MNIST pipeline exists, the main job is the FakeQuant
# kernel demo and the kernel benchmark summary (ratios against memcpy, and
# against PyTorch when python3-torch is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash .ci/build.sh
build_dir=${QAT_BUILD_DIR:-build}
"$build_dir"/examples/kernel_demo
echo
python3 benchmarks/kernel_summary.py --bench "$build_dir"/benchmarks/fake_quant_benchmark

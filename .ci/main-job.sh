#!/usr/bin/env bash
# The README's first command: install the dependencies, build, and run the
# main job: the Fashion-MNIST QAT pipeline (fp32 training, PTQ, QAT, int8
# export, evaluation), then the FakeQuant kernel benchmark summary (ratios
# against memcpy, and against PyTorch when python3-torch is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash .ci/build.sh
build_dir=${QAT_BUILD_DIR:-build}
"$build_dir"/examples/qat pipeline --data /usr/share/datasets/fashion-mnist \
  --out "$build_dir"/pipeline
echo
python3 benchmarks/kernel_summary.py --bench "$build_dir"/benchmarks/fake_quant_benchmark

#!/usr/bin/env bash
# The README's first command: install the dependencies (plus Graphviz, for
# the graph pictures), build, install ONNX Runtime for node (for the ORT
# columns; the pipeline says "n/a" and why when that fails), and run the
# main job: the Fashion-MNIST QAT pipeline (fp32 training, PTQ int8, QAT
# int8, QAT W4A8, export, evaluation in libqat and ONNX Runtime, plots and
# graphs in build/pipeline/), then the FakeQuant kernel benchmark summary
# (ratios against memcpy, and against PyTorch when python3-torch is
# installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh graphviz
bash .ci/build.sh
bash .ci/install-ort.sh
build_dir=${QAT_BUILD_DIR:-build}
"$build_dir"/examples/qat pipeline --data /usr/share/datasets/fashion-mnist \
  --out "$build_dir"/pipeline
echo
python3 benchmarks/kernel_summary.py --bench "$build_dir"/benchmarks/fake_quant_benchmark

#!/usr/bin/env bash
# A short `qat pipeline` run (few samples, one epoch per stage) on the MLP
# and on LeNet-5: every artifact exists, report.json has the four rows
# (fp32, ptq int8, qat int8, qat w4a8) and the ORT columns are filled or say
# why not.  Skipped (77) without the Fashion-MNIST package.  Run by ctest.
#   pipeline.sh QAT_BINARY WORK_DIR
set -euo pipefail
qat=$1 work=$2
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "SKIPPED: $data is missing (Debian package dataset-fashion-mnist)"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAILED: $*"; exit 1; }

for zoo in mlp lenet5; do
  out=$work/$zoo
  "$qat" pipeline --zoo "$zoo" --data "$data" --out "$out" --limit 512 --test-limit 500 \
    --epochs 1 --qat-epochs 1 --calibration-samples 128 --latency-seconds 0.05 --threads 2 \
    > "$work/$zoo.log" 2>&1 || { cat "$work/$zoo.log"; fail "pipeline --zoo $zoo"; }
  for f in untrained.onnx fp32.onnx ptq_int8.onnx qdq_int8.onnx qdq_w4a8.onnx qat_int8.onnx \
           qat_w4a8.onnx calibration.json report.json report.md accuracy.svg loss.svg \
           activation_histogram.svg graph_fp32.dot graph_qdq.dot graph_fakequant_training.dot \
           graph_qat_int8_exported.dot graph_qat_w4a8_exported.dot fp32/checkpoint qat_int8/checkpoint qat_w4a8/checkpoint; do
    [ -s "$out/$f" ] || fail "$zoo: $f is missing or empty"
  done
  if command -v dot > /dev/null; then
    [ -s "$out/graph_qdq.svg" ] || fail "$zoo: dot is installed but graph_qdq.svg is missing"
  fi
  rows=$(grep -c '^    {"model": ' "$out/report.json") || true
  [ "$rows" = 4 ] || fail "$zoo: report.json has $rows rows, not 4"
  for name in fp32 "ptq int8" "qat int8" "qat w4a8"; do
    grep -q "{\"model\": \"$name\"" "$out/report.json" || fail "$zoo: no row '$name'"
  done
  # Each row has ORT numbers, or a note saying why not.
  filled=$(grep -c '"ort_accuracy": [0-9]' "$out/report.json") || true
  noted=$(grep -c '"ort_note": "' "$out/report.json") || true
  [ $((filled + noted)) = 4 ] || fail "$zoo: ORT columns neither filled nor explained"
  # The plots are SVG with labelled axes.
  grep -q "epoch" "$out/accuracy.svg" || fail "$zoo: accuracy.svg has no epoch axis"
  grep -q "rmax" "$out/activation_histogram.svg" || fail "$zoo: histogram has no range marker"
  grep -q "FakeQuant" "$out/graph_fakequant_training.dot" || fail "$zoo: no FakeQuant in the training graph"
  # The int8 export is about 4x smaller than fp32.
  [ "$(stat -c %s "$out/qat_int8.onnx")" -lt "$(( $(stat -c %s "$out/fp32.onnx") / 2 ))" ] ||
    fail "$zoo: qat_int8.onnx is not smaller than fp32.onnx"
done

# A trained model as it is (--epochs 0), with QAT skipped: same fp32 accuracy.
"$qat" pipeline --model "$work/mlp/fp32.onnx" --epochs 0 --qat-epochs 0 --data "$data" \
  --out "$work/given" --test-limit 500 --calibration-samples 128 --latency-seconds 0.05 \
  --no-ort > "$work/given.log" 2>&1 || { cat "$work/given.log"; fail "pipeline --model"; }
acc() { grep -o "{\"model\": \"fp32\".*" "$1" | grep -o '"accuracy": [0-9.]*' | head -1; }
[ "$(acc "$work/given/report.json")" = "$(acc "$work/mlp/report.json")" ] ||
  fail "--epochs 0 changed the given model: $(acc "$work/given/report.json")"

# Usage errors exit 2.
set +e
"$qat" pipeline --zoo resnet 2> /dev/null; [ $? -eq 2 ] || fail "--zoo resnet should exit 2"
"$qat" pipeline --zoo mlp --model x.onnx 2> /dev/null; [ $? -eq 2 ] || fail "--zoo with --model should exit 2"
"$qat" pipeline --qat-quant-params observe 2> /dev/null; [ $? -eq 2 ] || fail "bad --qat-quant-params should exit 2"
set -e
echo "1 passed, 0 failed"

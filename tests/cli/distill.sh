#!/usr/bin/env bash
# Issue 17's chain on a 2-input model (ids int64 + mask bool -> embedding ->
# Gemm), with no labels anywhere: calibrate from a folder of .npy files,
# quantize (4-bit per-channel weights, so that PTQ has an error to recover),
# prepare with --teacher (distillation), train, export; ONNX Runtime runs the
# export (when node is installed) and matches `qat run`; `qat eval
# --reference` shows a smaller error against fp32 after QAT than after PTQ.
# Run by ctest; exit 77 (skipped) without Debian's python3 with onnx+numpy.
#   distill.sh QAT_BINARY WORK_DIR
source "$(dirname "$0")/python_prologue.sh" "$@"

"$py" "$here/make_two_input_model.py" .
"$qat" calibrate model.onnx --data data -o table.json 2> /dev/null
"$qat" calibrate model.onnx --data data.npz -o table_npz.json 2> /dev/null
cmp table.json table_npz.json || fail "an .npz and a folder of the same arrays calibrate differently"
"$qat" quantize model.onnx --table table.json -o qdq.onnx --weight-bits 4 --per-channel
# The default teacher is the fp32 model quantize recorded; name it anyway.
"$qat" prepare qdq.onnx -o qat --teacher model.onnx | grep -q "loss distillation (mse)" ||
  fail "prepare --teacher did not build a distillation loss"
"$qat" prepare qdq.onnx -o qat_recorded --distill kl --temperature 2 > /dev/null
"$qat" train qat --data data --epochs 10 --lr 1e-4 --seed 1 > /dev/null 2>&1
"$qat" export qat -o exported.onnx > /dev/null
"$py" - <<'PY' || fail "the export still holds the teacher"
import onnx, sys
m = onnx.load("exported.onnx")
sys.exit(any(n.output[0].startswith("teacher/") for n in m.graph.node))
PY

metric() {  # MODEL KEY
  "$qat" eval "$1" --data data --reference model.onnx |
    "$py" -c 'import json,sys; print(json.load(sys.stdin)["outputs"]["logits"][sys.argv[1]])' "$2"
}
ptq=$(metric qdq.onnx relative_l2)
qat_l2=$(metric exported.onnx relative_l2)
echo "relative L2 against fp32: PTQ $ptq, QAT (distilled) $qat_l2"
"$py" -c 'import sys; sys.exit(not float(sys.argv[2]) < 0.9 * float(sys.argv[1]))' "$ptq" "$qat_l2" ||
  fail "QAT's error $qat_l2 is not below 0.9 x PTQ's $ptq"

"$qat" run exported.onnx in/input_ids.npy in/attention_mask.npy --out expected > /dev/null
if command -v node > /dev/null; then
  node "$here/../ort/ort_compare.js" exported.onnx in expected --rtol 1e-4 --atol 1e-4 \
    --optimizations disabled || fail "ONNX Runtime does not match qat run on the export"
else
  echo "note: node is not installed; the ONNX Runtime check was skipped"
fi

# Errors that name the file: a missing input, a wrong shape, a NaN.
mkdir -p bad && cp data/input_ids.npy bad/
if "$qat" calibrate model.onnx --data bad -o t.json 2> err.txt; then fail "missing mask accepted"; fi
grep -q "attention_mask" err.txt || fail "the missing-input error does not name the input: $(cat err.txt)"
echo "distill: OK"

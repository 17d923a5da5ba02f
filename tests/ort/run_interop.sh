#!/usr/bin/env bash
# ONNX Runtime interop checks, run by ctest.  Exit 77 (skipped) when node or
# onnxruntime-node is missing; .ci/install-ort.sh installs them.
#   run_interop.sh QAT_BINARY WORK_DIR MODE
# MODE:
#   training-mlp, training-lenet5
#       ORT runs libqat's training graph and matches `qat grad`'s loss and
#       gradients to 1e-4 relative
#   qdq-semantics
#       ORT (graph optimizations off) runs libqat's QDQ models of the MLP and
#       LeNet-5 (per tensor, per channel, int8 weights, 4-bit) and matches
#       `qat run` exactly or within one output quantization step
#   qat-export
#       the MLP and LeNet-5 go through QAT (calibrate, quantize, prepare with
#       fixed, observed and learned quantization parameters, and with 4-bit
#       weights, train, export); ORT (graph optimizations off) runs every
#       exported int8 model and matches `qat run` within one output step
#   batch-norm
#       the BatchNorm zoo models (resnet8, mobilenetv2; training-mode BN)
#       through QAT with the simulated folding and --freeze-bn-steps: the
#       export has no BatchNormalization and ORT (graph optimizations off)
#       matches `qat run` within one output step
#   low-bits
#       the MLP at W3A3 and W2A8 (issue 15: calibrated with MSE at those
#       bits, Q -> Clip -> DQ at opset 13), as QDQ with float and with int8
#       weights and after QAT with learned scales: ORT (graph optimizations
#       off) matches `qat run` within one output step
#   decompose-mlp, decompose-lenet5
#       the model quantized (per-channel weights, per-tensor activations) and
#       prepared with fixed and with learned (LSQ) quantization parameters;
#       ORT cannot load these training graphs (FakeQuant is not one of its
#       ops), but runs them after `qat decompose` and matches `qat grad` on
#       the original graph within 1e-7 + 1e-5 relative per element (each
#       output's max abs and relative L2 errors are printed); `qat grad` on
#       the decomposed graph gives the original's outputs bit for bit, except
#       the LSQ scale and zero-point gradients (the kernel sums in its float
#       tree, the decomposition in double: decompose_test checks them within
#       the tree's error bound, computed from each node's terms)
#   decompose-edges
#       every custom op (FakeQuant per tensor and per channel, FakeQuantGrad,
#       FakeQuantLsqGrad per tensor and per channel) on NaN, +-Inf, exact
#       halves and out-of-range inputs (make_edge_model.js): ORT on the
#       decomposed model equals `qat run` on the original bit for bit, and
#       the LSQ sums (float tree in the kernel, double in the decomposition)
#       equal `qat run` on the decomposed model bit for bit
#   int4
#       opset-21 models with packed INT4 / UINT4 weights (make_int4_models.py:
#       DequantizeLinear-21 per block with a partial last block, blocks that
#       divide, blocks along the last axis, per channel with an odd count)
#       feeding a MatMul: ORT (graph optimizations off) equals `qat run` bit
#       for bit, the DequantizeLinear output and the MatMul's; the zoo MLP
#       quantized with --block-size 32 (packed INT4) and its opset-21 export
#       after prepare match `qat run` within one output step
#   accuracy
#       a Fashion-MNIST MLP trained by libqat: PTQ int8 per tensor and per
#       channel within 0.5 points of fp32 under ORT's int8 kernels; the 4-bit
#       and QAT-exported models run; accuracies are printed
set -euo pipefail
qat=$1 work=$2 mode=$3
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node > /dev/null; then
  echo "SKIPPED: node is not installed; run .ci/install-ort.sh"
  exit 77
fi
rm -rf "$work/$mode"
mkdir -p "$work/$mode"
cd "$work/$mode"

compare() {  # MODEL INPUTS EXPECTED [extra args]
  node "$here/ort_compare.js" "$@"
}

# The scale of a tensor's table entry, plus a hair for float rounding.
step_of() {  # TABLE TENSOR
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["tensors"][sys.argv[2]]; s=e["scale"]; s=s[0] if isinstance(s,list) else s; print(float(s)*1.0001)' "$1" "$2"
}

# The zoo model NAME with 256 calibration samples (data_NAME), 32 inputs
# (in_NAME), its per-channel calibration table (table_NAME.json), and the
# logits' quantization step in $step.
zoo_model_with_table() {  # NAME
  "$qat" zoo "$1" -o "$1.onnx"
  local shape=784
  if [ "$1" != mlp ]; then shape=1x28x28; fi
  node "$here/make_inputs.js" "data_$1" "features=float:256x$shape:-1:2" labels=labels:256:10
  node "$here/make_inputs.js" "in_$1" "input=float:32x$shape:-1:2"
  "$qat" calibrate "$1.onnx" --data "data_$1/features.npy,data_$1/labels.npy" \
    -o "table_$1.json" --per-channel > /dev/null 2>&1
  step=$(step_of "table_$1.json" logits)
}

case "$mode" in
  training-mlp | training-lenet5)
    name=${mode#training-}
    "$qat" zoo "$name" -o model.onnx
    "$qat" prepare model.onnx -o prepared > /dev/null
    if [ "$name" = mlp ]; then shape=8x784; else shape=4x1x28x28; fi
    n=${shape%%x*}
    node "$here/make_inputs.js" in "input=float:$shape:0:1" "labels=labels:$n:10"
    "$qat" grad prepared/training.onnx input=in/input.npy labels=in/labels.npy --out ours > /dev/null
    compare prepared/training.onnx in ours --rtol 1e-4 --atol 1e-6
    ;;
  qdq-semantics)
    failed=0
    for name in mlp lenet5; do
      zoo_model_with_table "$name"
      for variant in "" "--per-channel" "--weights-as-int8" "--per-channel --weights-as-int8" \
                     "--weight-bits 4"; do
        # shellcheck disable=SC2086
        "$qat" quantize "$name.onnx" --table "table_$name.json" -o q.onnx $variant > /dev/null
        "$qat" run q.onnx "input=in_$name/input.npy" --out ours > /dev/null
        echo "== $name, quantize $variant (one output step = $step)"
        compare q.onnx "in_$name" ours --rtol 0 --atol "$step" || failed=1
      done
    done
    exit $failed
    ;;
  int4)
    failed=0
    if ! /usr/bin/python3 -c 'import numpy, onnx' 2> /dev/null; then
      echo "SKIPPED: /usr/bin/python3 has no numpy or onnx to write the models"
      exit 77
    fi
    /usr/bin/python3 "$here/make_int4_models.py" .
    for name in block32_int4 block64_uint4 block16_last_axis per_channel_int4 \
                per_channel_uint4; do
      "$qat" run "$name.onnx" "x=in_$name/x.npy" --out "ours_$name" > /dev/null
      echo "== $name"
      compare "$name.onnx" "in_$name" "ours_$name" --rtol 0 --atol 0 || failed=1
    done
    # libqat's own block-wise W4A8 MLP (quantize --block-size, packed INT4),
    # and its opset-21 export after prepare: within one output step.
    zoo_model_with_table mlp
    "$qat" quantize mlp.onnx --table table_mlp.json -o b32.onnx --weight-bits 4 \
      --block-size 32 --weights-as-int8 > /dev/null
    "$qat" run b32.onnx "input=in_mlp/input.npy" --out ours_b32 > /dev/null
    echo "== mlp, quantize --weight-bits 4 --block-size 32 (one output step = $step)"
    compare b32.onnx in_mlp ours_b32 --rtol 0 --atol "$step" || failed=1
    "$qat" quantize mlp.onnx --table table_mlp.json -o b32f.onnx --weight-bits 4 \
      --block-size 32 > /dev/null
    "$qat" prepare b32f.onnx -o prepared_b32 > /dev/null
    "$qat" export prepared_b32 -o b32_export.onnx > /dev/null
    "$qat" run b32_export.onnx "input=in_mlp/input.npy" --out ours_b32e > /dev/null
    echo "== mlp, block 32 prepared and exported at opset 21"
    compare b32_export.onnx in_mlp ours_b32e --rtol 0 --atol "$step" || failed=1
    exit $failed
    ;;
  qat-export)
    failed=0
    for name in mlp lenet5; do
      zoo_model_with_table "$name"
      for variant in "fixed" "observe" "learn" "fixed --weight-bits 4"; do
        mode_flag=${variant%% *}
        bits=""
        if [ "$variant" != "$mode_flag" ]; then bits=${variant#* }; fi
        rm -rf prep
        # shellcheck disable=SC2086
        "$qat" quantize "$name.onnx" --table "table_$name.json" -o qdq.onnx --per-channel \
          $bits > /dev/null
        "$qat" prepare qdq.onnx -o prep --quant-params "$mode_flag" > /dev/null
        "$qat" train prep --data "data_$name/features.npy,data_$name/labels.npy" --epochs 1 \
          --batch 32 --lr 1e-3 > /dev/null 2>&1
        "$qat" export prep -o exported.onnx > /dev/null
        "$qat" run exported.onnx "input=in_$name/input.npy" --out ours > /dev/null
        echo "== $name, QAT $variant, exported (one output step = $step)"
        compare exported.onnx "in_$name" ours --rtol 0 --atol "$step" || failed=1
      done
    done
    exit $failed
    ;;
  batch-norm)
    # Issue 15: the BatchNorm zoo models (training-mode BN) through QAT with
    # the simulated folding and --freeze-bn-steps; the export has no
    # BatchNormalization and ORT matches `qat run` within one output step.
    failed=0
    for name in resnet8 mobilenetv2; do
      zoo_model_with_table "$name"
      rm -rf prep
      "$qat" quantize "$name.onnx" --table "table_$name.json" -o qdq.onnx --per-channel > /dev/null
      "$qat" prepare qdq.onnx -o prep > /dev/null
      "$qat" train prep --data "data_$name/features.npy,data_$name/labels.npy" --epochs 1 \
        --batch 32 --lr 1e-3 --freeze-bn-steps 6 > /dev/null 2>&1
      "$qat" export prep -o exported.onnx > /dev/null
      if /usr/bin/python3 -c 'import onnx,sys; m=onnx.load(sys.argv[1]); sys.exit(any(n.op_type == "BatchNormalization" for n in m.graph.node))' exported.onnx; then :; else
        echo "FAILED: $name's export has a BatchNormalization"; failed=1
      fi
      "$qat" run exported.onnx "input=in_$name/input.npy" --out ours > /dev/null
      echo "== $name, QAT with BatchNorm folded, exported (one output step = $step)"
      compare exported.onnx "in_$name" ours --rtol 0 --atol "$step" || failed=1
    done
    exit $failed
    ;;
  low-bits)
    failed=0
    "$qat" zoo mlp -o mlp.onnx
    node "$here/make_inputs.js" data "features=float:256x784:-1:2" labels=labels:256:10
    node "$here/make_inputs.js" in "input=float:32x784:-1:2"
    for bits in "3 3" "2 8"; do
      set -- $bits
      "$qat" calibrate mlp.onnx --data data/features.npy,data/labels.npy -o table.json \
        --per-channel --method mse --weight-bits "$1" --activation-bits "$2" > /dev/null 2>&1
      step=$(step_of table.json logits)
      for variant in "" "--weights-as-int8"; do
        # shellcheck disable=SC2086
        "$qat" quantize mlp.onnx --table table.json -o q.onnx --per-channel \
          --weight-bits "$1" --activation-bits "$2" $variant > /dev/null
        "$qat" run q.onnx input=in/input.npy --out ours > /dev/null
        echo "== mlp W$1A$2, quantize $variant (one output step = $step)"
        compare q.onnx in ours --rtol 0 --atol "$step" || failed=1
      done
      rm -rf prep
      "$qat" quantize mlp.onnx --table table.json -o qdq.onnx --per-channel \
        --weight-bits "$1" --activation-bits "$2" > /dev/null
      "$qat" prepare qdq.onnx -o prep --quant-params learn > /dev/null
      "$qat" train prep --data data/features.npy,data/labels.npy --epochs 1 --batch 32 \
        --lr 1e-3 > /dev/null 2>&1
      "$qat" export prep -o exported.onnx > /dev/null
      "$qat" run exported.onnx input=in/input.npy --out ours > /dev/null
      echo "== mlp W$1A$2, QAT (learned scales), exported (one output step = $step)"
      compare exported.onnx in ours --rtol 0 --atol "$step" || failed=1
    done
    exit $failed
    ;;
  decompose-mlp | decompose-lenet5)
    name=${mode#decompose-}
    zoo_model_with_table "$name"
    "$qat" quantize "$name.onnx" --table "table_$name.json" -o qdq.onnx --per-channel > /dev/null
    if [ "$name" = mlp ]; then shape=8x784; else shape=4x1x28x28; fi
    n=${shape%%x*}
    # Wider than the calibration data (-1 to 2), so that some inputs fall
    # outside the input's range: masks with false entries and non-zero
    # zero-point gradients.
    node "$here/make_inputs.js" in "input=float:$shape:-1.5:2.5" "labels=labels:$n:10"
    failed=0
    for params in fixed learn; do
      rm -rf prep ours standard_ours
      "$qat" prepare qdq.onnx -o prep --quant-params "$params" > /dev/null
      "$qat" decompose prep/training.onnx -o standard.onnx > /dev/null
      "$qat" grad prep/training.onnx input=in/input.npy labels=in/labels.npy --out ours > /dev/null
      "$qat" grad standard.onnx input=in/input.npy labels=in/labels.npy --out standard_ours \
        > /dev/null
      for f in ours/*.npy; do
        case "$f" in *_fq_scale_grad.npy | *_fq_zero_point_grad.npy) continue ;; esac
        cmp -s "$f" "standard_ours/${f#ours/}" ||
          { echo "libqat: decomposed ${f#ours/} differs from the original's"; failed=1; }
      done
      echo "== $name, $params quantization parameters: ORT on the decomposed graph vs qat grad"
      rc=0
      compare standard.onnx in ours --rtol 1e-5 --atol 1e-7 || rc=$?
      if [ $rc = 77 ]; then exit 77; fi  # no ONNX Runtime: skipped
      if [ $rc != 0 ]; then failed=1; fi
    done
    exit $failed
    ;;
  decompose-edges)
    node "$here/make_edge_model.js" edge.onnx in
    "$qat" decompose edge.onnx -o standard.onnx > /dev/null
    "$qat" run edge.onnx x=in/x.npy dy=in/dy.npy x2=in/x2.npy dy2=in/dy2.npy --out ours \
      > /dev/null
    "$qat" run standard.onnx x=in/x.npy dy=in/dy.npy x2=in/x2.npy dy2=in/dy2.npy \
      --out standard_ours > /dev/null
    # The LSQ sums from the decomposed model's own double sums.
    for f in lsq_ds lsq_dz lsq2_ds lsq2_dz; do cp "standard_ours/$f.npy" "ours/$f.npy"; done
    compare standard.onnx in ours --rtol 0 --atol 0
    ;;
  accuracy)
    data=/usr/share/datasets/fashion-mnist
    if [ ! -d "$data" ]; then
      echo "SKIPPED: $data is missing (Debian package dataset-fashion-mnist)"
      exit 77
    fi
    "$qat" pipeline --data "$data" --out run --epochs 1 --qat-epochs 1 --limit 20000 \
      > pipeline.log 2>&1 || { cat pipeline.log; exit 1; }
    "$qat" quantize run/fp32.onnx --table run/calibration.json -o ptq_tensor.onnx \
      --weights-as-int8 > /dev/null
    "$qat" quantize run/fp32.onnx --table run/calibration.json -o ptq_4bit.onnx \
      --weights-as-int8 --per-channel --weight-bits 4 > /dev/null
    acc() { node "$here/ort_eval.js" "$1" "$data" --seconds 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'; }
    fp32=$(acc run/fp32.onnx)
    tensor=$(acc ptq_tensor.onnx)
    channel=$(acc run/ptq_int8.onnx)
    four=$(acc ptq_4bit.onnx)
    qat=$(acc run/qat_int8.onnx)
    echo "ORT accuracy on 10000 test images: fp32 $fp32, PTQ int8 per tensor $tensor," \
         "per channel $channel, 4-bit weights $four, QAT int8 $qat"
    python3 - "$fp32" "$tensor" "$channel" <<'PY'
import sys
fp32, tensor, channel = map(float, sys.argv[1:])
bad = [n for n, a in (("per tensor", tensor), ("per channel", channel)) if fp32 - a > 0.005]
print("1 passed, 0 failed" if not bad else f"0 passed, 1 failed: {bad} more than 0.5 points below fp32")
sys.exit(1 if bad else 0)
PY
    ;;
  *)
    echo "unknown mode $mode"
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The MLP's W4A8 export at block 32 with float or uint8 block scales, fixed
# or learned quantization parameters, and per channel: file size against
# fp32, accuracy in libqat and in ONNX Runtime (default optimizations and
# disabled).  docs/quantization.md has a table of one run.
#   benchmarks/mlp_w4_sizes.sh [BUILD_DIR] [WORK_DIR]
# Needs the Fashion-MNIST package (dataset-fashion-mnist) and, for the ORT
# columns, .ci/install-ort.sh.  About a minute on 1 thread.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
Q=$(cd "${1:-$repo/build}" && pwd)/examples/qat
W=${2:-/tmp/mlp_w4_sizes}
D=/usr/share/datasets/fashion-mnist
export NODE_PATH=$repo/.deps/ort/node_modules
mkdir -p "$W" && cd "$W"
ort() {  # accuracy in ONNX Runtime, or n/a
  node "$repo/tests/ort/ort_eval.js" "$@" --shape 784 2> /dev/null |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["accuracy"])' 2> /dev/null ||
    echo n/a
}
if [ ! -f fp32.onnx ]; then
  $Q zoo mlp -o mlp.onnx > /dev/null
  $Q prepare mlp.onnx -o fp32 > /dev/null
  $Q train fp32 --data $D --epochs 3 --batch 64 --lr 1e-3 --threads 1 > /dev/null 2>&1
  $Q export fp32 -o fp32.onnx > /dev/null
  $Q calibrate fp32.onnx --data $D -o table.json --samples 1000 > /dev/null 2>&1
  $Q calibrate fp32.onnx --data $D -o table_pc.json --samples 1000 --per-channel > /dev/null 2>&1
fi
fp32=$(stat -c %s fp32.onnx)
echo "fp32: $fp32 bytes"
echo "| weights | quant params | export | bytes | % of fp32 | libqat | ORT | ORT, no optimizations |"
echo "|---|---|---|---|---|---|---|---|"
row() {  # NAME QUANTIZE_FLAGS MODE EXPORT_FLAGS
  local n=$1 qflags=$2 mode=$3 eflags=$4 table=table.json
  [[ $qflags == *--per-channel* ]] && table=table_pc.json
  if [ ! -d "qat_$n" ]; then
    $Q quantize fp32.onnx --table $table -o "q_$n.onnx" --weight-bits 4 $qflags > /dev/null
    $Q prepare "q_$n.onnx" -o "qat_$n" --quant-params $mode > /dev/null
    $Q train "qat_$n" --data $D --epochs 1 --batch 64 --lr 1e-4 --threads 1 > /dev/null 2>&1
  fi
  $Q export "qat_$n" -o "e_$n$eflags.onnx" $eflags > /dev/null
  local e="e_$n$eflags.onnx" size acc
  size=$(stat -c %s "$e")
  acc=$($Q eval "$e" --data $D | python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
  echo "| $qflags | $mode | ${eflags:-default} | $size | $(python3 -c "print(f'{100*$size/$fp32:.2f}%')") |" \
       "$acc | $(ort "$e" $D) | $(ort "$e" $D --optimizations disabled) |"
}
row pc "--per-channel" learn ""
row b32 "--block-size 32" fixed ""
row b32u8 "--block-size 32 --uint8-block-scales" fixed ""
row b32l "--block-size 32" learn ""
row b32l "--block-size 32" learn "--uint8-block-scales"

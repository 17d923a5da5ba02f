#!/usr/bin/env bash
# The real-model suite (issue 14): models as PyTorch 1.13, paddle2onnx and
# tf2onnx write them, through every stage of the qat program.  Run by ctest,
# one test per model (label real_models).
#
#   run_real_models.sh QAT_BINARY WORK_DIR MODEL ...    runs the models
#   run_real_models.sh --table WORK_DIR                 the table of every model run so far
#
# The models are made at test time into WORK_DIR/models by
# export_torch_models.py (the PyTorch ones, with PyTorch's outputs and
# autograd gradients) and build_exporter_style_models.py; /usr/bin/python3
# runs them ($QAT_PYTHON overrides).  The stages, each on the previous ones'
# files:
#   run       `qat run` against PyTorch's float64 outputs (ONNX Runtime's
#             relative L2 <= 1e-4 when torch is missing): max |diff| /
#             max |ref| <= 1e-4
#   grad      `qat prepare` of the float model, then `qat grad` on the batch:
#             every parameter's gradient (meta.json's "params") within
#             relative L2 1e-3 of PyTorch autograd's float64 one (the worst
#             tensor and the float32 noise floor are printed); every gradient
#             finite when there is no PyTorch reference
#   calib     `qat calibrate` on 64 samples
#   quant     `qat quantize --per-channel`
#   prepare   `qat prepare` of the QDQ model (FakeQuant, loss, gradients)
#   train     `qat train`, 1 epoch of 64 samples at batch 16 (4 steps): the
#             loss is finite
#   export    `qat export`: opset >= 13, int8 weights, the batch still dynamic
#   ort       ONNX Runtime runs the export (tests/ort/ort_compare.js); its
#             output against `qat run`'s on the export: relative L2 <= 1e-2
#             (a few int8 steps: the runtimes may round requantization
#             differently)
# A stage whose input a failed stage should have made is "-".  Prints a
# model x stage table (pass/FAIL and the number) and each failure's first
# error line; exits 1 when a stage failed, 77 (skip) when a generator says
# its Python packages are missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${QAT_PYTHON:-/usr/bin/python3}
stages=(run grad calib quant prepare train export ort)

print_table() {  # WORK_DIR MODEL...
  local work=$1; shift
  local header="| model |" rule="|---|" m s
  for s in "${stages[@]}"; do header+=" $s |"; rule+="---|"; done
  echo "$header"
  echo "$rule"
  for m in "$@"; do
    local row="| $m |"
    for s in "${stages[@]}"; do
      row+=" $(awk -F'\t' -v s="$s" '$1 == s { print $3; exit }' "$work/results/$m.tsv" 2> /dev/null) |"
    done
    echo "$row"
  done
  echo
  for m in "$@"; do
    awk -F'\t' -v m="$m" '$2 == "FAIL" { print m " " $1 ": " $4 }' "$work/results/$m.tsv" 2> /dev/null
  done
}

if [ "${1:-}" = --table ]; then
  work=$2
  models=()
  for f in "$work"/results/*.tsv; do [ -e "$f" ] && models+=("$(basename "$f" .tsv)"); done
  print_table "$work" "${models[@]}"
  exit 0
fi

qat=$1 work=$2; shift 2
[ $# -gt 0 ] || { echo "usage: $0 QAT_BINARY WORK_DIR MODEL ... | --table WORK_DIR"; exit 2; }
mkdir -p "$work/models" "$work/results"
work=$(cd "$work" && pwd)
compare() { "$python" "$here/compare.py" "$@"; }
have_ort() { command -v node > /dev/null && node -e "require('$here/../ort/ort_loader.js').loadOrt()" > /dev/null 2>&1; }
# The current model is $model, its files $m, its run folder $r, its results
# $tsv, and ok[STAGE] is set for each stage that passed.
declare -A ok=()
# record STAGE pass|FAIL TEXT DETAIL: one line of the model's results.
record() {
  local cell="pass" detail=${4//$'\t'/ }
  detail=${detail//"$work/models/"/}
  [ "$2" = pass ] || cell="**FAIL**"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$cell${3:+ $3}" "${detail//$'\n'/ }" >> "$tsv"
  [ "$2" = pass ] && ok[$1]=1
  [ "$2" = FAIL ] && failed=1
  echo "== $model $1: $2 $3${4:+ ($4)}"
}
blocked() { printf '%s\t-\t-\t\n' "$1" >> "$tsv"; echo "== $model $1: - (an earlier stage failed)"; }
# stage NAME CMD...: runs a qat command into $r/NAME.log; on failure records
# the first error line and returns 1.
stage() {
  local name=$1; shift
  if "$@" > "$r/$name.log" 2>&1; then return 0; fi
  local first
  first=$(grep -m1 -E '^qat: |rror' "$r/$name.log" || head -1 "$r/$name.log")
  record "$name" FAIL "" "${first:0:400}"
  return 1
}
# check NAME COMPARE-ARGS...: records compare.py's line as the stage's result.
check() {
  local name=$1 text; shift
  if text=$(compare "$@" 2>&1); then record "$name" pass "$text" ""
  else record "$name" FAIL "$text" "$text"; fi
}
# ort_check STAGE MODEL EXPECTED_DIR REL_L2 [STEPS]: ONNX Runtime on the batch
# against EXPECTED_DIR's outputs; records the worst output's relative L2 error.
# With STEPS, an int8 export whose outputs come from a DequantizeLinear also
# passes when every output element is within STEPS of its quantization steps:
# the two runtimes sum convolutions in different orders, so a value on a
# rounding boundary can quantize one step apart and a deep net carries such
# flips forward; on an untrained model's small logits a step is a large part
# of the L2 norm.  Three steps: on an AVX2 machine (no AVX-512) ONNX
# Runtime's float Conv order put one of resnet18_train's logits three steps
# from libqat's.
ort_check() {
  local log="$r/$1.ort.log" text step
  node "$here/../ort/ort_compare.js" "$2" "$m/in" "$3" --rel-l2 "$4" > "$log" 2>&1
  local rc=$?
  text=$(grep -o 'relative L2 error [^ ]*' "$log" | sort -g -k4 | tail -1)
  text=${text#relative L2 error }
  if [ $rc != 0 ] && [ -n "${5:-}" ] && step=$("$python" "$here/output_step.py" "$2") &&
     [ -n "$step" ]; then
    local atol
    atol=$("$python" -c "import sys; print(float(sys.argv[1]) * float(sys.argv[2]) * (1 + 1e-6))" \
           "$5" "$step")
    if node "$here/../ort/ort_compare.js" "$2" "$m/in" "$3" --rtol 0 --atol "$atol" \
         >> "$log" 2>&1; then
      rc=0
      text="$text (within $5 output steps of $step)"
    fi
  fi
  if [ $rc = 0 ]; then record "$1" pass "$text" ""
  else record "$1" FAIL "$text" "$(grep -v ' passed, ' "$log" | head -1)"; fi
}

failed=0
for model in "$@"; do
  case "$model" in
    paddle_* | tf2onnx_*) generator=build_exporter_style_models.py ;;
    *) generator=export_torch_models.py ;;
  esac
  rm -rf "${work:?}/models/$model" "$work/runs/$model" "$work/results/$model.tsv"
  gen_log="$work/results/$model.gen.log"
  "$python" "$here/$generator" "$work/models" "$model" > "$gen_log" 2>&1
  rc=$?
  cat "$gen_log"
  if [ $rc = 77 ]; then exit 77; fi
  if [ $rc != 0 ]; then echo "FAILED: $generator $model"; failed=1; continue; fi

  m="$work/models/$model" r="$work/runs/$model" tsv="$work/results/$model.tsv"
  mkdir -p "$r" && : > "$tsv"
  input=$(compare field "$m" input) loss=$(compare field "$m" loss)
  ok=()
  inputs=("$input=$m/in/$input.npy")
  data="$m/data/features.npy,$m/data/labels.npy"

  # run
  if stage run "$qat" run "$m/model.onnx" "${inputs[@]}" --out "$r/out"; then
    if [ -d "$m/expected64" ]; then check run outputs "$r/out" "$m/expected64" 1e-4
    elif have_ort; then ort_check run "$m/model.onnx" "$r/out" 1e-4
    else record run FAIL "" "no reference: neither torch nor ONNX Runtime is installed"; fi
  fi

  # grad (on the float model)
  if stage grad "$qat" prepare "$m/model.onnx" -o "$r/fp32" --loss "$loss" &&
     stage grad "$qat" grad "$r/fp32/training.onnx" "${inputs[@]}" "labels=$m/in/labels.npy" \
       --out "$r/grads"; then
    if [ -d "$m/grads64" ]; then check grad grads "$r/grads" "$m" 1e-3
    else check grad finite "$r/grads"; fi
  fi

  # calib -> quant -> prepare -> train -> export -> ort
  if stage calib "$qat" calibrate "$m/model.onnx" --data "$data" -o "$r/table.json" \
       --samples 64 --batch 16; then
    record calib pass "" ""
  fi
  if [ -z "${ok[calib]:-}" ]; then blocked quant
  elif stage quant "$qat" quantize "$m/model.onnx" --table "$r/table.json" -o "$r/qdq.onnx" \
         --per-channel; then
    check quant qdq "$r/qdq.onnx"
  fi
  if [ -z "${ok[quant]:-}" ]; then blocked prepare
  elif stage prepare "$qat" prepare "$r/qdq.onnx" -o "$r/qat" --loss "$loss"; then
    record prepare pass "" ""
  fi
  if [ -z "${ok[prepare]:-}" ]; then blocked train
  elif stage train "$qat" train "$r/qat" --data "$data" --epochs 1 --batch 16 --lr 1e-4 \
         --threads 2; then
    last=$(grep -o -E 'loss[ =:]*[-+0-9.eE]+|[-+0-9.eE]+ loss' "$r/train.log" | tail -1)
    record train pass "${last:-ok}" ""
  fi
  if [ -z "${ok[train]:-}" ]; then blocked export
  elif stage export "$qat" export "$r/qat" -o "$r/int8.onnx"; then
    check export export "$r/int8.onnx"
  fi
  if [ -z "${ok[export]:-}" ]; then blocked ort
  elif ! have_ort; then record ort FAIL "" "ONNX Runtime is not installed (.ci/install-ort.sh)"
  elif stage ort "$qat" run "$r/int8.onnx" "${inputs[@]}" --out "$r/qat_int8"; then
    ort_check ort "$r/int8.onnx" "$r/qat_int8" 1e-2 3
  fi
done

echo
print_table "$work" "$@"
exit $failed

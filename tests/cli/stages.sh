#!/usr/bin/env bash
# The qat stages chained as a user would: zoo -> calibrate -> quantize ->
# prepare -> train -> train --resume -> export -> run, on small .npy data,
# plus the exit codes and messages of bad calls.  Run by ctest.
#   stages.sh QAT_BINARY WORK_DIR
set -euo pipefail
qat=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAILED: $*"; exit 1; }

# Seeded data: 512 samples of 784 features, labels in [0, 10).
node "$here/../ort/make_inputs.js" data x=float:512x784:0:1 y=labels:512:10 2> /dev/null ||
  python3 - <<'PY'
import os, random, struct
os.makedirs("data", exist_ok=True)
def save(path, descr, shape, raw):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + raw)
r = random.Random(1)
save("data/x.npy", "<f4", [512, 784], struct.pack("<%df" % (512 * 784), *[r.random() for _ in range(512 * 784)]))
save("data/y.npy", "<i8", [512], struct.pack("<512q", *[r.randrange(10) for _ in range(512)]))
PY
data=data/x.npy,data/y.npy

"$qat" zoo mlp -o mlp.onnx
"$qat" calibrate mlp.onnx --data "$data" -o table.json --samples 256 --method entropy 2> /dev/null
"$qat" quantize mlp.onnx --table table.json -o qdq.onnx --per-channel
"$qat" prepare qdq.onnx -o qat_dir
"$qat" train qat_dir --data "$data" --epochs 1 --batch 64 --lr 1e-4 --threads 1 2> /dev/null
"$qat" export qat_dir -o int8.onnx
"$qat" run int8.onnx input=data/x.npy --out out > /dev/null
[ -f out/logits.npy ] || fail "run wrote no logits"
# The int8 export is about 4x smaller than the fp32 model.
[ "$(stat -c %s int8.onnx)" -lt "$(( $(stat -c %s mlp.onnx) / 3 ))" ] || fail "export too large"

# Chained training: another epoch from the checkpoint, then an interrupted
# run resumed with its own settings.
"$qat" train qat_dir --data "$data" --epochs 1 --batch 64 --lr 1e-4 --threads 1 2> /dev/null
msg=$("$qat" train qat_dir --data "$data" --epochs 2 --batch 32 --resume 2>&1) && fail "resume with other settings"
grep -q "differs from the run being resumed" <<< "$msg" || fail "resume message: $msg"

# Observed quantization parameters: moving-average activation ranges that
# freeze after 3 steps, carried by the checkpoint into the export.
"$qat" prepare qdq.onnx -o obs_dir --quant-params observe > /dev/null
"$qat" train obs_dir --data "$data" --epochs 1 --batch 64 --lr 1e-4 --threads 1 --observe-steps 3 2> /dev/null
"$qat" export obs_dir -o obs_int8.onnx > /dev/null
"$qat" run obs_int8.onnx input=data/x.npy --out obs_out > /dev/null
[ -f obs_out/logits.npy ] || fail "run wrote no logits for the observed export"
cmp -s int8.onnx obs_int8.onnx && fail "the observed export equals the fixed one"

# Bad calls: usage errors exit 2, runtime errors 1, and nothing is written.
set +e
"$qat" train qat_dir --data "$data" --observe-steps 3 2> err.txt; [ $? -eq 2 ] || fail "--observe-steps without observe should exit 2"
grep -q "quant-params observe" err.txt || fail "--observe-steps message: $(cat err.txt)"
"$qat" train 2> /dev/null; [ $? -eq 2 ] || fail "train without a folder should exit 2"
"$qat" quantize mlp.onnx --table missing.json -o never.onnx 2> err.txt; [ $? -eq 1 ] || fail "missing table should exit 1"
grep -q "missing.json" err.txt || fail "the error should name the table: $(cat err.txt)"
[ ! -e never.onnx ] || fail "a failed quantize left never.onnx"
"$qat" prepare mlp.onnx -o p --loss hinge 2> err.txt; [ $? -eq 2 ] || fail "unknown loss should exit 2"
grep -q "hinge" err.txt || fail "the error should name the loss"
"$qat" export qat_dir 2> /dev/null; [ $? -eq 2 ] || fail "export without -o should exit 2"
printf 'not a checkpoint' > bad_dir_checkpoint
mkdir -p broken && cp qat_dir/*.onnx broken/ && cp bad_dir_checkpoint broken/checkpoint
"$qat" export broken -o x.onnx 2> err.txt; [ $? -eq 1 ] || fail "corrupt checkpoint should exit 1"
grep -q "not a libqat checkpoint" err.txt || fail "corrupt checkpoint message: $(cat err.txt)"
# Issue 15's widths: 2..8, per node with --bits NODE=N; anything else exits 2.
for flag in "--weight-bits 9" "--activation-bits 1" "--weight-bits x"; do
  # shellcheck disable=SC2086
  "$qat" quantize mlp.onnx --table table.json -o never.onnx $flag 2> err.txt
  [ $? -eq 2 ] || fail "quantize $flag should exit 2"
  grep -q "must be an integer from 2 to 8" err.txt || fail "quantize $flag message: $(cat err.txt)"
done
"$qat" quantize mlp.onnx --table table.json -o never.onnx --bits fc1_out_node=12 2> err.txt
[ $? -eq 2 ] || fail "--bits NODE=12 should exit 2"
grep -q "N must be from 2 to 8" err.txt || fail "--bits message: $(cat err.txt)"
"$qat" quantize mlp.onnx --table table.json -o never.onnx --bits no_such_node=4 2> err.txt
[ $? -eq 1 ] || fail "--bits on a missing node should exit 1"
grep -q "no_such_node" err.txt || fail "--bits should name the node: $(cat err.txt)"
"$qat" calibrate mlp.onnx --data "$data" -o never.json --activation-bits 0 2> err.txt
[ $? -eq 2 ] || fail "calibrate --activation-bits 0 should exit 2"
[ ! -e never.onnx ] && [ ! -e never.json ] || fail "a failed call left a file"
set -e
"$qat" calibrate mlp.onnx --data "$data" -o table3.json --samples 256 --method mse \
  --weight-bits 3 --activation-bits 3 2> /dev/null
"$qat" quantize mlp.onnx --table table3.json -o w3a3.onnx --per-channel --weight-bits 3 \
  --activation-bits 3 --bits fc1_out_node=8,fc2_out_node=float > /dev/null
"$qat" run w3a3.onnx input=data/x.npy --out w3a3_out > /dev/null
[ -s w3a3_out/logits.npy ] || fail "the W3A3 model with --bits overrides did not run"
echo "1 passed, 0 failed"

#!/usr/bin/env bash
# Block-wise W4 QAT of a MatMul-heavy graph (issue 18): the tiny transformer
# of make_tiny_transformer.py goes through quantize --block-size 32 (opset
# 21), prepare with distillation from the opset-13 fp32 model (the training
# graphs at opset 17, where ONNX 1.12 infers the shapes that gradient rules
# such as Gemm's and the broadcasting ops' need; the teacher raised to 17
# keeps its Reduce* axes attributes), a few train steps and export at opset
# 21 (packed INT4 behind block-wise DequantizeLinear-21); ONNX Runtime with
# optimizations off agrees with `qat run` on the export, and on the export
# with --uint8-block-scales (scales as uint8 codes behind a
# DequantizeLinear).  Before the fix the folder stayed at opset 21 with no
# inferred shapes, and training failed in the teacher's Gemm.  Exit 77 without Debian's python3 with onnx+numpy.
#   block_qat.sh QAT_BINARY WORK_DIR
source "$(dirname "$0")/python_prologue.sh" "$@"

"$py" "$here/make_tiny_transformer.py" .
"$qat" calibrate model.onnx --data data -o table.json --samples 64 > /dev/null 2>&1
"$qat" quantize model.onnx --table table.json -o block.onnx --weight-bits 4 --block-size 32 \
  > /dev/null
"$qat" prepare block.onnx -o qat --distill mse --quant-params learn > prepare.log 2>&1 ||
  { cat prepare.log; fail "prepare of the block-wise model"; }
"$qat" train qat --data data --epochs 2 --batch 16 --lr 1e-3 --seed 1 > train.log 2>&1 ||
  { cat train.log; fail "train"; }
"$qat" export qat -o exported.onnx > /dev/null
"$py" - <<'PY' || fail "the folder or the export is not as expected"
import onnx
def opset(m):
    return next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
for f in ("qat/training.onnx", "qat/eval.onnx"):
    m = onnx.load(f)
    assert opset(m) == 17, (f, opset(m))
    assert len(m.graph.value_info) > 0, (f, "no inferred shapes")
    blocks = [n for n in m.graph.node if n.op_type == "FakeQuant" and
              any(a.name == "block_size" and a.i == 32 for a in n.attribute)]
    assert len(blocks) >= 7, (f, len(blocks))   # Wq Wk Wv Wo W1 W2 Whead
m = onnx.load("exported.onnx")
assert opset(m) == 21 and m.ir_version == 10, (opset(m), m.ir_version)
inits = {i.name: i for i in m.graph.initializer}
block_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and
            any(a.name == "block_size" and a.i == 32 for a in n.attribute)]
assert len(block_dq) == 7, len(block_dq)
for n in block_dq:
    q = inits[n.input[0]]
    count = q.dims[0] * q.dims[1]
    assert q.data_type == 22 and len(q.raw_data) == (count + 1) // 2, (n.name, q.data_type)
# ReduceMean took its axes back as an input at opset 21.
assert all(len(n.input) == 2 for n in m.graph.node if n.op_type == "ReduceMean")
PY
# The learned block scales left any uint8 form; export --uint8-block-scales
# snaps them: uint8 codes -> DequantizeLinear(step) -> the block scale, and
# no zero point for the symmetric INT4 weights.
"$qat" export qat -o exported_u8.onnx --uint8-block-scales > /dev/null
"$py" - <<'PY' || fail "the --uint8-block-scales export is not as expected"
import os, onnx
m = onnx.load("exported_u8.onnx")
inits = {i.name: i for i in m.graph.initializer}
produced = {o: n for n in m.graph.node for o in n.output}
block_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and
            any(a.name == "block_size" and a.i == 32 for a in n.attribute)]
assert len(block_dq) == 7, len(block_dq)
for n in block_dq:
    assert len(n.input) == 2, (n.name, "a symmetric INT4 weight keeps a zero point")
    s = produced[n.input[1]]
    assert s.op_type == "DequantizeLinear", (n.name, "scale is not dequantized codes")
    assert inits[s.input[0]].data_type == 2, (n.name, "codes are not uint8")
assert os.path.getsize("exported_u8.onnx") < os.path.getsize("exported.onnx")
PY
for f in exported exported_u8; do
  rm -rf "expected_$f"
  "$qat" run "$f.onnx" in/ids.npy --out "expected_$f" > /dev/null
  if command -v node > /dev/null; then
    node "$here/../ort/ort_compare.js" "$f.onnx" in "expected_$f" --rtol 1e-4 --atol 1e-5 \
      --optimizations disabled || fail "ONNX Runtime differs from qat run on $f.onnx"
  else
    echo "note: node is not installed; the ONNX Runtime check was skipped"
  fi
done
echo "block_qat: OK"

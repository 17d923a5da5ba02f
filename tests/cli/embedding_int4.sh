#!/usr/bin/env bash
# `qat quantize --embedding-bits 4` (issue 18): the Gather embedding of the
# 2-input model of make_two_input_model.py becomes a packed INT4 table
# (ONNX data_type 22) behind DequantizeLinear-21 with axis 1 and a
# block_size, feeding the Gather; ONNX Runtime runs it as `qat run` does
# (graph optimizations off: to the output's rounding; on: close), before and
# after QAT (prepare, distillation, train, export at opset 21).  Block
# ranges by min/max and by --calibration mse; MSE's table error is no larger.
# Exit 77 (skipped) without Debian's python3 with onnx+numpy.
#   embedding_int4.sh QAT_BINARY WORK_DIR
source "$(dirname "$0")/python_prologue.sh" "$@"

"$py" "$here/make_two_input_model.py" .
"$qat" calibrate model.onnx --data data -o table.json 2> /dev/null
# Block 8 along the embedding dimension (16: two blocks per row), 8-bit Gemm.
"$qat" quantize model.onnx --table table.json -o emb.onnx --per-channel --weights-as-int8 \
  --embedding-bits 4 --block-size 8 --weight-bits 4 > /dev/null
"$qat" quantize model.onnx --table table.json -o emb_mse.onnx --per-channel --weights-as-int8 \
  --embedding-bits 4 --block-size 8 --weight-bits 4 --calibration mse > /dev/null
# The default embedding block (32, one partial block per row), 8-bit Gemm weights.
"$qat" quantize model.onnx --table table.json -o emb32.onnx --per-channel --weights-as-int8 \
  --embedding-bits 4 > /dev/null
"$py" - <<'PY' || fail "the quantized embedding is not packed INT4 behind DequantizeLinear-21"
import onnx, numpy as np
from onnx import numpy_helper
def table_of(path, block):
    m = onnx.load(path)
    assert any(o.domain in ("", "ai.onnx") and o.version == 21 for o in m.opset_import), path
    inits = {i.name: i for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    gather = next(n for n in m.graph.node if n.op_type == "Gather")
    dq = producers[gather.input[0]]
    assert dq.op_type == "DequantizeLinear", dq.op_type
    attrs = {a.name: a.i for a in dq.attribute}
    assert attrs == {"axis": 1, "block_size": block}, attrs
    q = inits[dq.input[0]]
    assert q.data_type == 22, q.data_type            # INT4
    assert list(q.dims) == [50, 16] and len(q.raw_data) == 50 * 16 // 2, (q.dims, len(q.raw_data))
    scale = numpy_helper.to_array(inits[dq.input[1]])
    assert scale.shape == (50, -(-16 // block)), scale.shape
    # Dequantize by hand: low nibble first, two's complement.
    raw = np.frombuffer(q.raw_data, np.uint8)
    nib = np.stack([raw & 15, raw >> 4], 1).reshape(-1).astype(np.int8)
    vals = np.where(nib > 7, nib - 16, nib).reshape(50, 16)
    return vals * np.repeat(scale, block, 1)[:, :16]
E = numpy_helper.to_array(next(i for i in onnx.load("model.onnx").graph.initializer if i.name == "E"))
errors = [float(np.sum((table_of(p, b) - E) ** 2)) for p, b in
          (("emb.onnx", 8), ("emb_mse.onnx", 8), ("emb32.onnx", 32))]
print("embedding squared error: min/max %.5g, mse %.5g, block 32 %.5g" % tuple(errors))
assert errors[1] <= errors[0] * (1 + 1e-6), "MSE block ranges are worse than min/max"
assert errors[0] < errors[2], "block 8 is not finer than block 32"
PY

for m in emb emb_mse emb32; do
  "$qat" run $m.onnx in/input_ids.npy in/attention_mask.npy --out expected_$m > /dev/null
done
if command -v node > /dev/null; then
  for m in emb emb_mse emb32; do
    node "$here/../ort/ort_compare.js" $m.onnx in expected_$m --rtol 1e-4 --atol 1e-4 \
      --optimizations disabled || fail "ONNX Runtime (no optimizations) differs from qat run on $m"
    node "$here/../ort/ort_compare.js" $m.onnx in expected_$m --rel-l2 0.01 \
      --optimizations all || fail "ONNX Runtime (optimizations on) differs from qat run on $m"
  done
else
  echo "note: node is not installed; the ONNX Runtime checks were skipped"
fi

# QAT: float weights behind Q -> DQ, distilled from the fp32 model, exported
# at opset 21 with the table packed again.
"$qat" quantize model.onnx --table table.json -o emb_qdq.onnx --per-channel \
  --embedding-bits 4 --block-size 8 --weight-bits 4 > /dev/null
"$qat" prepare emb_qdq.onnx -o qat --teacher model.onnx > /dev/null
"$qat" train qat --data data --epochs 3 --lr 1e-4 --seed 1 > /dev/null 2>&1
"$qat" export qat -o exported.onnx > /dev/null
"$py" - <<'PY' || fail "the export's embedding is not packed INT4"
import onnx
m = onnx.load("exported.onnx")
inits = {i.name: i for i in m.graph.initializer}
producers = {o: n for n in m.graph.node for o in n.output}
gather = next(n for n in m.graph.node if n.op_type == "Gather")
dq = producers[gather.input[0]]
assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].data_type == 22
PY
"$qat" run exported.onnx in/input_ids.npy in/attention_mask.npy --out expected_qat > /dev/null
if command -v node > /dev/null; then
  node "$here/../ort/ort_compare.js" exported.onnx in expected_qat --rtol 1e-4 --atol 1e-4 \
    --optimizations disabled || fail "ONNX Runtime differs from qat run on the QAT export"
fi
echo "embedding_int4: OK"

#!/usr/bin/env bash
# qat sensitivity (issue 15) on small, fast cases:
#  - LeNet-5 (zoo) trained briefly on 4,000 Fashion-MNIST training images,
#    analysed at W4A4 on 500 held-out training images (validation, never the
#    test set), with a target: the table names every quantizable node, the
#    JSON parses, the SVG exists, and the proposal re-measured by `qat
#    quantize --table` + `qat eval` meets the target and equals what the
#    report says it measured;
#  - a CNN with inference-mode BatchNormalization and a residual Add (ONNX
#    helper API, seeded), without labels: relative L2 against fp32, with a
#    target, re-measured by `qat eval --reference`;
#  - the MLP (zoo) without the all-but runs; bad calls.
# Exit 77 (skipped) without Debian's python3 with onnx and numpy, or without
# the Fashion-MNIST package.
#   sensitivity.sh QAT_BINARY WORK_DIR
set -euo pipefail
qat=$1 work=$2
py=/usr/bin/python3
fm=/usr/share/datasets/fashion-mnist
if ! "$py" -c 'import onnx, numpy' 2> /dev/null; then
  echo "SKIPPED: $py has no onnx or numpy"
  exit 77
fi
if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
  echo "SKIPPED: no Fashion-MNIST in $fm (Debian package dataset-fashion-mnist)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAILED: $*"; exit 1; }

# Validation data: training images 59,500..59,999 (training below uses the
# first 4,000), normalized as the IDX reader does; and the BN CNN.
"$py" - "$fm" <<'PY'
import gzip, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
fm = sys.argv[1]
with gzip.open(fm + "/train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
with gzip.open(fm + "/train-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
val = slice(59500, 60000)
xv = ((x[val].astype(np.float32) / 255 - np.float32(0.2860)) / np.float32(0.3530)).astype(np.float32)
np.save("val_x.npy", xv)
np.save("val_y.npy", y[val].astype(np.int64))
np.save("val_flat.npy", xv.reshape(500, 784))

# Conv-BN-ReLU, a residual block (Conv-BN-ReLU-Conv-BN + skip), a strided
# Conv-BN-ReLU, global pooling, Gemm: every BN in inference mode.
rng = np.random.default_rng(7)
inits, nodes = [], []
def conv_bn(name, x, cin, cout, stride, relu=True):
    w = rng.normal(0, (2.0 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, name + ".w"))
    nodes.append(helper.make_node("Conv", [x, name + ".w"], [name + ".c"], name=name + "/Conv",
                                  pads=[1, 1, 1, 1], strides=[stride, stride]))
    for p, v in (("g", rng.uniform(0.5, 1.5, cout)), ("b", rng.normal(0, 0.1, cout)),
                 ("m", rng.normal(0, 0.2, cout)), ("v", rng.uniform(0.5, 2.0, cout))):
        inits.append(numpy_helper.from_array(v.astype(np.float32), name + "." + p))
    out = name + ".bn"
    nodes.append(helper.make_node("BatchNormalization",
                                  [name + ".c", name + ".g", name + ".b", name + ".m", name + ".v"],
                                  [out], name=name + "/BatchNormalization", epsilon=1e-5))
    if relu:
        nodes.append(helper.make_node("Relu", [out], [name + ".r"], name=name + "/Relu"))
        out = name + ".r"
    return out
h = conv_bn("stem", "input", 1, 8, 1)
r = conv_bn("block1", h, 8, 8, 1)
r = conv_bn("block2", r, 8, 8, 1, relu=False)
nodes.append(helper.make_node("Add", [h, r], ["sum"], name="skip/Add"))
nodes.append(helper.make_node("Relu", ["sum"], ["sum.r"], name="skip/Relu"))
h = conv_bn("down", "sum.r", 8, 16, 2)
nodes.append(helper.make_node("GlobalAveragePool", [h], ["pooled"], name="pool"))
nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"))
inits.append(numpy_helper.from_array(rng.normal(0, 0.25, (10, 16)).astype(np.float32), "fc.w"))
inits.append(numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"))
nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc/Gemm",
                              transB=1))
graph = helper.make_graph(nodes, "bn_resnet",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                          inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(model)
onnx.save(model, "bn_cnn.onnx")
PY

# The quantizable nodes, by an independent reading of the graph.
nodes_of() {
  "$py" -c 'import onnx,sys; print("\n".join(sorted(n.name for n in onnx.load(sys.argv[1]).graph.node if n.op_type in ("Conv","Gemm","MatMul"))))' "$1"
}
# Checks a report: JSON parses, layers are exactly the quantizable nodes, the
# table printed each of them, the SVG is an SVG document.
check_report() {  # MODEL REPORT.json CHART.svg STDOUT
  "$py" - "$2" "$3" <<'PY' > layers.txt || fail "$2 or $3 does not parse"
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
root = ET.parse(sys.argv[2]).getroot()
assert root.tag.endswith("svg"), root.tag
assert len(r["layers"]) > 0
print("\n".join(sorted(l["node"] for l in r["layers"])))
PY
  diff <(nodes_of "$1") layers.txt > /dev/null ||
    fail "the report's layers differ from the model's quantizable nodes: $(diff <(nodes_of "$1") layers.txt)"
  while read -r n; do grep -qF -- "$n" "$4" || fail "the printed table has no row for $n"; done < layers.txt
}

# --- LeNet-5: accuracy, W4A4, a target.
"$qat" zoo lenet5 -o lenet5.onnx > /dev/null
"$qat" prepare lenet5.onnx -o lenet5_fp32 > /dev/null
"$qat" train lenet5_fp32 --data "$fm" --limit 4000 --epochs 1 --seed 1 > /dev/null 2>&1
"$qat" export lenet5_fp32 -o lenet5_trained.onnx > /dev/null
flags=(--weight-bits 4 --activation-bits 4 --per-channel)
target=1.0
"$qat" sensitivity lenet5_trained.onnx --data val_x.npy,val_y.npy --calibration-data "$fm" \
  --samples 500 --method mse "${flags[@]}" --target-drop $target --json lenet5.json \
  --svg lenet5.svg -o lenet5_mixed.json > lenet5.txt 2> lenet5.err ||
  fail "sensitivity on LeNet-5: $(cat lenet5.err)"
cat lenet5.txt
check_report lenet5_trained.onnx lenet5.json lenet5.svg lenet5.txt
"$qat" quantize lenet5_trained.onnx --table lenet5_mixed.json -o lenet5_mixed.onnx "${flags[@]}" > /dev/null
accuracy() { "$qat" eval "$1" --data val_x.npy,val_y.npy | "$py" -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'; }
fp32=$(accuracy lenet5_trained.onnx)
mixed=$(accuracy lenet5_mixed.onnx)
echo "LeNet-5 re-measured: fp32 $fp32, proposal $mixed (target drop $target points)"
"$py" - "$fp32" "$mixed" "$target" lenet5.json <<'PY' || fail "the LeNet-5 proposal does not hold when re-measured"
import json, sys
fp32, mixed, target = map(float, sys.argv[1:4])
r = json.load(open(sys.argv[4]))
p = r["proposal"]
drop = 100 * (fp32 - mixed)
assert drop <= target + 1e-9, f"re-measured drop {drop} > target {target}"
assert p["meets_target"], p
assert abs(100 * mixed - p["measured"]["metric"]) < 1e-6, (mixed, p["measured"])
assert abs(100 * fp32 - r["fp32"]["metric"]) < 1e-6, (fp32, r["fp32"])
assert set(p["layers"]) == {l["node"] for l in r["layers"]}
levels = set(p["layers"].values())
assert levels <= {"w4a4", "w8a8", "fp32"}, levels
# The proposal is needed: quantizing everything misses the target here.
assert r["all_quantized"]["drop"] > target, r["all_quantized"]
assert p["high_precision_layers"] >= 1
PY

# --- A BN CNN without labels: relative L2 against fp32, a target.
target=0.03
"$qat" sensitivity bn_cnn.onnx --data val_x.npy --samples 200 "${flags[@]}" --target-drop $target \
  --json bn.json --svg bn.svg -o bn_mixed.json > bn.txt 2> bn.err || fail "sensitivity on the BN CNN: $(cat bn.err)"
cat bn.txt
check_report bn_cnn.onnx bn.json bn.svg bn.txt
grep -q '"metric": "relative_l2"' bn.json || fail "data without labels should use relative L2"
"$qat" quantize bn_cnn.onnx --table bn_mixed.json -o bn_mixed.onnx "${flags[@]}" > /dev/null
"$py" -c 'import onnx,sys; sys.exit(any(n.op_type=="BatchNormalization" for n in onnx.load("bn_mixed.onnx").graph.node))' ||
  fail "the quantized BN CNN still has a BatchNormalization"
l2=$("$qat" eval bn_mixed.onnx --data val_x.npy --reference bn_cnn.onnx |
     "$py" -c 'import json,sys; print(json.load(sys.stdin)["outputs"]["logits"]["relative_l2"])')
echo "BN CNN re-measured: relative L2 $l2 (target $target)"
"$py" - "$l2" "$target" bn.json <<'PY' || fail "the BN CNN proposal does not hold when re-measured"
import json, sys
l2, target = float(sys.argv[1]), float(sys.argv[2])
r = json.load(open(sys.argv[3]))
assert l2 <= target, (l2, target)
assert abs(l2 - r["proposal"]["measured"]["metric"]) <= 1e-5 * max(1.0, l2), (l2, r["proposal"])
assert r["all_quantized"]["drop"] > target, r["all_quantized"]
PY

# --- The MLP: alone runs only, at W8A8 (levels w8a8 and fp32).
"$qat" zoo mlp -o mlp.onnx > /dev/null
"$qat" sensitivity mlp.onnx --data val_flat.npy --samples 100 --no-all-but --target-drop 0 \
  --json mlp.json --svg mlp.svg -o mlp_mixed.json > mlp.txt 2> mlp.err || fail "MLP: $(cat mlp.err)"
check_report mlp.onnx mlp.json mlp.svg mlp.txt
"$py" -c 'import json,sys; r=json.load(open("mlp.json")); sys.exit(bool(any("all_but" in l for l in r["layers"]) or set(r["proposal"]["layers"].values()) - {"w8a8","fp32"}))' ||
  fail "--no-all-but or the W8A8 levels are wrong"

# --- Bad calls: usage errors exit 2, errors 1 naming what is wrong.
set +e
"$qat" sensitivity mlp.onnx 2> err.txt; [ $? -eq 2 ] || fail "no --data should exit 2"
"$qat" sensitivity mlp.onnx --data val_flat.npy --target-drop -1 2> err.txt; [ $? -eq 2 ] || fail "a negative target should exit 2"
"$qat" sensitivity mlp.onnx --data val_flat.npy -o x.json 2> err.txt; [ $? -eq 2 ] || fail "-o without --target-drop should exit 2"
"$qat" sensitivity mlp.onnx --data val_flat.npy --metric accuracy --json never.json 2> err.txt
[ $? -eq 1 ] || fail "accuracy without labels should exit 1"
grep -q "val_flat.npy" err.txt || fail "the no-labels error should name the data: $(cat err.txt)"
[ ! -e never.json ] || fail "a failed run wrote its report"
set -e
echo "sensitivity: OK"

#!/usr/bin/python3
"""The real-model suite's numeric checks; prints one line, exits 0 (pass) or 1.

  compare.py outputs GOT_DIR WANT_DIR TOL
      every .npy of WANT_DIR against GOT_DIR's: max |got - want| / max |want|
  compare.py grads GOT_DIR MODEL_DIR TOL
      each parameter of MODEL_DIR/meta.json: GOT_DIR/<param>_grad.npy (what
      `qat grad` writes) against PyTorch's float64 gradient, relative L2;
      prints the worst tensor and the float32-PyTorch noise floor
  compare.py finite GOT_DIR
      loss.npy and every *_grad.npy are finite, and some gradient is non-zero
  compare.py export MODEL.onnx
      the export's opset and its int8 weights: initializers of type int8
      feeding DequantizeLinear (needs at least one, opset >= 13, the input's
      batch dimension still dynamic, and no BatchNormalization left: it
      folds before quantization, or in QAT for a training-mode export)
  compare.py qdq MODEL.onnx
      the number of QuantizeLinear and DequantizeLinear nodes
  compare.py field MODEL_DIR KEY
      prints meta.json's KEY
"""
import glob
import json
import os
import sys

import numpy as np

from model_util import file_name, rel_l2




def outputs(got_dir, want_dir, tol):
    worst, worst_name = 0.0, None
    files = sorted(glob.glob(os.path.join(want_dir, "*.npy")))
    if not files:
        return f"no .npy in {want_dir}", False
    for f in files:
        base = os.path.basename(f)
        g = os.path.join(got_dir, base)
        if not os.path.exists(g):
            return f"{base}: not written", False
        want, got = np.load(f), np.load(g)
        if want.shape != got.shape:
            return f"{base}: shape {list(got.shape)} vs expected {list(want.shape)}", False
        err = float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))
        if not np.isfinite(err) or err > worst or worst_name is None:
            worst, worst_name = err, base[:-4]
    ok = bool(np.isfinite(worst) and worst <= tol)
    return f"{worst:.1e}", ok


def grads(got_dir, model_dir, tol):
    meta = json.load(open(os.path.join(model_dir, "meta.json")))
    worst, worst_name, missing = -1.0, None, []
    for name in sorted(meta["params"]):
        g = os.path.join(got_dir, file_name(name + "_grad") + ".npy")
        if not os.path.exists(g):
            missing.append(name)
            continue
        want = np.load(os.path.join(model_dir, "grads64", file_name(name) + ".npy"))
        got = np.load(g)
        if got.shape != want.shape:
            return f"{name}: gradient shape {list(got.shape)} vs {list(want.shape)}", False
        e = rel_l2(got, want)
        if not np.isfinite(e) or e > worst:
            worst, worst_name = e, name
    if missing:
        return f"no gradient for {len(missing)} of {len(meta['params'])} parameters " \
               f"(first: {missing[0]})", False
    floor = max(meta["grad_noise_floor"].values())
    ok = bool(np.isfinite(worst) and worst <= tol)
    return f"{worst:.1e} ({worst_name}; fp32 floor {floor:.0e})", ok


def finite(got_dir):
    files = sorted(glob.glob(os.path.join(got_dir, "*_grad.npy")))
    if not files:
        return "no gradients written", False
    loss = np.load(os.path.join(got_dir, "loss.npy"))
    bad = [os.path.basename(f)[:-9] for f in files if not np.isfinite(np.load(f)).all()]
    if bad or not np.isfinite(loss).all():
        return f"not finite: {(bad or ['loss'])[0]}", False
    nonzero = sum(bool(np.any(np.load(f) != 0)) for f in files)
    return f"{nonzero}/{len(files)} non-zero, loss {float(loss.ravel()[0]):.4g}", nonzero > 0



def export(path):
    import onnx
    m = onnx.load(path)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    int8 = {i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    weights = sum(1 for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8)
    batch = m.graph.input[0].type.tensor_type.shape.dim[0] if m.graph.input else None
    dynamic = batch is not None and (batch.dim_param != "" or not batch.HasField("dim_value"))
    # BatchNormalization folds: before quantization (inference mode) or, for
    # a training-mode export, as QAT simulates it (issue 15).
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    text = (f"opset {opset}, {weights} int8 weights" + ("" if dynamic else ", static batch") +
            (f", {bn} BatchNormalization" if bn else ""))
    return text, opset >= 13 and weights > 0 and dynamic and bn == 0


def qdq(path):
    import onnx
    nodes = onnx.load(path).graph.node
    q = sum(n.op_type == "QuantizeLinear" for n in nodes)
    dq = sum(n.op_type == "DequantizeLinear" for n in nodes)
    return f"{q} Q, {dq} DQ", q + dq > 0


def main(argv):
    mode = argv[1]
    if mode == "field":
        print(json.load(open(os.path.join(argv[2], "meta.json")))[argv[3]])
        return 0
    if mode == "outputs":
        text, ok = outputs(argv[2], argv[3], float(argv[4]))
    elif mode == "grads":
        text, ok = grads(argv[2], argv[3], float(argv[4]))
    elif mode == "finite":
        text, ok = finite(argv[2])
    elif mode == "qdq":
        text, ok = qdq(argv[2])
    elif mode == "export":
        text, ok = export(argv[2])
    else:
        print(__doc__)
        return 2
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

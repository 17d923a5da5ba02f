#!/usr/bin/python3
"""Builds models in the shapes paddle2onnx and tf2onnx write, with the ONNX helper API.

    /usr/bin/python3 build_exporter_style_models.py OUT_DIR [MODEL ...]

Each model goes into OUT_DIR/MODEL/ laid out like export_torch_models.py's:
model.onnx (seeded random weights, dynamic batch), in/<input>.npy and
in/labels.npy (a batch and its loss targets), data/features.npy and
data/labels.npy (calibration and training data) and meta.json, whose
"params" are the weights and biases a user would train.  When torch is
installed, a small PyTorch interpreter of these graphs (torch_reference)
writes the expected outputs (expected64/, expected32/) and the autograd
gradients of the loss for every parameter (grads64/, grads32/); without it,
run_real_models.sh takes ONNX Runtime's outputs as the reference and only
checks that the gradients are finite.

  paddle_ocr_cls    paddle2onnx, opset 9: an OCR text-direction classifier
                    (PP-LCNet-like): weights in Constant nodes,
                    BatchNormalization, hard_swish as Add/Clip(attributes)/Mul/Div,
                    a squeeze-excite block with HardSigmoid, Reshape [0, -1],
                    MatMul + Add, Softmax axis=1 on 2-D
  paddle_det_neck   paddle2onnx, opset 11: a DB-detector-like FPN neck and
                    head: Resize (nearest, asymmetric, floor, scales input),
                    ConvTranspose, BatchNormalization, Sigmoid
  paddle_det_neck_op9  the same at opset 9, with Upsample instead of Resize
  tf2onnx_audio_cnn tf2onnx, opset 13: a Keras audio CNN on an NHWC
                    spectrogram: Transpose to NCHW and back, Clip (Relu6, min
                    and max as inputs), MaxPool, Max (leaky max(x, 0.2x)),
                    Reshape [-1, F], MatMul + Add dense layers; tensor names
                    with '/' and ':' as TensorFlow writes them
Exits 77 (ctest's skip) when onnx or numpy is missing.
"""
import json
import os
import sys

SKIP = 77
try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    print(f"SKIPPED: {e}; the real-model tests need python3-onnx and python3-numpy, "
          "run with /usr/bin/python3")
    sys.exit(SKIP)
from model_util import file_name, model_names, rel_l2, save

CLASSES = 10
BATCH = 8
DATA_SAMPLES = 64


class Graph:
    """Nodes and weights; weights become Constant nodes (paddle2onnx) or initializers."""

    def __init__(self, rng, constant_weights):
        self.rng, self.constant_weights = rng, constant_weights
        self.nodes, self.inits, self.count = [], [], 0
        self.params = []  # the weights and biases a user would train

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def tensor(self, name, array, param=False):
        if param:
            self.params.append(name)
        if self.constant_weights:
            self.nodes.append(helper.make_node(
                "Constant", [], [name], value=numpy_helper.from_array(array, name)))
        else:
            self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, name, shape, fan_in=None, scale=1.0):
        fan_in = fan_in or int(np.prod(shape[1:]))
        a = (self.rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32)
        return self.tensor(name, a, param=True)

    def bias(self, name, n):
        return self.tensor(name, (0.1 * self.rng.standard_normal(n)).astype(np.float32), param=True)

    def op(self, op_type, inputs, prefix=None, outputs=1, **attrs):
        prefix = prefix or op_type.lower()
        outs = [self.name(prefix) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if outputs == 1 else outs

    def conv(self, x, cin, cout, k, stride=1, group=1, bias=False, prefix="conv"):
        w = self.weight(self.name(prefix + "_weights"), (cout, cin // group, k, k))
        inputs = [x, w]
        if bias:
            inputs.append(self.bias(self.name(prefix + "_bias"), cout))
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[k // 2] * 4, group=group)

    def bn(self, x, c):
        r = self.rng
        params = [self.tensor(self.name(n), v.astype(np.float32), param=n in ("bn_scale", "bn_offset"))
                  for n, v in (("bn_scale", 1 + 0.1 * r.standard_normal(c)),
                               ("bn_offset", 0.1 * r.standard_normal(c)),
                               ("bn_mean", 0.1 * r.standard_normal(c)),
                               ("bn_variance", 0.75 + 0.5 * r.random(c)))]
        return self.op("BatchNormalization", [x] + params, epsilon=1e-5, momentum=0.9)

    def hard_swish(self, x):
        """paddle2onnx's hard_swish below opset 14: x * clip(x + 3, 0, 6) / 6."""
        three = self.tensor(self.name("hs_offset"), np.array(3.0, np.float32))
        six = self.tensor(self.name("hs_scale"), np.array(6.0, np.float32))
        clipped = self.op("Clip", [self.op("Add", [x, three])], min=0.0, max=6.0)
        return self.op("Div", [self.op("Mul", [x, clipped]), six])

    def model(self, inputs, outputs, opset, producer):
        graph = helper.make_graph(self.nodes, "main", inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=producer[0], producer_version=producer[1])
        m.ir_version = 6 if opset <= 11 else 7
        onnx.checker.check_model(m)
        return m


def ocr_cls(rng):
    """PP-LCNet-like text-direction classifier, [N,3,32,96] -> softmax over 10 classes."""
    g = Graph(rng, constant_weights=True)
    x = g.hard_swish(g.bn(g.conv("x", 3, 16, 3, stride=2), 16))
    # depthwise-separable block with squeeze-excite (HardSigmoid, paddle's slope 0.2)
    x = g.hard_swish(g.bn(g.conv(x, 16, 16, 3, stride=2, group=16), 16))
    s = g.op("GlobalAveragePool", [x])
    s = g.op("Relu", [g.conv(s, 16, 4, 1, bias=True)])
    s = g.op("HardSigmoid", [g.conv(s, 4, 16, 1, bias=True)], alpha=0.2, beta=0.5)
    x = g.op("Mul", [x, s])
    x = g.hard_swish(g.bn(g.conv(x, 16, 32, 1), 32))
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Reshape", [x, g.tensor(g.name("shape"), np.array([0, -1], np.int64))])
    w = g.weight(g.name("fc_weights"), (32, CLASSES), fan_in=32)
    b = g.bias(g.name("fc_bias"), CLASSES)
    logits = g.op("Add", [g.op("MatMul", [x, w]), b])
    g.nodes.append(helper.make_node("Softmax", [logits], ["save_infer_model/scale_0.tmp_1"],
                                    axis=1, name="softmax_out"))
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 96])],
                   [helper.make_tensor_value_info("save_infer_model/scale_0.tmp_1",
                                                  TensorProto.FLOAT, ["N", CLASSES])],
                   9, ("PaddlePaddle", "paddle2onnx-style")), (3, 32, 96), g.params


def det_neck(rng, opset):
    """DB-like: two strided stages, an FPN merge with 2x nearest upsampling, a
    ConvTranspose head back to the input size; [N,3,32,32] -> [N,1,32,32]."""
    g = Graph(rng, constant_weights=True)
    c2 = g.op("Relu", [g.bn(g.conv("x", 3, 16, 3, stride=2), 16)])       # 16x16
    c3 = g.op("Relu", [g.bn(g.conv(c2, 16, 32, 3, stride=2), 32)])       # 8x8
    l3 = g.conv(c3, 32, 16, 1)
    scales = np.array([1, 1, 2, 2], np.float32)
    if opset >= 11:
        roi = g.tensor(g.name("roi"), np.zeros(0, np.float32))
        up = g.op("Resize", [l3, roi, g.tensor(g.name("scales"), scales)], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        up = g.op("Upsample", [l3, g.tensor(g.name("scales"), scales)], mode="nearest")
    p2 = g.op("Add", [g.conv(c2, 16, 16, 1), up])
    p2 = g.conv(p2, 16, 16, 3)
    h = g.op("HardSigmoid", [g.bn(p2, 16)], alpha=0.2, beta=0.5)
    w = g.weight(g.name("deconv_weights"), (16, 8, 2, 2), fan_in=16 * 4)
    b = g.bias(g.name("deconv_bias"), 8)
    h = g.op("ConvTranspose", [h, w, b], kernel_shape=[2, 2], strides=[2, 2])  # 32x32
    h = g.op("Relu", [g.bn(h, 8)])
    h = g.conv(h, 8, 1, 3, bias=True)
    g.nodes.append(helper.make_node("Sigmoid", [h], ["maps"], name="sigmoid_out"))
    return g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                   [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["N", 1, 32, 32])],
                   opset, ("PaddlePaddle", "paddle2onnx-style")), (3, 32, 32), g.params


def audio_cnn(rng):
    """Keras CNN on a [N,40,32,1] log-mel spectrogram (NHWC), as tf2onnx writes it."""
    g = Graph(rng, constant_weights=False)
    pre = "StatefulPartitionedCall/sequential"
    x = g.op("Transpose", ["input_1"], prefix=f"{pre}/conv2d/Conv2D__6", perm=[0, 3, 1, 2])
    x = g.conv(x, 1, 8, 3, bias=True, prefix=f"{pre}/conv2d/Conv2D/ReadVariableOp:0")
    lo = g.tensor(f"{pre}/re_lu/Relu6__8:0", np.array(0.0, np.float32))
    hi = g.tensor(f"{pre}/re_lu/Relu6__9:0", np.array(6.0, np.float32))
    x = g.op("Clip", [x, lo, hi], prefix=f"{pre}/re_lu/Relu6:0")
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])            # 8x20x16
    x = g.conv(x, 8, 16, 3, bias=True, prefix=f"{pre}/conv2d_1/Conv2D/ReadVariableOp:0")
    x = g.op("Transpose", [x], prefix=f"{pre}/conv2d_1/BiasAdd__20:0", perm=[0, 2, 3, 1])
    slope = g.tensor(f"{pre}/leaky/mul/y:0", np.array(0.2, np.float32))
    x = g.op("Max", [x, g.op("Mul", [x, slope])], prefix=f"{pre}/leaky/Maximum:0")
    x = g.op("MaxPool", [g.op("Transpose", [x], perm=[0, 3, 1, 2])], kernel_shape=[2, 2],
             strides=[2, 2])                                                  # 16x10x8
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    features = 10 * 8 * 16
    x = g.op("Reshape", [x, g.tensor(f"{pre}/flatten/Const:0", np.array([-1, features], np.int64))],
             prefix=f"{pre}/flatten/Reshape:0")
    w1 = g.weight(f"{pre}/dense/MatMul/ReadVariableOp:0", (features, 32), fan_in=features)
    b1 = g.bias(f"{pre}/dense/BiasAdd/ReadVariableOp:0", 32)
    x = g.op("Relu", [g.op("Add", [g.op("MatMul", [x, w1]), b1])])
    w2 = g.weight(f"{pre}/dense_1/MatMul/ReadVariableOp:0", (32, CLASSES), fan_in=32)
    b2 = g.bias(f"{pre}/dense_1/BiasAdd/ReadVariableOp:0", CLASSES)
    g.nodes.append(helper.make_node("Add", [g.op("MatMul", [x, w2]), b2], ["dense_1"],
                                    name=f"{pre}/dense_1/BiasAdd"))
    return g.model([helper.make_tensor_value_info("input_1", TensorProto.FLOAT,
                                                  ["unk__12", 40, 32, 1])],
                   [helper.make_tensor_value_info("dense_1", TensorProto.FLOAT,
                                                  ["unk__13", CLASSES])],
                   13, ("tf2onnx", "tf2onnx-style")), (40, 32, 1), g.params


# name: (builder, loss); "mse" models take a float target map as labels
MODELS = {
    "paddle_ocr_cls": (ocr_cls, "cross-entropy"),
    "paddle_det_neck": (lambda r: det_neck(r, 11), "mse"),
    "paddle_det_neck_op9": (lambda r: det_neck(r, 9), "mse"),
    "tf2onnx_audio_cnn": (audio_cnn, "cross-entropy"),
}


def torch_reference(model, params, x, targets, loss, dtype):
    """The model's outputs, loss and parameter gradients, by PyTorch autograd.

    A small interpreter of the ops these builders use, in PyTorch, so that
    the models without a PyTorch original get the same reference as those
    with one.  Returns None when torch is not installed.
    """
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    dtype = getattr(torch, dtype)
    env = {}
    for init in model.graph.initializer:
        env[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    for n in model.graph.node:
        if n.op_type == "Constant":
            env[n.output[0]] = torch.from_numpy(numpy_helper.to_array(n.attribute[0].t).copy())
    leaves = {}
    for name in params:
        leaves[name] = env[name].to(dtype).requires_grad_(True)
        env[name] = leaves[name]
    env[model.graph.input[0].name] = torch.from_numpy(x).to(dtype)

    def floats(t):
        return t.to(dtype) if t.is_floating_point() else t

    for n in model.graph.node:
        if n.op_type == "Constant":
            continue
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        i = [floats(env[name]) if name else None for name in n.input]
        t = n.op_type
        if t == "Conv":
            p = a.get("pads", [0] * 4)
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", 1),
                         (p[0], p[1]), 1, a.get("group", 1))
        elif t == "ConvTranspose":
            y = F.conv_transpose2d(i[0], i[1], i[2] if len(i) > 2 else None, a["strides"])
        elif t == "BatchNormalization":
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a["epsilon"])
        elif t == "Clip":
            lo = a["min"] if "min" in a else i[1]
            hi = a["max"] if "max" in a else i[2]
            y = torch.clamp(i[0], float(lo), float(hi))
        elif t == "HardSigmoid":
            y = torch.clamp(a["alpha"] * i[0] + a["beta"], 0, 1)
        elif t in ("Resize", "Upsample"):
            scale = i[-1].tolist()
            assert scale[:2] == [1, 1] and a["mode"] == b"nearest"
            y = i[0].repeat_interleave(int(scale[2]), 2).repeat_interleave(int(scale[3]), 3)
        elif t == "Reshape":
            shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(i[1].tolist())]
            y = i[0].reshape(shape)
        elif t == "Softmax":
            y = torch.softmax(i[0], a.get("axis", 1))
        elif t == "Transpose":
            y = i[0].permute(a["perm"])
        elif t == "MaxPool":
            y = F.max_pool2d(i[0], a["kernel_shape"], a["strides"])
        elif t == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        else:
            y = {"Add": torch.add, "Mul": torch.mul, "Div": torch.div, "MatMul": torch.matmul,
                 "Max": torch.maximum, "Relu": lambda v: torch.relu(v),
                 "Sigmoid": lambda v: torch.sigmoid(v)}[t](*i)
        env[n.output[0]] = y
    out = env[model.graph.output[0].name]
    target = torch.from_numpy(targets)
    value = F.cross_entropy(out, target) if loss == "cross-entropy" else \
        F.mse_loss(out, target.to(dtype))
    value.backward()
    return (out.detach().numpy(), float(value),
            {name: leaf.grad.numpy() for name, leaf in leaves.items()})




def build(name, out_root):
    builder, loss = MODELS[name]
    rng = np.random.default_rng(list(MODELS).index(name) + 1)  # seeded per model
    model, shape, params = builder(rng)
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))
    input_name = model.graph.input[0].name
    output = model.graph.output[0]
    out_shape = [dim.dim_value for dim in output.type.tensor_type.shape.dim][1:]

    def targets(n):
        if loss == "mse":
            return rng.random((n, *out_shape)).astype(np.float32)
        return rng.integers(0, CLASSES, n).astype(np.int64)

    x, labels = rng.standard_normal((BATCH, *shape)).astype(np.float32), targets(BATCH)
    save(os.path.join(d, "in", input_name + ".npy"), x)
    save(os.path.join(d, "in", "labels.npy"), labels)
    save(os.path.join(d, "data", "features.npy"),
         rng.standard_normal((DATA_SAMPLES, *shape)).astype(np.float32))
    save(os.path.join(d, "data", "labels.npy"), targets(DATA_SAMPLES))
    opset = model.opset_import[0].version
    meta = {"model": name, "source": model.producer_name + " (" + model.producer_version + ")",
            "opset": opset, "input": input_name, "output": output.name, "loss": loss,
            "params": {}}
    ref64 = torch_reference(model, params, x, labels, loss, "float64")
    note = "no PyTorch: ONNX Runtime is the reference for the outputs"
    if ref64 is not None:
        ref32 = torch_reference(model, params, x, labels, loss, "float32")
        out_name = file_name(output.name)
        save(os.path.join(d, "expected64", out_name + ".npy"), ref64[0])
        save(os.path.join(d, "expected32", out_name + ".npy"), ref32[0])
        meta["output_noise_floor"] = rel_l2(ref32[0], ref64[0])
        meta["loss64"], meta["loss32"] = ref64[1], ref32[1]
        meta["grad_noise_floor"] = {}
        for p in params:
            save(os.path.join(d, "grads64", file_name(p) + ".npy"), ref64[2][p])
            save(os.path.join(d, "grads32", file_name(p) + ".npy"), ref32[2][p])
            meta["params"][p] = {"torch": None, "transposed": False}
            meta["grad_noise_floor"][p] = rel_l2(ref32[2][p], ref64[2][p])
        note = (f"PyTorch reference: float32 vs float64 outputs {meta['output_noise_floor']:.1e}, "
                f"worst gradient {max(meta['grad_noise_floor'].values()):.1e}")
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    consts = sum(n.op_type == "Constant" for n in model.graph.node)
    print(f"{name}: opset {opset}, {len(model.graph.node)} nodes ({consts} Constant), "
          f"{len(model.graph.initializer)} initializers, {len(params)} parameters, loss {loss}; "
          f"{note}")




def main(argv):
    names = model_names(argv, MODELS, __doc__)
    if names is None:
        return 2
    for n in names:
        build(n, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

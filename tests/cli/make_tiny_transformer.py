#!/usr/bin/python3
"""A one-layer transformer-style classifier over token ids, for block-wise QAT.

    make_tiny_transformer.py OUT_DIR

ids [N, 8] int64 -> Gather(E [100, 64]) -> LayerNorm by ReduceMean (whose
axes become an input at opset 21) -> single-head self-attention (MatMuls,
Softmax) -> residual -> FFN 64 -> 80 -> 64 (80 is two blocks of 32 and a
partial one) -> mean over the sequence -> Gemm head [64 -> 10] -> logits.
The Gemm's and the broadcasting ops' gradients need inferred shapes.
Writes OUT_DIR/model.onnx (opset 13, seeded weights), OUT_DIR/data/ids.npy
(64 sequences, no labels) and OUT_DIR/in/ids.npy (a batch of 8).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(7)
D, H, S, V, C = 64, 80, 8, 100, 10
inits = []


def weight(name, *shape):
    w = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    inits.append(numpy_helper.from_array(w, name))
    return name


def const(name, value):
    inits.append(numpy_helper.from_array(np.asarray(value), name))
    return name


nodes = []


def node(op, inputs, output, **attrs):
    nodes.append(helper.make_node(op, inputs, [output], name=output + "_node", **attrs))
    return output


weight("E", V, D)
x = node("Gather", ["E", "ids"], "emb")
# LayerNorm written out, as older exporters do.
mu = node("ReduceMean", [x], "ln_mean", axes=[-1])
xc = node("Sub", [x, mu], "ln_centered")
var = node("ReduceMean", [node("Mul", [xc, xc], "ln_sq")], "ln_var", axes=[-1])
std = node("Sqrt", [node("Add", [var, const("eps", np.float32(1e-5))], "ln_var_eps")], "ln_std")
h = node("Add", [node("Mul", [node("Div", [xc, std], "ln_norm"),
                              weight("ln_gamma", D)], "ln_scaled"),
                 const("ln_beta", np.zeros(D, np.float32))], "ln_out")
q = node("MatMul", [h, weight("Wq", D, D)], "q")
k = node("MatMul", [h, weight("Wk", D, D)], "k")
v = node("MatMul", [h, weight("Wv", D, D)], "v")
scores = node("MatMul", [q, node("Transpose", [k], "k_t", perm=[0, 2, 1])], "scores")
scaled = node("Div", [scores, const("sqrt_d", np.float32(np.sqrt(D)))], "scores_scaled")
attn = node("MatMul", [node("Softmax", [scaled], "probs", axis=-1), v], "attn")
proj = node("MatMul", [attn, weight("Wo", D, D)], "proj")
r = node("Add", [x, proj], "residual")
f = node("Relu", [node("Add", [node("MatMul", [r, weight("W1", D, H)], "ffn_in"),
                               const("b1", np.zeros(H, np.float32))], "ffn_biased")], "ffn_act")
f2 = node("MatMul", [f, weight("W2", H, D)], "ffn_out")
r2 = node("Add", [r, f2], "residual2")
pooled = node("ReduceMean", [r2], "pooled", axes=[1], keepdims=0)
weight("Whead", D, C)
const("bhead", np.zeros(C, np.float32))
node("Gemm", [pooled, "Whead", "bhead"], "logits")

graph = helper.make_graph(
    nodes, "tiny_transformer",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", S])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", C])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
for sub in ("data", "in"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
onnx.save(model, os.path.join(out, "model.onnx"))
np.save(os.path.join(out, "data", "ids.npy"), rng.integers(0, V, (64, S)).astype(np.int64))
np.save(os.path.join(out, "in", "ids.npy"), rng.integers(0, V, (8, S)).astype(np.int64))

# A 2-input text model built with ONNX's helper API, and its data: token ids
# (int64 [N, 8]) and an attention mask (bool [N, 8]) into an embedding
# (Gather), masked sum pooling, then Gemm -> Relu -> Gemm logits [N, 4].
#   make_two_input_model.py OUT_DIR
# writes OUT_DIR/model.onnx, OUT_DIR/data/{input_ids,attention_mask}.npy
# (no labels), OUT_DIR/data.npz (the same arrays) and OUT_DIR/in/ (32 inputs
# for ONNX Runtime).
import numpy as np, onnx, sys, os
from onnx import helper, TensorProto, numpy_helper
out = sys.argv[1]
rng = np.random.default_rng(0)
V, L, D, H, C, N = 50, 8, 16, 12, 4, 256
E = rng.normal(0, 1, (V, D)).astype(np.float32)
W1 = rng.normal(0, 0.3, (D, H)).astype(np.float32); b1 = np.zeros(H, np.float32)
W2 = rng.normal(0, 0.3, (H, C)).astype(np.float32); b2 = np.zeros(C, np.float32)
nodes = [
  helper.make_node("Gather", ["E", "input_ids"], ["emb"]),
  helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
  helper.make_node("Unsqueeze", ["maskf", "ax2"], ["mask3"]),
  helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
  helper.make_node("ReduceSum", ["masked", "ax1"], ["pooled"], keepdims=0),
  helper.make_node("Gemm", ["pooled", "W1", "b1"], ["h"]),
  helper.make_node("Relu", ["h"], ["hr"]),
  helper.make_node("Gemm", ["hr", "W2", "b2"], ["logits"]),
]
inits = [numpy_helper.from_array(a, n) for a, n in [(E, "E"), (W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"),
         (np.array([2], np.int64), "ax2"), (np.array([1], np.int64), "ax1")]]
g = helper.make_graph(nodes, "two_inputs",
  [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", L]),
   helper.make_tensor_value_info("attention_mask", TensorProto.BOOL, ["N", L])],
  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", C])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 7
onnx.checker.check_model(m)
onnx.save(m, os.path.join(out, "model.onnx"))
os.makedirs(os.path.join(out, "data"), exist_ok=True)
ids = rng.integers(0, V, (N, L)).astype(np.int64)
lens = rng.integers(1, L + 1, N)
mask = np.arange(L)[None, :] < lens[:, None]
np.save(os.path.join(out, "data", "input_ids.npy"), ids)
np.save(os.path.join(out, "data", "attention_mask.npy"), mask)
np.savez(os.path.join(out, "data.npz"), input_ids=ids, attention_mask=mask)
os.makedirs(os.path.join(out, "in"), exist_ok=True)
np.save(os.path.join(out, "in", "input_ids.npy"), ids[:32])
np.save(os.path.join(out, "in", "attention_mask.npy"), mask[:32])

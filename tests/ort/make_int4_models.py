"""Writes opset-21 models with packed INT4 / UINT4 weights (ONNX 1.12 has
no INT4, so the tensors are built by hand: data_type 22 / 21, two values
per byte, the first in the low nibble) and their inputs:

    make_int4_models.py OUT_DIR

OUT_DIR/<name>.onnx and OUT_DIR/in_<name>/x.npy for each case: a MatMul
whose weight is DequantizeLinear(axis, block_size) of a [K, N] 4-bit
initializer, with the DequantizeLinear output as a second graph output.
"""
import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper

INT4, UINT4 = 22, 21


def packed(name, values, signed):
    t = TensorProto()
    t.name = name
    t.data_type = INT4 if signed else UINT4
    t.dims.extend(values.shape)
    flat = (values.astype(np.int64).ravel() & 0xF).astype(np.uint8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    t.raw_data = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()
    return t


def model(name, k, n, axis, block, signed, zero_point, out):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lo, hi = (-8, 7) if signed else (0, 15)
    q = rng.integers(lo, hi + 1, size=(k, n))
    if block:
        pshape = [k, n]
        pshape[axis] = -(-pshape[axis] // block)
    else:
        pshape = [n] if axis == 1 else [k]
    scale = rng.uniform(0.005, 0.05, size=pshape).astype(np.float32)
    inits = [packed("w_q", q, signed), helper.make_tensor("w_scale", TensorProto.FLOAT,
                                                          pshape, scale.ravel().tolist())]
    inputs = ["w_q", "w_scale"]
    if zero_point:
        inits.append(packed("w_zero_point", rng.integers(lo, hi + 1, size=pshape), signed))
        inputs.append("w_zero_point")
    attrs = {"axis": axis}
    if block:
        attrs["block_size"] = block
    nodes = [helper.make_node("DequantizeLinear", inputs, ["w"], name="dq", **attrs),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, n]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [k, n])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.save(m, os.path.join(out, name + ".onnx"))
    os.makedirs(os.path.join(out, "in_" + name), exist_ok=True)
    np.save(os.path.join(out, "in_" + name, "x.npy"),
            rng.standard_normal((4, k)).astype(np.float32))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model("block32_int4", 70, 5, 0, 32, True, True, out)     # partial last block
    model("block64_uint4", 128, 3, 0, 64, False, True, out)  # blocks divide K
    model("block16_last_axis", 5, 40, 1, 16, True, False, out)
    model("per_channel_int4", 7, 3, 1, 0, True, True, out)   # odd count
    model("per_channel_uint4", 9, 4, 1, 0, False, True, out)


if __name__ == "__main__":
    main()

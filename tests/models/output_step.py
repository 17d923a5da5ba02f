"""Prints the largest quantization step of the graph outputs of a QDQ model:
the scale of a per-tensor DequantizeLinear that produces an output directly.
Prints nothing when no output comes from one (the ort stage then keeps to
its relative L2 limit alone).

    output_step.py MODEL.onnx
"""
import sys

import onnx
from onnx import numpy_helper


def output_step(model):
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    steps = []
    for n in graph.node:
        if n.op_type != "DequantizeLinear" or n.output[0] not in outputs:
            continue
        scale = inits.get(n.input[1])
        if scale is not None and scale.size == 1:
            steps.append(float(scale.reshape(())))
    return max(steps) if steps else None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: output_step.py MODEL.onnx")
    step = output_step(onnx.load(sys.argv[1]))
    if step is not None:
        print(repr(step))

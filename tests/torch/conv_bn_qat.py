"""libqat's simulated BatchNorm folding for QAT against PyTorch's
torch.ao.nn.intrinsic.qat.ConvBn2d (torch.nn.intrinsic.qat before PyTorch
2.0), on seeded models (with and without a conv
bias, per-channel int8 weights):

  an ONNX model X -> Conv(X, DequantizeLinear(QuantizeLinear(W))) ->
  BatchNormalization(training_mode=1) -> Y, written here with onnx.helper
  (the weight scale absmax/127 per output channel), goes through
  `qat prepare --loss mse`; then
  - eval:     `qat run eval.onnx` (the deployed folding, Conv(FQ(W*f), b_fold))
              against ConvBn2d.eval();
  - training: `qat run training.onnx` (loss, gradients, running statistics)
              against ConvBn2d.train() and autograd, the weight FakeQuantize
              fixed at the scale libqat uses for the folded weight (s*|f|,
              read from training.onnx), so both round the same values.

Tolerances (relative L2 per tensor): outputs and loss 1e-5, gradients 1e-4,
running mean 1e-6; the conv bias's gradient is 0 up to rounding in both (the
batch mean cancels it), so it must be below 1e-4 times the weight
gradient's L2 in both.  The running variance is compared with the update ONNX
defines, from the batch's population variance (PyTorch updates from the
unbiased one: the two differ by the factor n/(n-1) on the batch term, which
the script prints).

  python3 conv_bn_qat.py QAT_BINARY WORK_DIR
Exit 77 (skipped) when torch is not installed; 1 when a tensor is off.
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import onnx
    import torch
    try:
        import torch.ao.nn.intrinsic.qat as nniqat
    except ImportError:  # PyTorch before 2.0 (Debian 12's 1.13): the same module
        import torch.nn.intrinsic.qat as nniqat
    from onnx import helper, numpy_helper, TensorProto
    from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver, QConfig
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (needs python3 with torch, onnx and numpy)")
    sys.exit(77)

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4
STAT_TOL = 1e-6
EPS = 1e-5
MOMENTUM = 0.1  # PyTorch's; ONNX's momentum is 1 - this


def rel(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def onnx_model(w, b, gamma, beta, mean, var, scale, path):
    c_out = w.shape[0]
    inits = [numpy_helper.from_array(w, "conv.weight"),
             numpy_helper.from_array(scale, "conv.weight_scale"),
             numpy_helper.from_array(np.zeros(c_out, np.int8), "conv.weight_zero_point"),
             numpy_helper.from_array(gamma, "bn.weight"),
             numpy_helper.from_array(beta, "bn.bias"),
             numpy_helper.from_array(mean, "bn.running_mean"),
             numpy_helper.from_array(var, "bn.running_var")]
    conv_inputs = ["x", "w_dq"]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "conv.bias"))
        conv_inputs.append("conv.bias")
    nodes = [
        helper.make_node("QuantizeLinear", ["conv.weight", "conv.weight_scale",
                                            "conv.weight_zero_point"], ["w_q"], axis=0),
        helper.make_node("DequantizeLinear", ["w_q", "conv.weight_scale",
                                              "conv.weight_zero_point"], ["w_dq"], axis=0),
        helper.make_node("Conv", conv_inputs, ["t"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["t", "bn.weight", "bn.bias", "bn.running_mean",
                                                "bn.running_var"], ["y", "bn_mean_out", "bn_var_out"], epsilon=EPS,
                         momentum=1 - MOMENTUM, training_mode=1, name="bn"),
    ]
    graph = helper.make_graph(
        nodes, "conv_bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", w.shape[1], 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c_out, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def case(qat, work, with_bias, seed):
    name = f"convbn_{'bias' if with_bias else 'nobias'}"
    torch.manual_seed(seed)
    c_in, c_out = 3, 4
    w = (torch.randn(c_out, c_in, 3, 3) * 0.3).numpy()
    b = (torch.randn(c_out) * 0.2).numpy() if with_bias else None
    gamma = (torch.rand(c_out) + 0.5).numpy()
    gamma[1] = -gamma[1]  # a negative scale: |f| in the weight scale
    beta = (torch.randn(c_out) * 0.3).numpy()
    mean = (torch.randn(c_out) * 0.2).numpy()
    var = (torch.rand(c_out) * 1.5 + 0.5).numpy()
    scale = (np.abs(w).reshape(c_out, -1).max(1) / 127).astype(np.float32)
    x = torch.randn(5, c_in, 6, 6).numpy()
    target = torch.randn(5, c_out, 6, 6).numpy()
    model_path = os.path.join(work, f"{name}.onnx")
    onnx_model(w, b, gamma, beta, mean, var, scale, model_path)
    prepared = os.path.join(work, f"{name}_prepared")
    subprocess.run([qat, "prepare", model_path, "-o", prepared, "--loss", "mse"], check=True,
                   stdout=subprocess.DEVNULL)
    np.save(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "labels.npy"), target)
    feeds = [f"x={os.path.join(work, 'x.npy')}", f"labels={os.path.join(work, 'labels.npy')}"]
    outs = {}
    for graph in ("eval", "training"):
        out = os.path.join(work, f"{name}_{graph}_out")
        subprocess.run([qat, "run", os.path.join(prepared, f"{graph}.onnx"), *feeds, "--out", out,
                        "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
        outs[graph] = {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out)}
    training = onnx.load(os.path.join(prepared, "training.onnx"))
    # The weight FakeQuant's scale: the one over the folded weight.
    scale_name = next(n.input[1] for n in training.graph.node
                      if n.op_type == "FakeQuant" and n.input[0].startswith("bn_fold/"))
    folded_scale = next(numpy_helper.to_array(t) for t in training.graph.initializer
                        if t.name == scale_name)

    # PyTorch: ConvBn2d, weights fake-quantized per channel at the scale libqat uses.
    qconfig = QConfig(activation=None, weight=FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0))
    m = nniqat.ConvBn2d(c_in, c_out, 3, padding=1, bias=with_bias, eps=EPS, momentum=MOMENTUM,
                        qconfig=qconfig)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        if with_bias:
            m.bias.copy_(torch.from_numpy(b))
        m.bn.weight.copy_(torch.from_numpy(gamma))
        m.bn.bias.copy_(torch.from_numpy(beta))
        m.bn.running_mean.copy_(torch.from_numpy(mean))
        m.bn.running_var.copy_(torch.from_numpy(var))
    fq = m.weight_fake_quant
    fq.disable_observer()
    fq.scale = torch.from_numpy(folded_scale.astype(np.float32)).reshape(-1)
    fq.zero_point = torch.zeros(c_out, dtype=torch.int32)
    fq.ch_axis = 0
    xt = torch.from_numpy(x)
    failures = []

    def check(what, ours, theirs, tol):
        r = rel(ours, theirs)
        print(f"{name}: {what}: relative L2 {r:.2e} (tolerance {tol:g})")
        if not r <= tol:
            failures.append(what)

    m.eval()
    with torch.no_grad():
        y_eval = m(xt).numpy()
    check("eval output", outs["eval"]["y"], y_eval, FORWARD_TOL)

    m.train()
    y = m(xt)
    loss = torch.mean((y - torch.from_numpy(target)) ** 2)
    loss.backward()
    check("loss", outs["training"]["loss"], loss.item(), FORWARD_TOL)
    check("conv.weight grad", outs["training"]["conv.weight_grad"], m.weight.grad, GRAD_TOL)
    check("bn.weight grad", outs["training"]["bn.weight_grad"], m.bn.weight.grad, GRAD_TOL)
    check("bn.bias grad", outs["training"]["bn.bias_grad"], m.bn.bias.grad, GRAD_TOL)
    if with_bias:
        # A bias before a training-mode BatchNorm cancels against the batch
        # mean: its gradient is 0 up to rounding in both, so compare its size
        # with the weight gradient's, not the two relatively.
        ours = float(np.linalg.norm(outs["training"]["conv.bias_grad"]))
        theirs = float(np.linalg.norm(m.bias.grad.numpy()))
        bound = GRAD_TOL * float(np.linalg.norm(m.weight.grad.numpy()))
        print(f"{name}: conv.bias grad: L2 {ours:.2e} (PyTorch {theirs:.2e}; bound {bound:.2e}, "
              "the weight gradient's times the tolerance)")
        if not (ours <= bound and theirs <= bound):
            failures.append("conv.bias grad")
    check("running mean", outs["training"]["bn.running_mean_next"], m.bn.running_mean, STAT_TOL)
    # ONNX's update uses the population variance of the BatchNorm's input.
    with torch.no_grad():
        std = torch.sqrt(torch.from_numpy(var) + EPS)
        f = torch.from_numpy(gamma) / std
        conv = torch.nn.functional.conv2d(xt, fq(m.weight * f.reshape(-1, 1, 1, 1)), None,
                                          padding=1) / f.reshape(1, -1, 1, 1)
        if with_bias:
            conv = conv + m.bias.reshape(1, -1, 1, 1)
        population = conv.var(dim=(0, 2, 3), unbiased=False)
        onnx_var = (1 - MOMENTUM) * torch.from_numpy(var) + MOMENTUM * population
    check("running variance (ONNX's update)", outs["training"]["bn.running_var_next"], onnx_var,
          STAT_TOL)
    print(f"{name}: running variance against PyTorch's unbiased update: relative L2 "
          f"{rel(outs['training']['bn.running_var_next'], m.bn.running_var):.2e} (not a check)")
    return failures


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    qat, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failures = case(qat, work, False, 0) + case(qat, work, True, 1)
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    print("ok: libqat's folding matches torch.ao.nn.intrinsic.qat.ConvBn2d")
    return 0


if __name__ == "__main__":
    sys.exit(main())

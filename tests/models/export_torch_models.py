#!/usr/bin/python3
"""Exports the PyTorch models of issue 14's real-model suite, with reference data.

    /usr/bin/python3 export_torch_models.py OUT_DIR [MODEL ...]

Each model goes into OUT_DIR/MODEL/ (seeded random weights, dynamic batch):
  model.onnx                 the export, as a user would write it
  in/<input>.npy, in/labels.npy    a batch and its cross-entropy labels
  expected64/, expected32/   PyTorch's outputs in float64 and float32
  grads64/, grads32/         PyTorch autograd's gradients of the mean
                             cross-entropy of that batch, one .npy per ONNX
                             initializer that is a parameter, named by the
                             initializer (file-safe: see file_name)
  data/features.npy, data/labels.npy   calibration and training data
  meta.json                  the loss, the ONNX-name -> torch-name mapping,
                             and the float32-vs-float64 noise floor per tensor

Eval-mode exports fold BatchNormalization into Conv (torch.onnx does it and
renames the weights onnx::Conv_NNN), so the reference gradients are taken on
the same model with Conv+BN fused in PyTorch (torch.fx), and initializers are
matched to PyTorch parameters by value (transposed when torch.onnx folded a
MatMul's Transpose).  Exits 77 (ctest's skip) when torch is not installed.
"""
import copy
import json
import os
import sys
import warnings

SKIP = 77
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # say so plainly: a skip, never a pass
    print(f"SKIPPED: {e}; the real-model tests need python3-torch and python3-torchvision "
          "(Debian packages), run with /usr/bin/python3")
    sys.exit(SKIP)
try:
    import onnx
    from onnx import numpy_helper
except ImportError as e:
    print(f"SKIPPED: {e}; install python3-onnx")
    sys.exit(SKIP)
from model_util import file_name, model_names, rel_l2, save

warnings.filterwarnings("ignore")
CLASSES = 10



class TextClassifier(nn.Module):
    """nn.Embedding of token ids -> 2-layer nn.TransformerEncoder -> mean -> Linear."""

    def __init__(self, vocab=1000, d_model=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=256,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(d_model, CLASSES)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids)).mean(dim=1))


class TinyViT(nn.Module):
    """ViT-style: 4x4 patches, a class token, a positional embedding, pre-norm encoder."""

    def __init__(self, dim=64, patches=64):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, patches + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=128, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.encoder(x))[:, 0])


def tv(name, **kw):
    return lambda: getattr(torchvision.models, name)(num_classes=CLASSES, **kw)


# name: (constructor, input shape without batch, opset, training-mode export)
MODELS = {
    "resnet18_eval": (tv("resnet18"), (3, 32, 32), 13, False),
    "resnet18_train": (tv("resnet18"), (3, 32, 32), 13, True),
    "mobilenet_v2": (tv("mobilenet_v2"), (3, 64, 64), 13, False),
    "mobilenet_v3_small": (tv("mobilenet_v3_small"), (3, 64, 64), 13, False),
    "transformer": (TextClassifier, ("ids", 16), 13, False),
    "vit": (TinyViT, (3, 32, 32), 14, False),
}
BATCH = 8
DATA_SAMPLES = 64


def make_inputs(shape, n, gen):
    if shape[0] == "ids":
        return torch.randint(0, 1000, (n, shape[1]), generator=gen, dtype=torch.int64)
    return torch.randn((n,) + tuple(shape), generator=gen)


def randomize(model, gen):
    """Seeded noise on every parameter, and non-trivial BatchNorm statistics.

    Like a trained model, no two parameters are then equal: torch.onnx shares
    one initializer between tensors of equal value (the cloned layers of an
    nn.TransformerEncoder, zero biases), which would merge their gradients.
    """
    with torch.no_grad():
        for p in model.parameters():
            s = float(p.std()) if p.numel() > 1 else 0.0
            p.add_(torch.randn(p.shape, generator=gen) * (0.1 * s if s > 0 else 0.1))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def reference_module(model, training):
    """The module whose parameters are the export's initializers."""
    if training or not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse
    return fuse(copy.deepcopy(model))  # Conv+BN folded, as torch.onnx does in eval mode


def match_initializers(onnx_model, module):
    """ONNX initializer name -> (torch parameter name, transposed), for every parameter."""
    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    params = {n: p.detach().numpy() for n, p in module.named_parameters()}
    mapping, unmatched = {}, []
    for tname, p in params.items():
        if tname in inits and inits[tname].shape == p.shape and np.array_equal(inits[tname], p):
            mapping[tname] = (tname, False)
            continue
        found = []
        for iname, a in inits.items():
            if a.dtype != np.float32 or iname in mapping:
                continue
            scale = max(float(np.abs(p).max()), 1e-30)
            for transposed, cand in ((False, p), (True, p.T if p.ndim == 2 else None)):
                if cand is not None and a.shape == cand.shape and \
                        float(np.abs(a - cand).max()) <= 1e-5 * scale:
                    found.append((iname, transposed))
        if len(found) == 1:
            mapping[found[0][0]] = (tname, found[0][1])
        else:
            unmatched.append(f"{tname} ({len(found)} candidates)")
    return mapping, unmatched


def gradients(module, x, labels, training, dtype):
    m = copy.deepcopy(module).to(dtype)
    m.train(training)
    xin = x if x.dtype == torch.int64 else x.to(dtype)
    out = m(xin)
    loss = F.cross_entropy(out, labels)
    m.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().numpy().copy() for n, p in m.named_parameters()}
    return out.detach().numpy(), float(loss), grads




def export(name, out_root):
    ctor, shape, opset, training = MODELS[name]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = ctor()
    randomize(model, gen)
    model.train(training)
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    input_name = "ids" if shape[0] == "ids" else "input"
    x = make_inputs(shape, BATCH, gen)
    labels = torch.randint(0, CLASSES, (BATCH,), generator=gen)
    seq_axes = {0: "N"}
    kwargs = dict(opset_version=opset, input_names=[input_name], output_names=["logits"],
                  dynamic_axes={input_name: seq_axes, "logits": {0: "N"}}, export_params=True)
    if training:
        kwargs.update(training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    path = os.path.join(d, "model.onnx")
    # Export a copy: a training-mode forward updates BatchNorm's running statistics.
    torch.onnx.export(copy.deepcopy(model), (x,), path, **kwargs)
    onnx_model = onnx.load(path)

    ref = reference_module(model, training)
    mapping, unmatched = match_initializers(onnx_model, ref)
    if unmatched:
        print(f"{name}: no unique ONNX initializer for {', '.join(unmatched)}")
        return False
    out64, loss64, g64 = gradients(ref, x, labels, training, torch.float64)
    out32, loss32, g32 = gradients(ref, x, labels, training, torch.float32)
    save(os.path.join(d, "in", input_name + ".npy"), x.numpy())
    save(os.path.join(d, "in", "labels.npy"), labels.numpy())
    save(os.path.join(d, "expected64", "logits.npy"), out64)
    save(os.path.join(d, "expected32", "logits.npy"), out32)
    params, noise = {}, {}
    for iname, (tname, transposed) in sorted(mapping.items()):
        a64, a32 = g64[tname], g32[tname]
        if transposed:
            a64, a32 = a64.T, a32.T
        save(os.path.join(d, "grads64", file_name(iname) + ".npy"), a64)
        save(os.path.join(d, "grads32", file_name(iname) + ".npy"), a32.astype(np.float32))
        params[iname] = {"torch": tname, "transposed": transposed}
        noise[iname] = rel_l2(a32.astype(np.float64), a64)
    features = make_inputs(shape, DATA_SAMPLES, gen)
    save(os.path.join(d, "data", "features.npy"), features.numpy())
    save(os.path.join(d, "data", "labels.npy"),
         torch.randint(0, CLASSES, (DATA_SAMPLES,), generator=gen).numpy())
    meta = {
        "model": name, "source": "pytorch " + torch.__version__, "opset": opset,
        "training_mode_export": training, "input": input_name, "output": "logits",
        "loss": "cross-entropy", "loss64": loss64, "loss32": loss32,
        "output_noise_floor": rel_l2(out32.astype(np.float64), out64),
        "params": params, "grad_noise_floor": noise,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    worst = max(noise.values()) if noise else 0.0
    print(f"{name}: opset {opset}, {len(onnx_model.graph.node)} nodes, {len(params)} parameters; "
          f"float32 vs float64 PyTorch: outputs {meta['output_noise_floor']:.2e}, "
          f"worst gradient relative L2 {worst:.2e}")
    return True


def main(argv):
    names = model_names(argv, MODELS, __doc__)
    if names is None:
        return 2
    torch.set_num_threads(2)
    ok = all([export(n, argv[1]) for n in names])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

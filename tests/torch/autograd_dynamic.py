"""libqat's gradients against PyTorch autograd on two PyTorch 1.13 exports with
a dynamic batch and shapes computed at run time (issue 14, the gradient
builder's part):

  vit:         Conv stem, MaxPool 3x3/2 (overlapping windows at opset 13),
               ConvTranspose, patch Conv, a class token expanded over the batch,
               positional embeddings sliced to the sequence, MultiheadAttention
               (computed Reshapes), the class token's row (Gather) and a head;
  transformer: nn.Embedding over repeated token ids (Gather with repeats at
               opset 13), a 2-layer nn.TransformerEncoder (ReLU, batch_first;
               LayerNorm as PyTorch decomposes it at opset 13), mean pooling;
  resnet18:    torchvision's, exported in training mode (see below).

Each model is exported once (opset 13, batch symbolic), prepared once by
`qat prepare`, and run by `qat grad` at batch 3 and at batch 5; every gradient
is compared with PyTorch's (relative L2 per tensor), and ONNX Runtime runs
the training graph too (when node and onnxruntime-node are installed).  PyTorch's exporter merges
initializers with equal values (the encoder's layers start equal): such an
initializer's gradient is the sum of those of the parameters it stands for.

  python3 autograd_dynamic.py QAT_BINARY WORK_DIR
Exit 77 (skipped) when torch is not installed; 1 when a gradient is off by
more than 1e-5 relative L2 (resnet18: more than twice float32 PyTorch's own
error against float64).
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    from onnx import numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (needs python3 with torch, onnx and numpy)")
    sys.exit(77)

TOLERANCE = 1e-5


class Vit(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.patch = nn.Conv2d(4, 16, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 16) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 20, 16) * 0.5)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        t = self.patch(self.up(x)).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.size(0), -1, -1), t], 1)
        t = t + self.pos[:, :t.size(1)]
        t, _ = self.attn(t, t, t, need_weights=False)
        return self.head(t[:, 0])


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(32, 5)

    def forward(self, ids):
        return self.head(self.enc(self.emb(ids)).mean(1))


def vit_input(n):
    return torch.randn(n, 1, 16, 16)


def token_input(n):
    ids = torch.randint(0, 50, (n, 12))
    ids[:, :4] = 7  # repeated tokens: their embedding gradients add up
    return ids


def ort_check(training, x, labels, expected, work):
    """ONNX Runtime runs the same training graph (opset 16 when raised) and
    matches `qat grad` (tests/ort/ort_compare.js), when node and
    onnxruntime-node are installed."""
    compare = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ort", "ort_compare.js")
    inputs = os.path.join(work, "ort_inputs")
    os.makedirs(inputs, exist_ok=True)
    np.save(os.path.join(inputs, "input.npy"), x.numpy())
    np.save(os.path.join(inputs, "labels.npy"), labels.numpy())
    try:
        r = subprocess.run(["node", compare, training, inputs, expected, "--rtol", "1e-4",
                            "--atol", "1e-6"], stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        print("  ONNX Runtime: skipped (node is not installed)")
        return
    if r.returncode == 77:
        print("  ONNX Runtime: skipped (onnxruntime-node is not installed)")
        return
    print("  ONNX Runtime: " + r.stdout.strip().splitlines()[-1])
    if r.returncode != 0:
        print(r.stdout)
        sys.exit(1)


def run(qat, work, name, model, make_input):
    torch.manual_seed(0)
    m = model().eval()
    path = os.path.join(work, f"{name}.onnx")
    torch.onnx.export(m, make_input(2), path, opset_version=13, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    prepared = os.path.join(work, f"{name}_prepared")
    subprocess.run([qat, "prepare", path, "-o", prepared], check=True)
    params = {k: p.detach().numpy().copy() for k, p in m.named_parameters()}
    inits = [i for i in onnx.load(path).graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    worst = 0.0
    covered = set()  # PyTorch parameters whose gradient was compared
    for n in (3, 5):
        torch.manual_seed(n)
        x, labels = make_input(n), torch.randint(0, 5, (n,))
        m.zero_grad()
        loss = nn.functional.cross_entropy(m(x), labels)
        loss.backward()
        grads = {k: p.grad.numpy() for k, p in m.named_parameters()}
        out = os.path.join(work, f"{name}_grad{n}")
        np.save(os.path.join(work, "x.npy"), x.numpy())
        np.save(os.path.join(work, "labels.npy"), labels.numpy())
        subprocess.run([qat, "grad", os.path.join(prepared, "training.onnx"),
                        "input=" + os.path.join(work, "x.npy"),
                        "labels=" + os.path.join(work, "labels.npy"), "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        ort_check(os.path.join(prepared, "training.onnx"), x, labels, out, work)
        ours_loss = float(np.load(os.path.join(out, "loss.npy")))
        print(f"{name} batch {n}: loss {ours_loss:.7f} (PyTorch {float(loss):.7f})")
        for init in inits:
            f = os.path.join(out, init.name.replace(":", "_") + "_grad.npy")
            if not os.path.exists(f):
                continue
            value, ours = numpy_helper.to_array(init), np.load(f)
            want, uses = np.zeros_like(ours), 0
            for k, p in params.items():
                if p.shape == value.shape and np.array_equal(p, value):
                    want, uses = want + grads[k], uses + 1
                    covered.add(k)
                elif p.ndim == 2 and p.T.shape == value.shape and np.array_equal(p.T, value):
                    want, uses = want + grads[k].T, uses + 1
                    covered.add(k)
            if uses == 0:
                continue
            rel = float(np.linalg.norm(ours - want) / max(np.linalg.norm(want), 1e-30))
            worst = max(worst, rel)
            print(f"  {init.name:44s} x{uses}  relative L2 {rel:.2e}")
    missing = sorted(set(params) - covered)
    if missing:
        print(f"{name}: no libqat gradient for PyTorch's {missing}")
        return float("inf")
    return worst


def resnet18_training_mode(qat, work):
    """torchvision's resnet18 exported in training mode (BatchNormalization
    with its running statistics, batch statistics differentiated), at
    [N, 3, 32, 32]: its deep BatchNorms over few values make float32 itself
    noisy, so both libqat and float32 PyTorch are measured against float64
    PyTorch, and libqat must stay within twice float32 PyTorch's error."""
    try:
        import torchvision
    except ImportError:
        print("resnet18: skipped (torchvision is not installed)")
        return True
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10).train()
    path = os.path.join(work, "resnet18_train.onnx")
    torch.onnx.export(m, torch.randn(2, 3, 32, 32), path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    prepared = os.path.join(work, "resnet18_prepared")
    subprocess.run([qat, "prepare", path, "-o", prepared], check=True)
    torch.manual_seed(3)
    x, labels = torch.randn(3, 3, 32, 32), torch.randint(0, 10, (3,))
    np.save(os.path.join(work, "x.npy"), x.numpy())
    np.save(os.path.join(work, "labels.npy"), labels.numpy())
    out = os.path.join(work, "resnet18_grad3")
    subprocess.run([qat, "grad", os.path.join(prepared, "training.onnx"),
                    "input=" + os.path.join(work, "x.npy"),
                    "labels=" + os.path.join(work, "labels.npy"), "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        mm = m.to(dtype)
        mm.zero_grad()
        nn.functional.cross_entropy(mm(x.to(dtype)), labels).backward()
        grads[dtype] = {k: p.grad.double().numpy() for k, p in mm.named_parameters()}
    worst_ours = worst_f32 = 0.0
    for k, g64 in grads[torch.float64].items():
        norm = max(np.linalg.norm(g64), 1e-30)
        ours = np.load(os.path.join(out, k + "_grad.npy")).astype(np.float64)
        worst_ours = max(worst_ours, np.linalg.norm(ours - g64) / norm)
        worst_f32 = max(worst_f32, np.linalg.norm(grads[torch.float32][k] - g64) / norm)
    print(f"resnet18 (training mode) batch 3, {len(grads[torch.float64])} parameters: worst "
          f"relative L2 to float64 PyTorch {worst_ours:.2e} (float32 PyTorch {worst_f32:.2e})")
    return worst_ours <= max(2 * worst_f32, TOLERANCE)


def main():
    qat, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    worst = max(run(qat, work, "vit", Vit, vit_input),
                run(qat, work, "transformer", Transformer, token_input))
    print(f"vit and transformer, worst relative L2: {worst:.2e} (tolerance {TOLERANCE:g})")
    resnet_ok = resnet18_training_mode(qat, work)
    sys.exit(0 if worst <= TOLERANCE and resnet_ok else 1)


if __name__ == "__main__":
    main()

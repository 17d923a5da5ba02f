#!/usr/bin/env python3
"""The CNNs of issue 16, libqat against its peers in one run, 1 thread,
batch 32: the forward pass against ONNX Runtime and the fp32 training step
(cross-entropy, AdamW) against PyTorch.

    conv_vs_peers.py --bench build/benchmarks/conv_models_benchmark [--threads 1]
                     [--rounds 2] [--models resnet18_32,mobilenet_v2_64] [--no-train]

The models are torchvision's resnet18 and mobilenet_v2 (10 classes, seed 0),
exported by PyTorch in eval mode (torch.onnx folds BatchNormalization into
the convolutions); libqat and ONNX Runtime run that export.  PyTorch's step
trains the same network eagerly, BatchNormalization included (what a user
would run).  libqat's side is conv_models_benchmark (Google Benchmark, best
repetition); the peers keep their best too; rounds alternate between sides.
Prints each time and the ratio libqat / peer.  Says plainly what it skipped
and why (no PyTorch, no node or onnxruntime-node).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from gbench import best_times_ms

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"

MODELS = {  # name: (torchvision constructor, image side)
    "resnet18_32": ("resnet18", 32),
    "resnet18_64": ("resnet18", 64),
    "mobilenet_v2_64": ("mobilenet_v2", 64),
}

EXPORT = r'''
import sys, warnings, torch, torchvision
warnings.filterwarnings("ignore")
torch.manual_seed(0)
arch, side, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = getattr(torchvision.models, arch)(num_classes=10).eval()
torch.onnx.export(model, torch.rand(1, 3, side, side), path, input_names=["input"],
                  output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                  opset_version=13)
'''

TORCH_STEP = r'''
import json, sys, time, warnings, torch, torchvision
warnings.filterwarnings("ignore")
arch, side, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = getattr(torchvision.models, arch)(num_classes=10).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(batch, 3, side, side)
y = torch.arange(batch) % 10
def step():
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
for _ in range(3):
    step()
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    best = min(best, (time.perf_counter() - t0) / 3)
print(json.dumps({"ms": best * 1e3, "torch": torch.__version__}))
'''


def libqat_ms(bench, path, shape, threads, what):
    # The benchmark reads its model from the environment it inherits.
    os.environ.update(QAT_BENCH_MODEL=path, QAT_BENCH_SHAPE=shape, QAT_BENCH_CLASSES="10")
    times = best_times_ms(bench, f"Model{what}/threads:{threads}$", repetitions=3)
    return min(times.values())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--models", default="resnet18_32,mobilenet_v2_64")
    p.add_argument("--no-train", action="store_true")
    args = p.parse_args()
    skipped = []
    have_torch = subprocess.run([PY, "-c", "import torch, torchvision"],
                                capture_output=True).returncode == 0
    if not have_torch:
        print("SKIPPED everything: PyTorch and torchvision are needed to export the models "
              "(Debian python3-torch, python3-torchvision)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.models.split(","):
            arch, side = MODELS[name]
            path = os.path.join(tmp, f"{name}.onnx")
            subprocess.run([PY, "-c", EXPORT, arch, str(side), path], check=True)
            shape = f"{args.batch}x3x{side}x{side}"
            best = {}
            def keep(key, ms):
                if ms is not None:
                    best[key] = min(best.get(key, float("inf")), ms)
            for _ in range(args.rounds):
                keep("qat_fwd", libqat_ms(args.bench, path, shape, args.threads, "Forward"))
                proc = subprocess.run(["node", os.path.join(HERE, "ort_forward_time.js"), path,
                                       shape, "--threads", str(args.threads)],
                                      capture_output=True, text=True)
                if proc.returncode == 0:
                    keep("ort_fwd", json.loads(proc.stdout)["ms"])
                else:
                    skipped.append(f"{name} ONNX Runtime: {(proc.stdout + proc.stderr).strip()}")
                if args.no_train:
                    continue
                keep("qat_step", libqat_ms(args.bench, path, shape, args.threads, "TrainStep"))
                proc = subprocess.run([PY, "-c", TORCH_STEP, arch, str(side), str(args.batch),
                                       str(args.threads)], capture_output=True, text=True)
                if proc.returncode == 0:
                    keep("torch_step", json.loads(proc.stdout.strip().splitlines()[-1])["ms"])
                else:
                    skipped.append(f"{name} PyTorch step: {proc.stderr.strip()[-300:]}")
            rows.append((name, best))
    print(f"batch {args.batch}, {args.threads} thread(s), best of {args.rounds} alternated rounds"
          " (ms)")
    for name, b in rows:
        line = f"{name}: libqat forward {b['qat_fwd']:.1f}"
        if "ort_fwd" in b:
            line += f", ONNX Runtime {b['ort_fwd']:.1f} ({b['qat_fwd'] / b['ort_fwd']:.2f}x)"
        if "qat_step" in b:
            line += f"; libqat step {b['qat_step']:.1f}"
            if "torch_step" in b:
                line += f", PyTorch {b['torch_step']:.1f} ({b['qat_step'] / b['torch_step']:.2f}x)"
        print(line)
    for s in dict.fromkeys(skipped):
        print("SKIPPED", s)


if __name__ == "__main__":
    main()

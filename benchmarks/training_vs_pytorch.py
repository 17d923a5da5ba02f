#!/usr/bin/env python3
"""One training step of the 784-500-10 MLP at batch 64 (forward, backward,
AdamW update): libqat against PyTorch, in the same run, on one thread.

    training_vs_pytorch.py --bench build/benchmarks/training_benchmark

Prints both times and the ratio (issue target: libqat <= 0.8x PyTorch).  Says
plainly when PyTorch (Debian python3-torch) is missing.
"""
import argparse
import json
import os
import subprocess
import sys

TORCH_STEP = r'''
import json, time, torch
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(64, 784)
y = torch.randint(0, 10, (64,))
def step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
for _ in range(20):
    step()
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(50):
        step()
    best = min(best, (time.perf_counter() - t0) / 50)
print(json.dumps({"ms": best * 1e3, "torch": torch.__version__}))
'''


def torch_time():
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if not os.path.exists(py):
            continue
        proc = subprocess.run([py, "-c", TORCH_STEP], capture_output=True, text=True)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", required=True)
    args = parser.parse_args()
    out = subprocess.run([args.bench, "--benchmark_filter=TrainStep/threads:1",
                          "--benchmark_format=json"], check=True, capture_output=True,
                         text=True).stdout
    ours = [b for b in json.loads(out)["benchmarks"] if "TrainStep" in b["name"]][0]
    ours_ms = ours["real_time"] if ours["time_unit"] == "ms" else ours["real_time"] / 1e6
    print(f"libqat: {ours_ms:.3f} ms per AdamW step (MLP 784-500-10, batch 64, 1 thread)")
    t = torch_time()
    if t is None:
        print("PyTorch: SKIPPED, not installed (Debian package python3-torch)")
        return
    ratio = ours_ms / t["ms"]
    verdict = "target met" if ratio <= 0.8 else "BELOW TARGET"
    print(f"PyTorch {t['torch']}: {t['ms']:.3f} ms per step")
    print(f"ratio libqat / PyTorch: {ratio:.2f} (target <= 0.80: {verdict})")


if __name__ == "__main__":
    main()

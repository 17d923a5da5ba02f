#!/usr/bin/env python3
"""The executor against ONNX Runtime 1.30, in one run, same thread count:
the forward pass of the 784-500-10 MLP and of LeNet-5 at batch 64.

    executor_vs_ort.py --qat build/examples/qat --bench build/benchmarks/training_benchmark

Prints both times and the ratio (issue target: libqat <= 1.3x ONNX Runtime).
Says plainly when node or onnxruntime-node (.ci/install-ort.sh) is missing.
"""
import argparse
import json
import os
import subprocess
import tempfile

from gbench import best_times_ms

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--qat", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for name, shape in (("mlp", "64x784"), ("lenet5", "64x1x28x28")):
            path = os.path.join(tmp, f"{name}.onnx")
            subprocess.run([args.qat, "zoo", name, "-o", path], check=True)
            models[name] = (path, shape)
        # Rounds alternate between the two sides, and each keeps its best,
        # so that a slow spell of a shared machine hits both alike.
        ours, theirs, skipped = {}, {}, {}
        for _ in range(args.rounds):
            for name, ms in best_times_ms(args.bench, "Forward").items():
                if name.endswith(f"threads:{args.threads}"):
                    key = "mlp" if name.startswith("Forward/") else "lenet5"
                    ours[key] = min(ours.get(key, float("inf")), ms)
            for name, (path, shape) in models.items():
                proc = subprocess.run(["node", os.path.join(HERE, "ort_forward_time.js"), path,
                                       shape, "--threads", str(args.threads)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    skipped[name] = proc.stdout.strip() or proc.stderr.strip()
                    continue
                ms = json.loads(proc.stdout)["ms"]
                theirs[name] = min(theirs.get(name, float("inf")), ms)
    for name in models:
        if name not in theirs:
            print(f"{name}: ONNX Runtime SKIPPED ({skipped.get(name, 'no result')})")
            continue
        ratio = ours[name] / theirs[name]
        verdict = "target met" if ratio <= 1.3 else "BELOW TARGET"
        print(f"{name} forward, batch 64, {args.threads} thread(s): libqat {ours[name]:.3f} ms, "
              f"ONNX Runtime {theirs[name]:.3f} ms, ratio {ratio:.2f} (target <= 1.3: {verdict})")

if __name__ == "__main__":
    main()

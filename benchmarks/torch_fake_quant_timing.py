#!/usr/bin/env python3
"""Times PyTorch's torch.fake_quantize_per_tensor_affine on one thread.

Prints one JSON object: {"ns_per_element": ..., "torch_version": ...}, or
{"skipped": "<reason>"} when PyTorch cannot be imported.  Used by
kernel_summary.py, which runs libqat's benchmark in the same session.
"""
import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", type=int, default=1 << 24)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:
        import torch
    except ImportError as e:
        print(json.dumps({"skipped": f"PyTorch is not installed ({e})"}))
        return
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.elements, generator=gen, dtype=torch.float32)
    # Same parameters as libqat's benchmark: scale 0.02, zero point 3, int8.
    torch.fake_quantize_per_tensor_affine(x, 0.02, 3, -128, 127)  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        torch.fake_quantize_per_tensor_affine(x, 0.02, 3, -128, 127)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({
        "ns_per_element": best * 1e9 / args.elements,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()

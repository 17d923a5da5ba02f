#!/usr/bin/env python3
"""Runs libqat's FakeQuant benchmark and prints ratios measured in one run.

Targets (issue 2), each on one thread:
  * forward (Y and mask) at 2^24 elements >= 70% of memcpy's bytes/s, counting
    4 bytes read and 5 written per element (memcpy: 4 read, 4 written);
  * forward >= 5x as fast as PyTorch's torch.fake_quantize_per_tensor_affine
    (which writes Y only), when PyTorch is installed (Debian python3-torch).

Usage: kernel_summary.py --bench build/benchmarks/fake_quant_benchmark
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LARGE = 1 << 24


def run_benchmark(binary, min_time):
    out = subprocess.run(
        [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
        check=True, capture_output=True, text=True).stdout
    results = {}
    for b in json.loads(out)["benchmarks"]:
        name = b["name"].replace("/real_time", "")
        results[name] = b
    return results


def ns_per_element(b):
    return 1e9 / b["items_per_second"]


def time_torch():
    """Runs the PyTorch timing in a Python that has torch, if there is one."""
    script = os.path.join(HERE, "torch_fake_quant_timing.py")
    candidates = [sys.executable, "/usr/bin/python3"]
    last = {"skipped": "no Python interpreter found"}
    for py in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        proc = subprocess.run([py, script], capture_output=True, text=True)
        if proc.returncode != 0:
            last = {"skipped": f"{py} failed: {proc.stderr.strip()[-300:]}"}
            continue
        last = json.loads(proc.stdout.strip().splitlines()[-1])
        if "skipped" not in last:
            return last
    return last


def verdict(ok):
    return "target met" if ok else "BELOW TARGET"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True,
                        help="path of the fake_quant_benchmark binary")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds per benchmark (Google Benchmark)")
    args = parser.parse_args()

    results = run_benchmark(args.bench, args.min_time)
    variants = sorted({n.split("/")[1] for n in results if n.startswith("forward/")})
    best = "avx2" if "avx2" in variants else ("sse2" if "sse2" in variants else "scalar")

    print("FakeQuant kernels, one thread unless marked (GB/s = 1e9 bytes/s)")
    print(f"{'benchmark':46s} {'ns/elem':>9s} {'GB/s':>8s} {'vs memcpy':>10s}")
    for name, b in results.items():
        size = name.split("/")[-1]
        memcpy = results.get(f"memcpy/{size}")
        ratio = (f"{b['bytes_per_second'] / memcpy['bytes_per_second']:9.0%}"
                 if memcpy and not name.startswith("memcpy") else "")
        print(f"{name:46s} {ns_per_element(b):9.3f} "
              f"{b['bytes_per_second'] / 1e9:8.2f} {ratio:>10s}")

    print()
    fwd = results[f"forward/{best}/{LARGE}"]
    memcpy = results[f"memcpy/{LARGE}"]
    ratio = fwd["bytes_per_second"] / memcpy["bytes_per_second"]
    print(f"ratio forward/{best} vs memcpy, 2^24 elements, bytes/s: "
          f"{ratio:.2f} (target >= 0.70: {verdict(ratio >= 0.70)})")

    torch = time_torch()
    if "skipped" in torch:
        print(f"ratio vs PyTorch: SKIPPED, {torch['skipped']}; "
              "install Debian's python3-torch to measure it")
    else:
        speedup = torch["ns_per_element"] / ns_per_element(fwd)
        print(f"ratio vs PyTorch {torch['torch_version']} "
              f"fake_quantize_per_tensor_affine, 2^24 elements, "
              f"{torch['threads']} thread: PyTorch {torch['ns_per_element']:.3f} "
              f"ns/elem, libqat {ns_per_element(fwd):.3f} ns/elem, "
              f"{speedup:.1f}x faster (target >= 5x: {verdict(speedup >= 5)})")


if __name__ == "__main__":
    main()

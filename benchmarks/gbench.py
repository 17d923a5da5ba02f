"""Runs a Google Benchmark binary and returns the best time of each
benchmark over several repetitions, in milliseconds.

The peers' scripts (ONNX Runtime, PyTorch) take the best of several rounds;
on a shared machine the minimum is the stable figure, so libqat's side is
measured the same way.  Benchmarks that skip with an error are left out of
the result; `errors`, when given, receives "name: message" for each.
"""
import json
import subprocess


def best_times_ms(bench, benchmark_filter, repetitions=5, min_time=None, errors=None):
    cmd = [bench, f"--benchmark_filter={benchmark_filter}",
           f"--benchmark_repetitions={repetitions}", "--benchmark_format=json"]
    if min_time is not None:
        cmd.append(f"--benchmark_min_time={min_time}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    best = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        if b.get("error_occurred"):
            if errors is not None and f"{b['name']}: {b.get('error_message')}" not in errors:
                errors.append(f"{b['name']}: {b.get('error_message')}")
            continue
        ms = b["real_time"] * scale[b["time_unit"]]
        best[b["name"]] = min(best.get(b["name"], float("inf")), ms)
    return best

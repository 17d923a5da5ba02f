#!/usr/bin/env python3
"""Training steps per second on the MLP: a Python data iterator through the
libqat package against `qat train` (a benchmark, not a test; issue 19's
target is >= 90% of the CLI's rate).

Both train the same prepared QAT folder (MLP, PTQ int8, fixed quantization
parameters) on the same seeded examples, batch 64, one thread:
  - cli:      qat train DIR --data X.npy,Y.npy  (the C++ loop over a data set)
  - iterator: Trainer.fit(a Python generator that shuffles numpy arrays and
              yields {"input": x, "labels": y} batches; each batch goes
              through qat_train_folder_callback)
  - spec:     Trainer.fit("X.npy,Y.npy") (the CLI's code path, from Python)
Steps per second come from the difference between a short and a long run of
each, so process start-up, data loading and the folder's I/O cancel out.
They are counted in CPU seconds (the process's, or the CLI child's, user +
system time): the machine is shared, and wall time swings by 2x with the
neighbours' load while CPU time does not; on an idle machine with one thread
the two agree.  Wall-time rates are printed too.  Rounds alternate between
the variants; the best of the rounds is reported.

    /usr/bin/python3 benchmarks/python_iterator_vs_cli.py [--qat build/examples/qat]
        [--lib build/lib/libqat.so] [--examples 8192] [--rounds 3] [--threads 1]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "capi", "python"))
import libqat  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qat", default=os.path.join(ROOT, "build", "examples", "qat"))
    ap.add_argument("--lib", default=None, help="libqat.so (default: what libqat.load finds)")
    ap.add_argument("--examples", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--short", type=int, default=1, help="epochs of the short run")
    ap.add_argument("--long", type=int, default=4, help="epochs of the long run")
    args = ap.parse_args()
    libqat.load(args.lib)

    work = tempfile.mkdtemp(prefix="libqat_bench_")
    try:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, args.examples).astype(np.int64)
        x = ((y[:, None] - 4.5) / 4.5 + rng.random((args.examples, 784)) - 0.5)
        x = x.astype(np.float32)
        np.save(os.path.join(work, "x.npy"), x)
        np.save(os.path.join(work, "y.npy"), y)
        spec = f"{work}/x.npy,{work}/y.npy"
        model = libqat.Model.zoo("mlp")
        qdq = libqat.quantize(model, libqat.calibrate(model, x[:512]))
        qdq.save(os.path.join(work, "qdq.onnx"))
        steps_per_epoch = -(-args.examples // args.batch)

        def fresh(name):
            folder = os.path.join(work, name)
            shutil.rmtree(folder, ignore_errors=True)
            libqat.prepare(qdq, folder)
            return folder

        def children_cpu():
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        def cli(epochs):
            folder = fresh("cli")
            start, cpu = time.perf_counter(), children_cpu()
            subprocess.run([args.qat, "train", folder, "--data", spec, "--epochs", str(epochs),
                            "--batch", str(args.batch), "--lr", "1e-4",
                            "--threads", str(args.threads)],
                           check=True, capture_output=True)
            return time.perf_counter() - start, children_cpu() - cpu

        def iterator(epochs):
            trainer = libqat.Trainer(fresh("iterator"), num_threads=args.threads)

            def batches(epoch):
                order = np.random.default_rng(epoch).permutation(args.examples)
                for i in range(0, args.examples, args.batch):
                    idx = order[i:i + args.batch]
                    yield {"input": x[idx], "labels": y[idx]}

            start, cpu = time.perf_counter(), time.process_time()
            trainer.fit(batches, epochs=epochs, lr=1e-4, steps_per_epoch=steps_per_epoch)
            return time.perf_counter() - start, time.process_time() - cpu

        def from_spec(epochs):
            trainer = libqat.Trainer(fresh("spec"), num_threads=args.threads)
            start, cpu = time.perf_counter(), time.process_time()
            trainer.fit(spec, epochs=epochs, batch=args.batch, lr=1e-4)
            return time.perf_counter() - start, time.process_time() - cpu

        variants = {"cli": cli, "iterator": iterator, "spec": from_spec}
        best = {name: 0.0 for name in variants}
        best_wall = {name: 0.0 for name in variants}
        extra_steps = (args.long - args.short) * steps_per_epoch
        for r in range(args.rounds):
            for name, run in variants.items():
                wall_short, cpu_short = run(args.short)
                wall_long, cpu_long = run(args.long)
                rate = extra_steps / (cpu_long - cpu_short)
                wall_rate = extra_steps / (wall_long - wall_short)
                best[name] = max(best[name], rate)
                best_wall[name] = max(best_wall[name], wall_rate)
                print(f"round {r + 1}: {name:8s} {rate:8.1f} steps per CPU second "
                      f"({wall_rate:.1f} per wall second)")
        print(f"\nMLP QAT (int8, fixed parameters), batch {args.batch}, {args.threads} "
              f"thread(s), {args.examples} examples, {extra_steps} steps per difference, "
              f"best of {args.rounds}:")
        for name in variants:
            print(f"  {name:8s} {best[name]:8.1f} steps/CPU-s ({100 * best[name] / best['cli']:5.1f}%"
                  f" of the CLI's)   {best_wall[name]:8.1f} steps/wall-s "
                  f"({100 * best_wall[name] / best_wall['cli']:5.1f}%)")
        ratio = best["iterator"] / best["cli"]
        print(f"python iterator / cli = {ratio:.3f} in CPU time (target >= 0.90)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

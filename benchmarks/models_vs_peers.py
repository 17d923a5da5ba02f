#!/usr/bin/env python3
"""Issue 16's benchmark: libqat against its peers on the models users train,
in one run.

    models_vs_peers.py --bench build/benchmarks/conv_models_benchmark --qat build/examples/qat
                       [--models resnet18_32,...] [--threads 1,2] [--rounds 2] [--batch 32]
    models_vs_peers.py --quick ...      # one small model, one round: the ctest

Models (PyTorch exports at seed 0, 10 classes, dynamic batch): torchvision
resnet18 at 3x32x32 and 3x64x64, mobilenet_v2 at 3x64x64 (eval-mode exports,
BatchNormalization folded), and tests/models/export_torch_models.py's 2-layer
transformer encoder (32 tokens) and ViT (32 px).

For each model and thread count, rounds alternate between the sides and each
side keeps its best:
  - libqat's fp32 and QAT training steps (conv_models_benchmark: Google
    Benchmark over Trainer::TrainStep; QAT with scales fixed, observed and
    learned) against PyTorch's eager fp32 step and eager QAT step
    (prepare_qat, the fbgemm qconfig; torchvision's quantizable resnet18 and
    mobilenet_v2 with their Conv+BN+ReLU fused; in the transformer and the
    ViT, eager QAT leaves the attention blocks and the embedding float, as
    it must), cross-entropy, AdamW;
  - libqat's forward (Executor::Run) against ONNX Runtime's (.deps/ort,
    node), at --batch;
and once per model and thread count, the peak RSS of a whole `qat train`
process (2 steps at --batch, checkpoint included) against a PyTorch process
that imports torch and trains the same batch.

Prints the times and the ratios against the issue's targets (met / MISSED):
  fp32 step / PyTorch fp32 step   <= 1.0 (CNNs), <= 0.7 (transformer, ViT)
  PyTorch QAT step / QAT step     >= 3, every mode
  QAT step / libqat fp32 step     <= 1.25, every mode
  forward / ONNX Runtime forward  <= 1.3
  peak RSS / PyTorch's            <= 1.0
and says plainly what it skipped and why.  Exits 77 (ctest's skip) when
PyTorch is missing, since nothing can be exported; 1 when libqat's side fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from gbench import best_times_ms

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(HERE, "..", "tests", "models")
PY = "/usr/bin/python3"
CLASSES = 10
VOCAB = 1000  # export_torch_models.TextClassifier's

# name: (kind, sample shape, fp32 step target against PyTorch)
MODELS = {
    "resnet18_32": ("resnet18", (3, 32, 32), 1.0),
    "resnet18_64": ("resnet18", (3, 64, 64), 1.0),
    "mobilenet_v2_64": ("mobilenet_v2", (3, 64, 64), 1.0),
    "transformer": ("transformer", (32,), 0.7),
    "vit": ("vit", (3, 32, 32), 0.7),
}
MODES = ("fixed", "observe", "learn")  # conv_models_benchmark's mode:0/1/2


# ---- PyTorch side: these functions run in child processes under PY. ----

def torch_module(kind, qat):
    """The model as PyTorch trains it (train mode), seeded; QAT-prepared if asked."""
    import torch
    import torchvision
    sys.path.insert(0, MODELS_DIR)
    import export_torch_models as etm
    torch.manual_seed(0)
    if kind in ("resnet18", "mobilenet_v2"):
        if qat:
            model = getattr(torchvision.models.quantization, kind)(num_classes=CLASSES,
                                                                   quantize=False)
            model.train()
            model.fuse_model(is_qat=True)
        else:
            model = getattr(torchvision.models, kind)(num_classes=CLASSES)
    elif kind == "transformer":
        model = etm.TextClassifier(vocab=VOCAB)
    else:
        model = etm.TinyViT()
    model.train()
    if qat:
        model.qconfig = torch.ao.quantization.get_default_qat_qconfig("fbgemm")
        if kind == "transformer":
            model.embed.qconfig = None  # embeddings take float_qparams qconfigs only
        for m in model.modules():
            # Eager QAT cannot swap attention's out_proj (a Linear subclass).
            if isinstance(m, torch.nn.MultiheadAttention):
                m.qconfig = None
        model = torch.ao.quantization.prepare_qat(model)
    return model


def torch_input(kind, shape, batch):
    import torch
    gen = torch.Generator().manual_seed(1)
    if kind == "transformer":
        return torch.randint(0, VOCAB, (batch,) + shape, generator=gen)
    return torch.rand((batch,) + shape, generator=gen)


def child_export(name, out_dir, samples):
    """Writes model.onnx (eval mode) and features.npy/labels.npy for `qat train`."""
    import warnings
    import numpy as np
    import torch
    warnings.filterwarnings("ignore")
    kind, shape, _ = MODELS[name]
    model = torch_module(kind, qat=False).eval()
    input_name = "ids" if kind == "transformer" else "input"
    x = torch_input(kind, shape, 1)
    torch.onnx.export(model, (x,), os.path.join(out_dir, "model.onnx"),
                      input_names=[input_name], output_names=["logits"],
                      dynamic_axes={input_name: {0: "N"}, "logits": {0: "N"}},
                      opset_version=14 if kind == "vit" else 13)
    np.save(os.path.join(out_dir, "features.npy"), torch_input(kind, shape, samples).numpy())
    np.save(os.path.join(out_dir, "labels.npy"), np.arange(samples, dtype=np.int64) % CLASSES)


def child_torch_step(name, batch, threads, qat, steps):
    """Prints {"ms": best time of one step} (eager mode, AdamW, cross-entropy)."""
    import warnings
    import torch
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    kind, shape, _ = MODELS[name]
    model = torch_module(kind, qat)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch_input(kind, shape, batch)
    y = torch.arange(batch) % CLASSES

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"ms": best * 1e3, "torch": torch.__version__}))


# ---- the driver ----

class RssPopen(subprocess.Popen):
    """Popen that keeps the child's own peak RSS: it reaps through wait4, whose
    rusage is that process's alone (RUSAGE_CHILDREN would be the maximum over
    every child so far).  Linux reports ru_maxrss in KB."""
    rusage_mb = None

    def _try_wait(self, wait_flags):
        try:
            pid, sts, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return (self.pid, 0)
        if pid == self.pid:
            self.rusage_mb = usage.ru_maxrss / 1024.0
        return (pid, sts)


def run_rss(cmd):
    """Runs cmd; returns (stdout, stderr, return code, peak RSS in MB)."""
    proc = RssPopen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    return out, err, proc.returncode, proc.rusage_mb


def run_child(what):
    """Runs one of this script's child tasks under PY."""
    return run_rss([PY, os.path.abspath(__file__), "--child"] + what)


def libqat_times(bench, model_dir, name, batch, threads, reps, min_time, errors):
    kind, shape, _ = MODELS[name]
    env = {"QAT_BENCH_MODEL": os.path.join(model_dir, "model.onnx"),
           "QAT_BENCH_SHAPE": "x".join(map(str, (batch,) + shape)),
           "QAT_BENCH_CLASSES": str(CLASSES)}
    if kind == "transformer":
        env["QAT_BENCH_IDS"] = str(VOCAB)
    os.environ.pop("QAT_BENCH_IDS", None)
    os.environ.update(env)  # the benchmark reads its model from the environment
    pattern = (f"Model(Forward/threads:{threads}/fuse:1|TrainStep/threads:{threads}"
               f"|QatTrainStep/mode:[0-9]/threads:{threads})$")
    out = {}
    for bname, ms in best_times_ms(bench, pattern, repetitions=reps, min_time=min_time,
                                   errors=errors).items():
        if bname.startswith("ModelForward/"):
            out["fwd"] = ms
        elif bname.startswith("ModelTrainStep/"):
            out["step"] = ms
        else:
            out["qat_" + MODES[int(bname.split("mode:")[1][0])]] = ms
    return out


def qat_train_rss(qat, model_dir, batch, threads, work, errors, label):
    """Peak RSS (MB) of `qat train`: 2 steps at `batch` and the checkpoint."""
    prep = os.path.join(work, f"prep_{threads}")
    proc = subprocess.run([qat, "prepare", os.path.join(model_dir, "model.onnx"), "-o", prep,
                           "--loss", "cross-entropy"], capture_output=True, text=True)
    if proc.returncode != 0:
        errors.append(f"{label}: qat prepare failed: {proc.stderr.strip()[-300:]}")
        return None
    data = os.path.join(model_dir, "features.npy") + "," + os.path.join(model_dir, "labels.npy")
    out, err, rc, rss = run_rss([qat, "train", prep, "--data", data, "--epochs", "1",
                                 "--batch", str(batch), "--threads", str(threads)])
    if rc != 0:
        errors.append(f"{label}: qat train failed: {(out + err).strip()[-300:]}")
        return None
    return rss


def verdict(ok):
    return "met" if ok else "MISSED"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what = sys.argv[2]
        if what == "export":
            child_export(sys.argv[3], sys.argv[4], int(sys.argv[5]))
        else:
            child_torch_step(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                             sys.argv[6] == "1", int(sys.argv[7]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, help="build/benchmarks/conv_models_benchmark")
    p.add_argument("--qat", required=True, help="the qat CLI, build/examples/qat")
    p.add_argument("--models", help="default: all of " + ",".join(MODELS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--quick", action="store_true",
                   help="the transformer at batch 8, 1 thread, 1 round, few repetitions")
    args = p.parse_args()
    reps, min_time, torch_steps, ort_iters = 3, None, 3, 10
    if args.quick:
        args.models = args.models or "transformer"
        args.threads, args.rounds, args.batch = "1", 1, 8
        reps, min_time, torch_steps, ort_iters = 1, "0.01", 2, 3
    names = (args.models or ",".join(MODELS)).split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    skipped, errors = [], []
    if subprocess.run([PY, "-c", "import torch, torchvision, numpy"],
                      capture_output=True).returncode != 0:
        print(f"SKIPPED everything: {PY} lacks torch, torchvision or numpy, needed to export "
              "the models (Debian python3-torch, python3-torchvision, python3-numpy)")
        return 77
    have_node = subprocess.run(["node", "-e", "require('" + os.path.join(
        HERE, "..", "tests", "ort", "ort_loader.js") + "').loadOrt()"],
        capture_output=True, text=True)
    if have_node.returncode != 0:
        skipped.append("ONNX Runtime forward, every model: node or onnxruntime-node missing "
                       f"({(have_node.stdout + have_node.stderr).strip()[-200:]})")
    results = {}  # (name, threads) -> {key: best ms or MB}
    torch_version = "?"
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            kind, shape, _ = MODELS[name]
            mdir = os.path.join(tmp, name)
            os.makedirs(mdir)
            out, err, rc, _ = run_child(["export", name, mdir, str(2 * args.batch)])
            if rc != 0:
                skipped.append(f"{name}: the PyTorch export failed: {err.strip()[-300:]}")
                continue
            shape_text = "x".join(map(str, (args.batch,) + shape))
            for threads in threads_list:
                best = results.setdefault((name, threads), {})
                label = f"{name} {threads}t"

                def keep(key, value):
                    if value is not None:
                        best[key] = min(best.get(key, float("inf")), value)
                for _ in range(args.rounds):
                    for key, ms in libqat_times(args.bench, mdir, name, args.batch, threads,
                                                reps, min_time, errors).items():
                        keep(key, ms)
                    if have_node.returncode == 0:
                        cmd = ["node", os.path.join(HERE, "ort_forward_time.js"),
                               os.path.join(mdir, "model.onnx"), shape_text,
                               "--threads", str(threads), "--iters", str(ort_iters)]
                        if kind == "transformer":
                            cmd += ["--ids", str(VOCAB)]
                        proc = subprocess.run(cmd, capture_output=True, text=True)
                        if proc.returncode == 0:
                            keep("ort_fwd", json.loads(proc.stdout)["ms"])
                        else:
                            skipped.append(f"{label} ONNX Runtime: "
                                           f"{(proc.stdout + proc.stderr).strip()[-300:]}")
                    for qat_flag, key in (("0", "torch_step"), ("1", "torch_qat")):
                        out, err, rc, rss = run_child([
                            "step", name, str(args.batch), str(threads), qat_flag,
                            str(torch_steps)])
                        if rc != 0:
                            skipped.append(f"{label} PyTorch {'QAT' if qat_flag == '1' else 'fp32'}"
                                           f" step failed: {err.strip()[-300:]}")
                            continue
                        reply = json.loads(out.strip().splitlines()[-1])
                        torch_version = reply["torch"]
                        keep(key, reply["ms"])
                        if qat_flag == "0":
                            keep("torch_rss", rss)
                keep("qat_rss", qat_train_rss(args.qat, mdir, args.batch, threads, mdir,
                                              errors, label))
                # As it goes, so that a long run interrupted keeps its rows.
                print(f"# {label}: " + json.dumps({k: round(v, 2) for k, v in best.items()}),
                      flush=True)
    report(results, names, threads_list, args, torch_version, skipped, errors)
    return 1 if errors else 0


def report(results, names, threads_list, args, torch_version, skipped, errors):
    print(f"batch {args.batch}, best of {args.rounds} alternated round(s); ms per step or "
          f"forward pass, MB of peak RSS; PyTorch {torch_version} eager")
    checks = []
    for name in names:
        for threads in threads_list:
            b = results.get((name, threads))
            if not b:
                continue
            target = MODELS[name][2]
            label = f"{name}, {threads} thread(s)"
            row = [f"{k} {b[k]:.1f}" for k in ("step", "torch_step", "qat_fixed", "qat_observe",
                                                "qat_learn", "torch_qat", "fwd", "ort_fwd",
                                                "qat_rss", "torch_rss") if k in b]
            print(f"{label}: " + ", ".join(row))

            def check(what, num, den, limit, at_most=True):
                if num in b and den in b:
                    r = b[num] / b[den]
                    ok = r <= limit if at_most else r >= limit
                    checks.append(f"  {label}: {what} {r:.2f}x (target {'<=' if at_most else '>='}"
                                  f" {limit}: {verdict(ok)})")
            check("fp32 step / PyTorch", "step", "torch_step", target)
            for mode in MODES:
                check(f"PyTorch QAT / QAT step ({mode})", "torch_qat", f"qat_{mode}", 3.0, False)
                check(f"QAT step ({mode}) / libqat fp32 step", f"qat_{mode}", "step", 1.25)
            check("forward / ONNX Runtime", "fwd", "ort_fwd", 1.3)
            check("peak RSS of qat train / PyTorch's", "qat_rss", "torch_rss", 1.0)
    print("ratios against issue 16's targets:")
    print("\n".join(checks) if checks else "  none: no pair of results")
    for s in dict.fromkeys(skipped):
        print("SKIPPED", s)
    for e in errors:
        print("FAILED (libqat)", e)


if __name__ == "__main__":
    sys.exit(main())

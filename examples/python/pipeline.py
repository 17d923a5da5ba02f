#!/usr/bin/env python3
"""libqat from Python: the pipeline on the library's MLP through the
`libqat` package (capi/python), with seeded synthetic data as numpy arrays
and Python iterables.

    calibrate -> quantize -> prepare OUT_DIR/qat -> fit (1 epoch, with a
    progress hook) -> fit (1 more, chained) -> a run stopped by the hook,
    resumed -> export -> eval

then a Session on the export, the FakeQuant kernel on numpy arrays, and an
error as an exception.

    python3 pipeline.py OUT_DIR [LIBQAT_SO]

(without LIBQAT_SO: $LIBQAT_LIBRARY, the installed package's or the
in-tree build's libqat.so)
"""
import os
import sys

import numpy as np

import libqat


def examples(rng, n, features=784):
    """Seeded examples: the pixels of class c are noise around (c - 4.5) / 4.5."""
    y = (np.arange(n) % 10).astype(np.int64)
    x = ((y[:, None] - 4.5) / 4.5 + rng.random((n, features)) - 0.5).astype(np.float32)
    return x, y


def batches(x, y, size):
    """A re-iterable of {"input": x, "labels": y} batches: any Python iterable works."""
    return [{"input": x[i:i + size], "labels": y[i:i + size]} for i in range(0, len(y), size)]


class Stop(Exception):
    pass


def main():
    out_dir = sys.argv[1]
    if len(sys.argv) > 2:
        libqat.load(sys.argv[2])
    print("libqat", libqat.version(), "from", libqat.library_path())
    rng = np.random.default_rng(1)
    train_x, train_y = examples(rng, 256)
    test_x, test_y = examples(rng, 200)

    model = libqat.Model.zoo("mlp", seed=0)
    table = libqat.calibrate(model, train_x[:128])
    print("calibrated", len(table), "tensors")
    qdq = libqat.quantize(model, table)
    trainer = libqat.prepare(qdq, os.path.join(out_dir, "qat"))
    trainer.num_threads = 1
    print("prepared", trainer.folder)

    # Two chained calls: 1 epoch, then 1 more at a lower rate.  The progress
    # hook sees every step.
    data = batches(train_x, train_y, 32)
    seen = []
    for lr in (1e-3, 5e-4):
        result = trainer.fit(data, epochs=1, lr=lr, seed=1, progress=seen.append)
        print(f"trained 1 epoch at lr {lr}: {result.steps} steps, last loss {seen[-1].loss:.4f}")
    if [p.global_step for p in seen] != list(range(1, 9)) * 2:
        raise RuntimeError(f"the hook saw steps {[p.global_step for p in seen]}")

    # An exception raised by the hook (or by the data) stops the run and
    # propagates; the checkpoint keeps the step, and resume=True finishes it.
    def stop_at_3(p):
        if p.global_step == 3:
            raise Stop(f"stopped at step {p.global_step}")

    try:
        trainer.fit(data, epochs=1, lr=5e-4, seed=1, progress=stop_at_3)
        raise RuntimeError("the run was not stopped")
    except Stop as e:
        message = str(e)
    result = trainer.fit(data, resume=True)
    print(f"{message}; resumed to step {result.steps}")

    path = os.path.join(out_dir, "int8.onnx")
    int8 = trainer.export(path)
    print("exported", path)
    report = libqat.eval(int8, batches(test_x, test_y, 50), num_threads=1)
    print(f"evaluate int8: accuracy {report.accuracy:.4f} ({report.correct}/{report.examples}),"
          f" mean loss {report.mean_loss:.4f}")
    if report.examples != 200:
        raise RuntimeError(f"evaluated {report.examples} examples, not 200")

    # A session: compiled once, run twice.
    session = libqat.Session(int8)
    for _ in range(2):
        logits = session.run({session.input_names[0]: np.full((3, 784), 0.5, np.float32)})
        print("session: logits", list(logits["logits"].shape))

    # The FakeQuant kernel on a numpy array.
    y = libqat.fake_quant(np.array([0.25, 0.75, -1.25, 100.0, -100.0], np.float32),
                          scale=0.5, zero_point=0, qmin=-128, qmax=127)
    print("FakeQuant:", y.tolist())
    if y.tolist() != [0.0, 1.0, -1.0, 63.5, -64.0]:
        raise RuntimeError(f"FakeQuant gave {y.tolist()}")

    # A bad call raises libqat.InvalidArgument with the library's message.
    try:
        libqat.fake_quant(y, scale=0.0, zero_point=0, qmin=-128, qmax=127)
        raise RuntimeError("a zero scale was accepted")
    except libqat.InvalidArgument as e:
        if "scale" not in e.message:
            raise
        print(f"a zero scale is reported (code {e.code}): {e.message}")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()

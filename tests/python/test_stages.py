"""The stages from Python: calibrate, quantize, prepare, Trainer (fit, step,
evaluate, export) and eval, with data as specs, data sets, arrays and
Python iterables, and iterators that raise."""
import subprocess

import numpy as np
import pytest

import libqat
from conftest import batches, examples


@pytest.fixture(scope="module")
def npy_spec(tmp_path_factory):
    d = tmp_path_factory.mktemp("npy")
    x, y = examples(256)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return f"{d / 'x.npy'},{d / 'y.npy'}"


def _same_table(a, b, tmp_path):
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    return (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_calibrate_from_a_spec_arrays_a_dataset_and_an_iterable(mlp, npy_spec, tmp_path):
    x, y = examples(256)
    from_spec = libqat.calibrate(mlp, npy_spec)
    assert len(from_spec) > 0
    assert _same_table(from_spec, libqat.calibrate(mlp, x), tmp_path)
    assert _same_table(from_spec, libqat.calibrate(mlp, libqat.Dataset.from_arrays(x, y)),
                       tmp_path)
    # Batches of 64 as dicts, (x, y) pairs or bare arrays: the batch size
    # calibrate itself uses, so minmax ranges agree.
    for form in (batches(x, y, 64), [(b["input"], b["labels"]) for b in batches(x, y, 64)],
                 (x[i:i + 64] for i in range(0, 256, 64))):
        assert _same_table(from_spec, libqat.calibrate(mlp, form), tmp_path)
    per_channel = libqat.calibrate(mlp, x, method="percentile", per_channel=True)
    assert not _same_table(from_spec, per_channel, tmp_path)
    with pytest.raises(ValueError, match="method must be one of"):
        libqat.calibrate(mlp, x, method="median")
    path = tmp_path / "table.json"
    from_spec.save(path)
    assert len(libqat.CalibrationTable.load(path)) == len(from_spec)


def test_calibrate_errors(mlp):
    x = examples(64)[0]
    with pytest.raises(libqat.FailedPrecondition, match="at least one sample"):
        libqat.calibrate(mlp, [])  # no batch at all
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(libqat.InvalidArgument):
        libqat.calibrate(mlp, bad)
    # Two named inputs go to the named-batch path: the model has neither.
    with pytest.raises(libqat.InvalidArgument, match="no input 'a'"):
        libqat.calibrate(mlp, [{"a": x, "b": x}])
    with pytest.raises(TypeError, match="libqat takes"):
        libqat.calibrate(mlp, [x.astype(np.float16)])
    with pytest.raises(libqat.NotFound):
        libqat.calibrate(mlp, "/no/such/dir")


def test_an_exception_in_a_calibration_iterator_propagates(mlp):
    x = examples(64)[0]

    def source():
        yield x
        raise KeyError("the user's data broke")

    with pytest.raises(KeyError, match="the user's data broke") as e:
        libqat.calibrate(mlp, source())
    # The traceback reaches into the user's generator.
    assert any(frame.name == "source" for frame in e.traceback)


def test_quantize_options(mlp, tmp_path):
    x = examples(128)[0]
    table = libqat.calibrate(mlp, x)
    qdq = libqat.quantize(mlp, table)
    path = tmp_path / "table.json"
    table.save(path)
    assert libqat.quantize(mlp, str(path)).to_bytes() == qdq.to_bytes()
    int8 = libqat.quantize(mlp, table, activation_type="int8", per_channel=True)
    assert int8.to_bytes() != qdq.to_bytes()
    w4 = libqat.quantize(mlp, table, weight_bits=4)
    assert w4.to_bytes() != qdq.to_bytes()
    with pytest.raises(ValueError, match="activation_type"):
        libqat.quantize(mlp, table, activation_type="int4")
    with pytest.raises(libqat.InvalidArgument):
        libqat.quantize(mlp, table, weight_bits=9)  # 2..8 are valid widths
    out = libqat.run(qdq, {"input": x[:4]})["logits"]
    ref = libqat.run(mlp, {"input": x[:4]})["logits"]
    assert np.abs(out - ref).max() < 0.5  # quantized, close to fp32


def test_prepare_writes_a_folder(mlp, tmp_path):
    trainer = libqat.prepare(mlp, tmp_path / "f", loss="cross_entropy", frozen=["fc1.*"])
    assert isinstance(trainer, libqat.Trainer)
    for name in ("training.onnx", "eval.onnx", "checkpoint"):
        assert (tmp_path / "f" / name).exists()
    with pytest.raises(libqat.InvalidArgument, match="nothing"):
        libqat.prepare(mlp, tmp_path / "g", frozen=["nothing*"])
    with pytest.raises(ValueError, match="loss must be one of"):
        libqat.prepare(mlp, tmp_path / "h", loss="hinge")


def _fresh(mlp, tmp_path, name):
    trainer = libqat.prepare(mlp, tmp_path / name)
    trainer.num_threads = 1
    return trainer


def test_fit_on_an_iterable_a_list_and_a_function_of_the_epoch(mlp, tmp_path):
    x, y = examples(96)
    data = batches(x, y, 32)
    a = _fresh(mlp, tmp_path, "a")
    seen = []
    r = a.fit(data, epochs=2, lr=1e-3, seed=1, progress=seen.append)
    assert (r.epochs, r.steps) == (2, 6)
    assert [p.global_step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert [p.step_in_epoch for p in seen] == [1, 2, 3, 1, 2, 3]
    assert all(p.steps_per_epoch == 3 and p.epochs == 2 for p in seen)
    assert all(np.isfinite(p.loss) and p.loss > 0 for p in seen)

    # A class with __iter__ (no len: steps_per_epoch given) and a function of
    # the epoch give the same batches, so the same parameters.
    class Source:
        def __iter__(self):
            return iter(data)

    b = _fresh(mlp, tmp_path, "b")
    b.fit(Source(), epochs=2, lr=1e-3, seed=1, steps_per_epoch=3)
    c = _fresh(mlp, tmp_path, "c")
    epochs_asked = []

    def by_epoch(epoch):
        epochs_asked.append(epoch)
        return data

    c.fit(by_epoch, epochs=2, lr=1e-3, seed=1, steps_per_epoch=3)
    assert epochs_asked == [0, 1]
    keep = dict(keep_float_weights=True)
    assert a.export(**keep).to_bytes() == b.export(**keep).to_bytes()
    assert a.export(**keep).to_bytes() == c.export(**keep).to_bytes()
    with pytest.raises(TypeError, match="pass steps_per_epoch"):
        b.fit(Source(), epochs=1)
    with pytest.raises(TypeError, match="runs out after one epoch"):
        b.fit(iter(data), epochs=2)


def test_an_exception_in_a_training_iterator_propagates_out_of_fit(mlp, tmp_path):
    x, y = examples(96)
    data = batches(x, y, 32)
    trainer = _fresh(mlp, tmp_path, "raising")

    def source():
        yield data[0]
        yield data[1]
        raise RuntimeError("bad record 17")

    with pytest.raises(RuntimeError, match="bad record 17") as e:
        trainer.fit(source(), epochs=1, steps_per_epoch=3)
    assert any(frame.name == "source" for frame in e.traceback)
    # A short epoch is a ValueError naming the count; a batch without labels too.
    with pytest.raises(ValueError, match="gave 2 batches in epoch 0"):
        trainer.fit(data[:2], epochs=1, steps_per_epoch=3)
    with pytest.raises(ValueError, match="no \"labels\""):
        trainer.fit([{"input": x[:32]}], epochs=1)
    with pytest.raises(TypeError, match="libqat takes"):
        trainer.fit([{"input": x[:32].astype(np.float16), "labels": y[:32]}])
    # Labels of the wrong type are the library's error, as a status.
    with pytest.raises(libqat.InvalidArgument):
        trainer.fit([{"input": x[:32], "labels": y[:32].astype(np.float32)}])
    # A progress hook that raises stops the run; the exception propagates.
    def stop(p):
        if p.global_step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data, epochs=1, progress=stop)
    # The folder still trains afterwards.
    assert trainer.fit(data, epochs=1).steps == 3


def test_a_stopped_iterable_run_resumes_exactly(mlp, tmp_path):
    x, y = examples(96)
    data = batches(x, y, 32)
    whole = _fresh(mlp, tmp_path, "whole")
    whole.fit(data, epochs=2, seed=2, schedule="cosine")

    stopped = _fresh(mlp, tmp_path, "stopped")

    def stop_at_4(p):
        if p.global_step == 4:
            raise InterruptedError("stop")

    with pytest.raises(InterruptedError):
        stopped.fit(data, epochs=2, seed=2, schedule="cosine", progress=stop_at_4)
    r = stopped.fit(data, resume=True)
    assert r.steps == 6
    keep = dict(keep_float_weights=True)
    assert whole.export(**keep).to_bytes() == stopped.export(**keep).to_bytes()


def test_fit_settings_are_checked_by_the_library(mlp, tmp_path, npy_spec):
    trainer = _fresh(mlp, tmp_path, "settings")
    with pytest.raises(libqat.InvalidArgument, match="--lr"):
        trainer.fit(npy_spec, lr=-1.0)
    with pytest.raises(libqat.InvalidArgument, match="--epochs"):
        trainer.fit(npy_spec, epochs=0)
    with pytest.raises(libqat.FailedPrecondition, match="resume"):
        trainer.fit(npy_spec, resume=True)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        trainer.fit(npy_spec, optimizer="lamb")
    r = trainer.fit(npy_spec, epochs=1, batch=64, optimizer="sgd", momentum=0.9,
                    nesterov=True, limit=128)
    assert (r.epochs, r.steps) == (1, 2)


def test_step_save_and_export(mlp, tmp_path):
    x, y = examples(96)
    data = batches(x, y, 32)
    by_fit = _fresh(mlp, tmp_path, "by_fit")
    by_fit.fit(data, epochs=1, lr=1e-3, seed=4)
    by_step = _fresh(mlp, tmp_path, "by_step")
    losses = [by_step.step(b, lr=1e-3, seed=4) for b in data]
    assert by_step.steps_taken == 3
    assert all(loss > 0 for loss in losses)
    by_step.save()
    assert by_step.steps_taken == 0
    keep = dict(keep_float_weights=True)
    assert by_fit.export(**keep).to_bytes() == by_step.export(**keep).to_bytes()
    # (x, y) pairs work too; export syncs the steps first.
    before = by_step.export(**keep).to_bytes()
    by_step.step((x[:32], y[:32]))
    assert by_step.export(**keep).to_bytes() != before
    with pytest.raises(libqat.InvalidArgument):
        by_step.step({"input": x[:32, :100], "labels": y[:32]})
    by_step.step(data[0])
    by_step.set_lr(1e-4)
    by_step.step(data[1])
    path = tmp_path / "out.onnx"
    model = by_step.export(path)
    assert path.read_bytes() == model.to_bytes()


def test_eval_and_evaluate(mlp, tmp_path, npy_spec):
    x, y = examples(256)
    qdq = libqat.quantize(mlp, libqat.calibrate(mlp, x))
    trainer = libqat.prepare(qdq, tmp_path / "q")
    trainer.fit(batches(x, y, 32), epochs=2, lr=1e-3)
    int8 = trainer.export()
    from_spec = libqat.eval(int8, npy_spec)
    assert from_spec.examples == 256
    assert from_spec.accuracy == from_spec.correct / 256
    before = libqat.eval(qdq, npy_spec)
    assert from_spec.mean_loss < before.mean_loss  # training learned something
    from_batches = libqat.eval(int8, batches(x, y, 50))
    from_dataset = libqat.eval(int8, libqat.Dataset.from_arrays(x, y))
    assert from_batches == from_spec.__class__(**{**from_batches.__dict__,
                                                  "seconds": from_batches.seconds})
    assert (from_batches.correct, from_batches.mean_loss) == (from_spec.correct,
                                                              from_spec.mean_loss)
    assert (from_dataset.correct, from_dataset.mean_loss) == (from_spec.correct,
                                                              from_spec.mean_loss)
    evaluated = trainer.evaluate(npy_spec)
    assert (evaluated.correct, evaluated.mean_loss) == (from_spec.correct, from_spec.mean_loss)
    with pytest.raises(ValueError, match="no \"labels\""):
        libqat.eval(int8, [x])
    with pytest.raises(libqat.InvalidArgument):
        libqat.eval(int8, [{"input": x, "labels": y.astype(np.float32)}])


def test_progress_true_draws_a_tqdm_bar(mlp, tmp_path, monkeypatch, capsys):
    """progress=True: a tqdm bar over the run's steps when tqdm imports (a
    stand-in module here, since Debian's python3-tqdm may be absent), else
    a line per epoch on stderr."""
    import sys
    import types
    x, y = examples(96)
    data = batches(x, y, 32)
    bars = []

    class FakeTqdm:
        def __init__(self, total, unit, initial):
            self.total, self.n, self.closed, self.postfix = total, initial, False, None
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **kw):
            self.postfix = kw

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    trainer = _fresh(mlp, tmp_path, "bar")
    trainer.fit(data, epochs=2, progress=True)
    assert len(bars) == 1
    assert (bars[0].total, bars[0].n, bars[0].closed) == (6, 6, True)
    assert bars[0].postfix["epoch"] == "2/2"
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails
    trainer.fit(data, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2: mean loss" in err and "epoch 2/2: mean loss" in err


def test_fit_batch_shards_and_sync_bn_reach_the_library(mlp, tmp_path, npy_spec):
    # QatTrainFolderOptions v4: batch_shards=2 computes each batch as 2 ranks
    # would (other sums than whole batches: other bits); 3 shards do not
    # split a batch of 64; sync_bn is accepted (the MLP has no BatchNorm).
    settings = dict(epochs=1, batch=64, optimizer="sgd", lr=0.05, limit=128, seed=1)
    keep = dict(keep_float_weights=True)
    whole = _fresh(mlp, tmp_path, "whole_batches")
    whole.fit(npy_spec, **settings)
    sharded = _fresh(mlp, tmp_path, "two_shards")
    assert sharded.fit(npy_spec, batch_shards=2, sync_bn=True, **settings).steps == 2
    assert sharded.export(**keep).to_bytes() != whole.export(**keep).to_bytes()
    with pytest.raises(libqat.InvalidArgument, match="does not split evenly into 3 shards"):
        _fresh(mlp, tmp_path, "three_shards").fit(npy_spec, batch_shards=3, **settings)


def test_fit_freeze_bn_steps_equals_the_cli(tmp_path, qat_cli):
    # QatTrainFolderOptions v3: from step 0 on the zoo ResNet-8's BatchNorm
    # statistics stay; the checkpoint is byte for byte `qat train
    # --freeze-bn-steps 0`'s, and differs from a run whose statistics move.
    rng = np.random.RandomState(3)
    np.save(tmp_path / "x.npy", rng.rand(64, 1, 28, 28).astype(np.float32))
    np.save(tmp_path / "y.npy", (np.arange(64) % 10).astype(np.int64))
    spec = f"{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    r8 = libqat.Model.zoo("resnet8", seed=0)
    settings = dict(epochs=1, batch=32, optimizer="sgd", lr=0.01, seed=1)
    _fresh(r8, tmp_path, "moving").fit(spec, **settings)
    _fresh(r8, tmp_path, "frozen").fit(spec, freeze_bn_steps=0, **settings)
    _fresh(r8, tmp_path, "cli")
    subprocess.run([qat_cli, "train", str(tmp_path / "cli"), "--data", spec, "--epochs", "1",
                    "--batch", "32", "--optimizer", "sgd", "--lr", "0.01", "--seed", "1",
                    "--threads", "1", "--freeze-bn-steps", "0"], check=True, capture_output=True)
    frozen = (tmp_path / "frozen" / "checkpoint").read_bytes()
    assert frozen == (tmp_path / "cli" / "checkpoint").read_bytes()
    assert frozen != (tmp_path / "moving" / "checkpoint").read_bytes()

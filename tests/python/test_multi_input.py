"""Multi-input models from Python: a 2-input text model (int64 token ids and
a bool attention mask, tests/cli/make_two_input_model.py) calibrated,
trained and evaluated on iterables of dicts of named numpy arrays, with and
without labels; distillation from a teacher (prepare(teacher=...,
distill=...)) as `qat prepare --teacher/--distill` builds it; evaluation of
an iterable batch by batch (nothing gathered)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import libqat
from conftest import ROOT


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """(model path, ids, mask, labels): labels are the fp32 model's own
    argmax, so that a labelled run has something to fit."""
    pytest.importorskip("onnx")
    d = tmp_path_factory.mktemp("text")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "cli", "make_two_input_model.py"),
                    str(d)], check=True)
    ids = np.load(d / "data" / "input_ids.npy")
    mask = np.load(d / "data" / "attention_mask.npy")
    assert ids.dtype == np.int64 and mask.dtype == np.bool_
    logits = libqat.run(str(d / "model.onnx"), {"input_ids": ids, "attention_mask": mask})
    labels = logits["logits"].argmax(axis=1).astype(np.int64)
    return d, ids, mask, labels


def _batches(ids, mask, labels=None, size=32):
    out = []
    for i in range(0, len(ids), size):
        b = {"input_ids": ids[i:i + size], "attention_mask": mask[i:i + size]}
        if labels is not None:
            b["labels"] = labels[i:i + size]
        out.append(b)
    return out


def _table_bytes(table, path):
    table.save(path)
    return path.read_bytes()


def test_calibrate_on_named_int64_and_bool_batches(text, tmp_path):
    d, ids, mask, _ = text
    model = str(d / "model.onnx")
    from_folder = libqat.calibrate(model, str(d / "data"))  # the CLI's --data DIR
    from_batches = libqat.calibrate(model, iter(_batches(ids, mask)))
    assert len(from_batches) > 0
    assert _table_bytes(from_batches, tmp_path / "a.json") == \
        _table_bytes(from_folder, tmp_path / "b.json")
    # int32 ids widen to the model's int64 exactly (Dataset::Bind).
    as_int32 = libqat.calibrate(model, _batches(ids.astype(np.int32), mask))
    assert _table_bytes(as_int32, tmp_path / "c.json") == \
        _table_bytes(from_folder, tmp_path / "b.json")
    # A missing input is the library's error, naming it.
    with pytest.raises(libqat.InvalidArgument, match="attention_mask"):
        libqat.calibrate(model, [{"input_ids": ids[:32], "mask": mask[:32]}])
    # Batches that disagree are refused, naming the batch.
    bad = _batches(ids, mask)[:2]
    bad[1] = {"input_ids": ids[:32], "attention_mask": mask[:32].astype(np.uint8)}
    with pytest.raises(libqat.InvalidArgument, match="batch 1"):
        libqat.calibrate(model, bad)


def test_an_exception_in_a_multi_input_iterator_propagates(text, tmp_path):
    d, ids, mask, labels = text
    model = str(d / "model.onnx")

    def source():
        yield _batches(ids, mask, labels)[0]
        raise LookupError("token file 3 is missing")

    for call in (lambda: libqat.calibrate(model, source()),
                 lambda: libqat.eval(model, source()),
                 lambda: libqat.prepare(model, tmp_path / "f").fit(source(), epochs=1)):
        with pytest.raises(LookupError, match="token file 3") as e:
            call()
        assert any(frame.name == "source" for frame in e.traceback)


def test_fit_on_named_batches_trains_as_the_same_data_set(text, tmp_path):
    """A multi-input iterable is read once into a libqat Dataset: the run
    equals one on Dataset.from_batches and one on the CLI's data folder."""
    d, ids, mask, labels = text
    model = str(d / "model.onnx")
    data_dir = tmp_path / "labelled"
    data_dir.mkdir()
    np.save(data_dir / "input_ids.npy", ids)
    np.save(data_dir / "attention_mask.npy", mask)
    np.save(data_dir / "labels.npy", labels)
    exports = []
    for name, data in (("iterable", _batches(ids, mask, labels)),
                       ("dataset", libqat.Dataset.from_batches(_batches(ids, mask, labels))),
                       ("spec", str(data_dir))):
        trainer = libqat.prepare(model, tmp_path / name)
        trainer.num_threads = 1
        r = trainer.fit(data, epochs=2, batch=64, lr=1e-3, seed=3)
        assert (r.epochs, r.steps) == (2, 8), name
        exports.append(trainer.export(keep_float_weights=True).to_bytes())
    assert exports[0] == exports[1] == exports[2]
    with pytest.raises(ValueError, match="one data input"):
        libqat.Trainer(tmp_path / "iterable").step(_batches(ids, mask, labels)[0])


def test_distillation_without_labels(text, tmp_path, qat_cli):
    """prepare(teacher=...) builds the folder `qat prepare --teacher` does;
    unlabelled named batches train it, and the distilled export is closer
    to the fp32 model than post-training quantization."""
    d, ids, mask, _ = text
    model = str(d / "model.onnx")
    table = libqat.calibrate(model, _batches(ids, mask))
    table.save(tmp_path / "table.json")
    qdq = libqat.quantize(model, table, weight_bits=4, per_channel=True)
    qdq.save(tmp_path / "qdq.onnx")

    trainer = libqat.prepare(qdq, tmp_path / "py", teacher=model)
    subprocess.run([qat_cli, "prepare", tmp_path / "qdq.onnx", "-o", tmp_path / "cli",
                    "--teacher", model], check=True, capture_output=True)
    for name in ("training.onnx", "eval.onnx", "checkpoint"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    # kl at a temperature, from the teacher that quantize recorded (the
    # model came from a file): the CLI's --distill kl --temperature 2.
    libqat.prepare(qdq, tmp_path / "py_kl", distill="kl", temperature=2.0)
    subprocess.run([qat_cli, "prepare", tmp_path / "qdq.onnx", "-o", tmp_path / "cli_kl",
                    "--distill", "kl", "--temperature", "2"], check=True, capture_output=True)
    assert (tmp_path / "py_kl" / "training.onnx").read_bytes() == \
        (tmp_path / "cli_kl" / "training.onnx").read_bytes()

    trainer.num_threads = 1
    r = trainer.fit(_batches(ids, mask), epochs=10, lr=1e-4, seed=1)  # no labels anywhere
    assert r.steps == 10 * 4
    exported = trainer.export()
    assert not any(n.startswith("teacher/") for n in _node_outputs(exported))

    def error(m):
        want = libqat.run(model, {"input_ids": ids, "attention_mask": mask})["logits"]
        got = libqat.run(m, {"input_ids": ids, "attention_mask": mask})["logits"]
        return np.linalg.norm(got - want) / np.linalg.norm(want)

    assert error(exported) < 0.9 * error(qdq), (error(exported), error(qdq))


def _node_outputs(model):
    onnx = pytest.importorskip("onnx")
    return [o for n in onnx.load_model_from_string(model.to_bytes()).graph.node for o in n.output]


def test_distillation_options_are_checked(text, tmp_path, mlp):
    d, _, _, _ = text
    model = str(d / "model.onnx")
    with pytest.raises(ValueError, match="distill must be one of"):
        libqat.prepare(model, tmp_path / "a", teacher=model, distill="hinton")
    with pytest.raises(ValueError, match="1 weights for 0 distill_outputs"):
        libqat.prepare(model, tmp_path / "b", teacher=model, distill_weights=[2.0])
    with pytest.raises(libqat.InvalidArgument, match="temperature"):
        libqat.prepare(model, tmp_path / "c", teacher=model, distill="kl", temperature=0.0)
    with pytest.raises(libqat.InvalidArgument, match="nope"):
        libqat.prepare(model, tmp_path / "d", teacher=model, distill_outputs=["nope"])
    # A model quantized from memory records no teacher.
    x = np.zeros((8, 784), np.float32)
    qdq = libqat.quantize(mlp, libqat.calibrate(mlp, x))
    with pytest.raises(libqat.NotFound):
        libqat.prepare(qdq, tmp_path / "e", distill="mse")
    # Weights, intermediate tensors and a label weight reach the loss: with
    # labels, the labelled term makes the loss larger.
    folder = libqat.prepare(model, tmp_path / "f", teacher=model, distill_outputs=["logits"],
                            distill_weights=[0.5], distill_tensors=["pooled"], label_weight=1.0)
    assert (tmp_path / "f" / "training.onnx").exists()
    assert isinstance(folder, libqat.Trainer)


def test_eval_of_an_iterable_is_batch_by_batch(text):
    """eval pulls labelled named batches one at a time: the report equals
    the one on the same data as a Dataset, and a batch is not kept."""
    d, ids, mask, labels = text
    model = str(d / "model.onnx")
    whole = libqat.eval(model, libqat.Dataset.from_batches(_batches(ids, mask, labels)),
                        num_threads=1)
    assert whole.accuracy == 1.0  # the labels are the model's own argmax
    seen = []

    def stream():
        for b in _batches(ids, mask, labels, size=64):
            seen.append(len(b["labels"]))
            yield b

    streamed = libqat.eval(model, stream(), num_threads=1)
    assert seen == [64, 64, 64, 64]
    assert (streamed.examples, streamed.correct, streamed.mean_loss) == \
        (whole.examples, whole.correct, whole.mean_loss)
    with pytest.raises(ValueError, match="no \"labels\""):
        libqat.eval(model, _batches(ids, mask))
    with pytest.raises(libqat.InvalidArgument, match="no batch"):
        libqat.eval(model, [])

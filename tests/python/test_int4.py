"""Issue 18 from Python: block-wise 4-bit weights (quantize(weight_bits=4,
block_size=32)) and the export's opset (Trainer.export(opset=21|13)); the
opset-21 export, packed INT4 behind DequantizeLinear-21, runs in ONNX
Runtime to what libqat computes."""
import os
import subprocess

import numpy as np
import pytest

import libqat
from conftest import examples
from test_pipeline import _fashion_mnist, _ort_accuracy


def _opset_and_int4(path):
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(path))  # Debian's onnx 1.12 parses opset 21; it cannot check it
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    int4 = [t.name for t in m.graph.initializer if t.data_type == 22]  # TensorProto.INT4
    blocks = [a.i for n in m.graph.node if n.op_type == "DequantizeLinear"
              for a in n.attribute if a.name == "block_size"]
    return opset, int4, blocks


def test_block_wise_4bit_through_the_python_api(mlp, tmp_path):
    x, y = examples(256)
    table = libqat.calibrate(mlp, x)
    b32 = libqat.quantize(mlp, table, weight_bits=4, block_size=32)
    assert b32.to_bytes() != libqat.quantize(mlp, table, weight_bits=4).to_bytes()
    with pytest.raises(libqat.InvalidArgument, match="block"):
        libqat.quantize(mlp, table, block_size=32)  # 8-bit weights have no blocks
    trainer = libqat.prepare(b32, tmp_path / "b32")
    trainer.fit([{"input": x[i:i + 64], "labels": y[i:i + 64]} for i in range(0, 256, 64)],
                epochs=1, lr=1e-4)
    path = tmp_path / "b32.onnx"
    trainer.export(path)  # the default for block-wise weights: opset 21
    opset, int4, blocks = _opset_and_int4(path)
    assert opset == 21 and int4 and set(blocks) == {32}
    assert trainer.export(opset=21).to_bytes() == path.read_bytes()
    with pytest.raises(libqat.InvalidArgument, match="13 or 21"):
        trainer.export(opset=17)
    with pytest.raises(libqat.Unimplemented, match="export at opset 21"):
        trainer.export(opset=13)  # blocks exist from opset 21 on
    # libqat's own executor runs the opset-21 file like the trained folder.
    want = libqat.run(trainer.export(keep_float_weights=True), {"input": x[:8]})["logits"]
    got = libqat.run(str(path), {"input": x[:8]})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_uint8_block_scales_shrink_the_export_and_keep_its_outputs(mlp, tmp_path):
    x = examples(256)[0]
    table = libqat.calibrate(mlp, x)
    u8 = libqat.prepare(libqat.quantize(mlp, table, weight_bits=4, block_size=32,
                                        uint8_block_scales=True), tmp_path / "u8")
    f32 = libqat.prepare(libqat.quantize(mlp, table, weight_bits=4, block_size=32),
                         tmp_path / "f32")
    small, large = u8.export(), f32.export()
    assert len(small.to_bytes()) < 0.9 * len(large.to_bytes())
    # Fixed parameters keep the snapped scales: the codes export exactly.
    want = libqat.run(u8.export(keep_float_weights=True), {"input": x[:8]})["logits"]
    np.testing.assert_allclose(libqat.run(small, {"input": x[:8]})["logits"], want,
                               rtol=1e-5, atol=1e-5)
    # Float scales are snapped at export only when asked.
    assert len(f32.export(uint8_block_scales=True).to_bytes()) < 0.9 * len(large.to_bytes())
    with pytest.raises(libqat.InvalidArgument, match="block"):
        libqat.quantize(mlp, table, weight_bits=4, uint8_block_scales=True)


def test_per_channel_4bit_opset_21_is_smaller_than_opset_13(mlp, tmp_path):
    x = examples(256)[0]
    w4 = libqat.quantize(mlp, libqat.calibrate(mlp, x, per_channel=True), weight_bits=4,
                         per_channel=True)
    trainer = libqat.prepare(w4, tmp_path / "w4")
    at21 = trainer.export(tmp_path / "w4_21.onnx", opset=21)
    at13 = trainer.export(tmp_path / "w4_13.onnx", opset=13)
    opset, int4, blocks = _opset_and_int4(tmp_path / "w4_21.onnx")
    assert opset == 21 and int4 and not blocks
    assert _opset_and_int4(tmp_path / "w4_13.onnx")[0] == 13
    size21, size13 = len(at21.to_bytes()), len(at13.to_bytes())
    assert size21 < 0.6 * size13, (size21, size13)  # two weights per byte
    np.testing.assert_array_equal(libqat.run(at21, {"input": x[:8]})["logits"],
                                  libqat.run(at13, {"input": x[:8]})["logits"])


def test_an_opset_21_export_runs_in_onnx_runtime(fmnist, node_ort, tmp_path):
    """Block 32 W4A8 QAT from Python on Fashion-MNIST, exported at opset 21:
    ONNX Runtime with optimizations disabled matches libqat's outputs, and
    its accuracy (default optimizations: its MatMulNBits kernel) is within
    0.5 point of libqat's evaluation of the same file."""
    x, y = _fashion_mnist(fmnist, "train", 2048)
    batches = [{"input": x[i:i + 64], "labels": y[i:i + 64]} for i in range(0, len(y), 64)]
    fp32 = libqat.prepare(libqat.Model.zoo("mlp"), tmp_path / "fp32")
    fp32.fit(batches, epochs=2, lr=1e-3)
    model = fp32.export()
    table = libqat.calibrate(model, x[:512])
    trainer = libqat.prepare(libqat.quantize(model, table, weight_bits=4, block_size=32),
                             tmp_path / "qat")
    trainer.fit(batches, epochs=1, lr=1e-4)
    path = tmp_path / "b32.onnx"
    exported = trainer.export(path, opset=21)
    assert _opset_and_int4(path)[0] == 21

    tx = _fashion_mnist(fmnist, "test", 64)[0]
    (tmp_path / "in").mkdir()
    (tmp_path / "expected").mkdir()
    np.save(tmp_path / "in" / "input.npy", tx)
    np.save(tmp_path / "expected" / "logits.npy", libqat.run(exported, {"input": tx})["logits"])
    node, scripts = node_ort
    r = subprocess.run([node, os.path.join(scripts, "ort_compare.js"), str(path),
                        str(tmp_path / "in"), str(tmp_path / "expected"), "--rtol", "1e-5",
                        "--atol", "1e-5", "--optimizations", "disabled"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode == 77:
        pytest.skip("ONNX Runtime (node) is not installed: .ci/install-ort.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    report = libqat.eval(exported, fmnist, limit=1000)
    assert report.accuracy > 0.6, report
    ort = _ort_accuracy(node_ort, path, fmnist, 1000)
    assert abs(ort["accuracy"] - report.accuracy) <= 0.005, (ort, report)

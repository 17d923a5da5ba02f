"""The package's plumbing: finding the library, statuses as exceptions,
models in every form, numpy dtypes and layouts, Session/run, fake_quant,
and the GIL released during C calls."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import libqat
from conftest import ROOT, examples


def test_version_and_library():
    assert libqat.version() == "0.2.0"
    assert os.path.exists(libqat.library_path())


def _python(code, **env):
    """Runs `code` in a fresh interpreter with the package importable."""
    package = os.path.dirname(os.path.dirname(libqat.__file__))
    full_env = {k: v for k, v in os.environ.items() if k != libqat.ENV_VAR}
    full_env.update(env)
    full_env["PYTHONPATH"] = package
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_missing_library_is_a_clear_error(tmp_path):
    r = _python("import libqat\n"
                "try:\n"
                "    libqat.load('/no/such/libqat.so')\n"
                "except libqat.LibraryNotFound as e:\n"
                "    print('LibraryNotFound:', e)\n")
    assert "LibraryNotFound: cannot load libqat from '/no/such/libqat.so'" in r.stdout, r.stderr
    r = _python("import libqat; libqat.version()", LIBQAT_LIBRARY=str(tmp_path / "none.so"))
    assert r.returncode != 0
    assert f"$LIBQAT_LIBRARY is '{tmp_path / 'none.so'}', which does not exist" in r.stderr


def test_one_library_per_process():
    assert libqat.load(libqat.library_path()).path == libqat.library_path()
    with pytest.raises(libqat.LibraryNotFound, match="already loaded"):
        libqat.load("/some/other/libqat.so")


def test_environment_variable_names_the_library():
    r = _python("import libqat; print(libqat.library_path())",
                LIBQAT_LIBRARY=libqat.library_path())
    assert r.stdout.strip() == libqat.library_path(), r.stderr


def test_statuses_become_exceptions_with_code_and_message(tmp_path):
    with pytest.raises(libqat.NotFound) as e:
        libqat.Model.load(tmp_path / "missing.onnx")
    assert e.value.code == 5
    assert "missing.onnx" in e.value.message
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, libqat.Error)
    with pytest.raises(libqat.InvalidArgument) as e:
        libqat.Model.from_bytes(b"not a model")
    assert e.value.code == 3
    with pytest.raises(libqat.InvalidArgument, match="unknown zoo model 'vgg'"):
        libqat.Model.zoo("vgg")
    with pytest.raises(libqat.NotFound):
        libqat.CalibrationTable.load(tmp_path / "missing.json")


def test_models_from_a_path_bytes_and_onnx(tmp_path, mlp):
    path = tmp_path / "mlp.onnx"
    mlp.save(path)
    data = mlp.to_bytes()
    assert path.read_bytes() == data
    x = examples(4)[0]
    want = libqat.run(mlp, {"input": x})["logits"]
    for form in (str(path), path, data, bytearray(data)):
        np.testing.assert_array_equal(libqat.run(form, {"input": x})["logits"], want)
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(path))
    assert isinstance(mlp.to_onnx(), onnx.ModelProto)
    np.testing.assert_array_equal(libqat.run(proto, {"input": x})["logits"], want)
    with pytest.raises(TypeError, match="a model is a path, bytes"):
        libqat.run(42, {"input": x})


def test_session_runs_many_times_and_names_its_io(mlp):
    session = libqat.Session(mlp, num_threads=1)
    assert session.input_names == ["input"]
    assert session.output_names == ["logits"]
    x = examples(8)[0]
    a = session.run({"input": x})
    b = session.run({"input": x}, outputs=["logits"])
    assert a["logits"].shape == (8, 10) and a["logits"].dtype == np.float32
    np.testing.assert_array_equal(a["logits"], b["logits"])
    with pytest.raises(libqat.InvalidArgument, match="no output 'nope'"):
        session.run({"input": x}, outputs=["nope"])
    with pytest.raises(libqat.InvalidArgument):
        session.run({"wrong": x})
    with pytest.raises(TypeError):
        session.run(x)


def test_non_contiguous_and_byte_swapped_arrays_are_copied(mlp):
    x = examples(6)[0]
    want = libqat.run(mlp, {"input": x})["logits"]
    wide = np.zeros((6, 784 * 2), dtype=np.float32)
    wide[:, ::2] = x  # a strided view of the same values
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(libqat.run(mlp, {"input": view})["logits"], want)
    fortran = np.asfortranarray(x)
    np.testing.assert_array_equal(libqat.run(mlp, {"input": fortran})["logits"], want)
    swapped = x.astype(">f4")
    np.testing.assert_array_equal(libqat.run(mlp, {"input": swapped})["logits"], want)
    reversed_rows = x[::-1]
    np.testing.assert_array_equal(libqat.run(mlp, {"input": reversed_rows})["logits"],
                                  want[::-1])


def test_dtypes_are_kept_or_refused_never_misread(mlp):
    x = examples(2)[0]
    # float64 is a C ABI type: passed as float64, and the model refuses it.
    with pytest.raises(libqat.InvalidArgument):
        libqat.run(mlp, {"input": x.astype(np.float64)})
    for dtype in (np.float16, np.uint16, np.complex64, object):
        with pytest.raises(TypeError, match="libqat takes"):
            libqat.run(mlp, {"input": x.astype(dtype)})
    # Every C ABI type round-trips through a tensor exactly.
    from libqat._core import Tensor, tensor_to_numpy
    for dtype in (np.float32, np.float64, np.uint8, np.int8, np.int32, np.int64, np.bool_):
        a = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)[:, ::2]
        t = Tensor(a)  # kept alive while its handle is read
        back = tensor_to_numpy(t.handle)
        assert back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back, a)
    t = Tensor(np.zeros((0, 3), np.float32))
    empty = tensor_to_numpy(t.handle)
    assert empty.shape == (0, 3)


def _fake_quant_reference(x, scale, zp, qmin, qmax):
    q = np.clip(np.round(x / scale) + zp, qmin, qmax)  # numpy rounds half to even
    return ((q - zp) * scale).astype(np.float32)


def test_fake_quant_per_tensor():
    x = np.array([0.25, 0.75, -1.25, 100.0, -100.0], dtype=np.float32)
    np.testing.assert_array_equal(libqat.fake_quant(x, 0.5, 0, -128, 127),
                                  [0.0, 1.0, -1.0, 63.5, -64.0])
    rng = np.random.RandomState(0)
    big = (rng.randn(37, 19) * 3).astype(np.float32)
    y, mask = libqat.fake_quant(big, 0.05, 3, 0, 255, return_mask=True)
    np.testing.assert_array_equal(y, _fake_quant_reference(big, np.float32(0.05), 3, 0, 255))
    q = np.round(big / np.float32(0.05)) + 3
    np.testing.assert_array_equal(mask, (q >= 0) & (q <= 255))
    # Non-contiguous input is copied; the result keeps its shape.
    np.testing.assert_array_equal(libqat.fake_quant(big.T, 0.05, 3, 0, 255),
                                  _fake_quant_reference(big.T, np.float32(0.05), 3, 0, 255))
    with pytest.raises(TypeError, match="float32"):
        libqat.fake_quant(big.astype(np.float64), 0.05, 3, 0, 255)
    with pytest.raises(libqat.InvalidArgument, match="scale"):
        libqat.fake_quant(big, 0.0, 0, -128, 127)
    assert libqat.fake_quant([1.0, 2.0], 1.0, 0, -128, 127).tolist() == [1.0, 2.0]


def test_fake_quant_per_channel():
    rng = np.random.RandomState(1)
    w = rng.randn(4, 3, 5).astype(np.float32)
    scales = np.array([0.01, 0.02, 0.05], dtype=np.float32)
    zps = np.array([0, 1, -2], dtype=np.float32)
    y = libqat.fake_quant(w, scales, zps, -128, 127, axis=1)
    want = _fake_quant_reference(w, scales[None, :, None], zps[None, :, None], -128, 127)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(libqat.fake_quant(w, scales, zps, -128, 127, axis=-2), want)
    with pytest.raises(ValueError, match="3 values for 4 channels"):
        libqat.fake_quant(w, scales, zps, -128, 127, axis=0)
    with pytest.raises(ValueError, match="out of range"):
        libqat.fake_quant(w, scales, zps, -128, 127, axis=3)


def test_the_gil_is_released_during_c_calls(mlp, tmp_path):
    """A Python thread keeps running while fit's C call trains (it would
    starve if the call held the GIL): count its ticks during a long fit
    over a data spec (no Python callbacks in the loop)."""
    x, y = examples(2048)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    trainer = libqat.prepare(mlp, tmp_path / "folder")
    trainer.num_threads = 1
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    thread = threading.Thread(target=tick)
    start = time.monotonic()
    thread.start()
    trainer.fit(f"{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", epochs=6, batch=32)
    end = time.monotonic()
    done.set()
    thread.join()
    during = [t for t in ticks if start + 0.05 < t < end - 0.05]
    # A held GIL would stop the ticking thread for the whole C call: no tick
    # strictly inside it.  Released, it ticks all along (loosely counted: the
    # machine may be busy).
    assert end - start > 0.3
    middle = (start + end) / 2
    assert len(during) >= 5, (len(during), end - start)
    assert during[0] < middle < during[-1], (during[0] - start, during[-1] - start, end - start)

#!/usr/bin/env python3
"""libqat from Python with nothing but ctypes (numpy is used when present).

Runs calibrate -> quantize -> a few training steps -> export on the
library's MLP with seeded synthetic data, then calls the FakeQuant kernel
on a buffer (a numpy array when numpy is installed).

    python3 qat_ctypes.py LIBQAT_SO OUT_DIR
"""
import ctypes as C
import random
import sys


class Api:
    """The subset of qat_c_api.h this example uses, with its signatures."""

    def __init__(self, path):
        lib = C.CDLL(path)
        self.lib = lib
        P = C.c_void_p
        sigs = {
            "qat_version": (C.c_char_p, []),
            "qat_status_message": (C.c_char_p, [P]),
            "qat_status_code": (C.c_int, [P]),
            "qat_status_free": (None, [P]),
            "qat_model_zoo": (P, [C.POINTER(P), C.c_char_p, C.c_uint64]),
            "qat_model_save": (P, [P, C.c_char_p]),
            "qat_model_free": (None, [P]),
            "qat_tensor_create": (P, [C.POINTER(P), C.c_int, C.POINTER(C.c_int64), C.c_size_t, P]),
            "qat_tensor_free": (None, [P]),
            "qat_calibrate_arrays": (P, [C.POINTER(P), P, P, P]),
            "qat_calibration_table_size": (C.c_size_t, [P]),
            "qat_calibration_table_free": (None, [P]),
            "qat_quantize": (P, [C.POINTER(P), P, P, P]),
            "qat_trainer_create": (P, [C.POINTER(P), P, P]),
            "qat_trainer_train_step": (P, [C.POINTER(C.c_float), P, P, P]),
            "qat_trainer_export": (P, [C.POINTER(P), P, C.c_bool]),
            "qat_trainer_free": (None, [P]),
            "qat_fake_quant": (P, [P, P, P, C.c_size_t, P]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
            setattr(self, name, fn)

    def check(self, status, what):
        if status:
            message = self.qat_status_message(status).decode()
            self.qat_status_free(status)
            raise RuntimeError(f"{what}: {message}")


class FakeQuantParams(C.Structure):
    _fields_ = [("version", C.c_uint32), ("scale", C.c_float), ("zero_point", C.c_float),
                ("quant_min", C.c_int32), ("quant_max", C.c_int32)]


def tensor(api, dtype, shape, values_ctype, values):
    buf = (values_ctype * len(values))(*values)
    dims = (C.c_int64 * len(shape))(*shape)
    out = C.c_void_p()
    api.check(api.qat_tensor_create(C.byref(out), dtype, dims, len(shape), buf), "tensor")
    return out


def main():
    lib_path, out_dir = sys.argv[1], sys.argv[2]
    api = Api(lib_path)
    print("libqat", api.qat_version().decode())
    QAT_FLOAT32, QAT_INT64 = 1, 7
    rng = random.Random(1)
    n, features = 128, 784
    x = [rng.random() for _ in range(n * features)]
    y = [i % 10 for i in range(n)]

    model = C.c_void_p()
    api.check(api.qat_model_zoo(C.byref(model), b"mlp", 0), "zoo")
    data = tensor(api, QAT_FLOAT32, [n, features], C.c_float, x)
    table = C.c_void_p()
    api.check(api.qat_calibrate_arrays(C.byref(table), model, data, None), "calibrate")
    print("calibrated", api.qat_calibration_table_size(table), "tensors")
    qdq = C.c_void_p()
    api.check(api.qat_quantize(C.byref(qdq), model, table, None), "quantize")
    trainer = C.c_void_p()
    api.check(api.qat_trainer_create(C.byref(trainer), qdq, None), "trainer")
    batch = 32
    for step in range(3):
        lo = step * batch
        xb = tensor(api, QAT_FLOAT32, [batch, features], C.c_float, x[lo * features:(lo + batch) * features])
        yb = tensor(api, QAT_INT64, [batch], C.c_int64, y[lo:lo + batch])
        loss = C.c_float()
        api.check(api.qat_trainer_train_step(C.byref(loss), trainer, xb, yb), "train step")
        print(f"step {step + 1}: loss {loss.value:.4f}")
        api.qat_tensor_free(xb)
        api.qat_tensor_free(yb)
    exported = C.c_void_p()
    api.check(api.qat_trainer_export(C.byref(exported), trainer, False), "export")
    api.check(api.qat_model_save(exported, f"{out_dir}/int8.onnx".encode()), "save")
    print("exported", f"{out_dir}/int8.onnx")

    # The FakeQuant kernel on a caller's buffer.
    params = FakeQuantParams(1, 0.5, 0.0, -128, 127)
    values = [0.25, 0.75, -1.25, 100.0, -100.0]
    try:
        import numpy as np
        xs = np.array(values, dtype=np.float32)
        ys = np.empty_like(xs)
        api.check(api.qat_fake_quant(ys.ctypes.data, None, xs.ctypes.data, xs.size,
                                     C.byref(params)), "fake_quant")
        result = ys.tolist()
        print("FakeQuant on a numpy buffer:", result)
    except ImportError:
        xs = (C.c_float * len(values))(*values)
        ys = (C.c_float * len(values))()
        api.check(api.qat_fake_quant(ys, None, xs, len(values), C.byref(params)), "fake_quant")
        result = list(ys)
        print("FakeQuant on a ctypes buffer (numpy not installed):", result)
    expected = [0.0, 1.0, -1.0, 63.5, -64.0]
    if result != expected:
        raise RuntimeError(f"FakeQuant gave {result}, expected {expected}")

    # A bad call returns an error status, never an exception or a crash.
    bad = FakeQuantParams(1, 0.0, 0.0, -128, 127)
    status = api.qat_fake_quant(ys if not hasattr(ys, "ctypes") else ys.ctypes.data, None,
                                xs if not hasattr(xs, "ctypes") else xs.ctypes.data, 1,
                                C.byref(bad))
    code = api.qat_status_code(status)
    message = api.qat_status_message(status).decode()
    api.qat_status_free(status)
    if code != 3 or "scale" not in message:
        raise RuntimeError(f"expected INVALID_ARGUMENT about the scale, got {code}: {message}")
    print("a zero scale is reported:", message)

    for free, handle in ((api.qat_model_free, exported), (api.qat_trainer_free, trainer),
                         (api.qat_model_free, qdq), (api.qat_calibration_table_free, table),
                         (api.qat_tensor_free, data), (api.qat_model_free, model)):
        free(handle)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""libqat from Python with nothing but ctypes (numpy is used when present).

The pipeline on the library's MLP, one C call per stage, with seeded
synthetic data passed as arrays:

    calibrate -> quantize -> prepare OUT_DIR/qat -> train (1 epoch, with a
    progress callback) -> train (1 more, chained) -> export -> evaluate

then the executor handle on the export, and the FakeQuant kernel on a buffer
(a numpy array when numpy is installed).

    python3 qat_ctypes.py LIBQAT_SO OUT_DIR
"""
import ctypes as C
import os
import random
import sys

P = C.c_void_p
QAT_FLOAT32, QAT_INT64 = 1, 7
QAT_CANCELLED, QAT_INVALID_ARGUMENT = 1, 3
QAT_UNSET = -(2 ** 63)


# The options and result structs of qat/c_api.h, field for field.
class CalibrateOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("method", C.c_int), ("per_channel_weights", C.c_bool),
                ("symmetric_activations", C.c_bool), ("batch_size", C.c_int64),
                ("num_threads", C.c_int), ("max_samples", C.c_int64)]

    def __init__(self):
        super().__init__(2, 0, False, False, 64, 0, 0)


class PrepareOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("loss", C.c_int), ("quant_params", C.c_int),
                ("frozen", C.POINTER(C.c_char_p)), ("num_frozen", C.c_size_t)]

    def __init__(self):
        super().__init__(1, 0, 0, None, 0)


class TrainProgress(C.Structure):
    _fields_ = [("epoch", C.c_int64), ("epochs", C.c_int64), ("step_in_epoch", C.c_int64),
                ("steps_per_epoch", C.c_int64), ("global_step", C.c_int64),
                ("loss", C.c_float), ("lr", C.c_float), ("epoch_mean_loss", C.c_double)]


TrainCallback = C.CFUNCTYPE(C.c_int, P, C.POINTER(TrainProgress))

_RUN_SETTINGS = [("epochs", C.c_int64), ("batch", C.c_int64), ("optimizer", C.c_int64),
                 ("lr", C.c_double), ("schedule", C.c_int64), ("warmup", C.c_int64),
                 ("momentum", C.c_double), ("nesterov", C.c_int64),
                 ("weight_decay", C.c_double), ("max_grad_norm", C.c_double),
                 ("seed", C.c_int64), ("data", C.c_char_p), ("limit", C.c_int64),
                 ("observe_steps", C.c_int64)]


class TrainFolderOptions(C.Structure):
    _fields_ = [("version", C.c_uint32)] + _RUN_SETTINGS + [
        ("num_threads", C.c_int), ("save_every", C.c_int64), ("resume", C.c_bool),
        ("progress", TrainCallback), ("user_data", P)]

    def __init__(self, **settings):
        super().__init__()
        self.version = 1
        for name, ctype in _RUN_SETTINGS:  # QAT_TRAIN_FOLDER_OPTIONS_INIT
            setattr(self, name, None if ctype is C.c_char_p else QAT_UNSET)
        for name, value in settings.items():
            setattr(self, name, value)


class TrainResult(C.Structure):
    _fields_ = [("version", C.c_uint32), ("epochs", C.c_int64), ("steps", C.c_int64)]

    def __init__(self):
        super().__init__(1, 0, 0)


class EvaluateOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("batch_size", C.c_int64), ("num_threads", C.c_int),
                ("input", C.c_char_p), ("output", C.c_char_p)]

    def __init__(self):
        super().__init__(1, 0, 0, None, None)


class EvalReport(C.Structure):
    _fields_ = [("version", C.c_uint32), ("examples", C.c_int64), ("correct", C.c_int64),
                ("accuracy", C.c_double), ("mean_loss", C.c_double), ("seconds", C.c_double)]

    def __init__(self):
        super().__init__(1, 0, 0, 0.0, 0.0, 0.0)


class FakeQuantParams(C.Structure):
    _fields_ = [("version", C.c_uint32), ("scale", C.c_float), ("zero_point", C.c_float),
                ("quant_min", C.c_int32), ("quant_max", C.c_int32)]


class Api:
    """The calls of qat/c_api.h this example uses, with their signatures."""

    def __init__(self, path):
        lib = C.CDLL(path)
        PP = C.POINTER(P)
        sigs = {
            "qat_version": (C.c_char_p, []),
            "qat_status_message": (C.c_char_p, [P]),
            "qat_status_code": (C.c_int, [P]),
            "qat_status_free": (None, [P]),
            "qat_model_zoo": (P, [PP, C.c_char_p, C.c_uint64]),
            "qat_model_free": (None, [P]),
            "qat_tensor_create": (P, [PP, C.c_int, C.POINTER(C.c_int64), C.c_size_t, P]),
            "qat_tensor_shape": (C.POINTER(C.c_int64), [P]),
            "qat_tensor_rank": (C.c_size_t, [P]),
            "qat_tensor_free": (None, [P]),
            "qat_dataset_create": (P, [PP, P, P]),
            "qat_dataset_size": (C.c_int64, [P]),
            "qat_dataset_free": (None, [P]),
            "qat_calibrate": (P, [PP, P, P, C.POINTER(CalibrateOptions)]),
            "qat_calibration_table_size": (C.c_size_t, [P]),
            "qat_calibration_table_free": (None, [P]),
            "qat_quantize": (P, [PP, P, P, P]),
            "qat_prepare": (P, [P, C.c_char_p, C.POINTER(PrepareOptions)]),
            "qat_train_folder": (P, [C.POINTER(TrainResult), C.c_char_p, P,
                                     C.POINTER(TrainFolderOptions)]),
            "qat_export_folder": (P, [PP, C.c_char_p, P]),
            "qat_model_save": (P, [P, C.c_char_p]),
            "qat_evaluate": (P, [C.POINTER(EvalReport), P, P, C.POINTER(EvaluateOptions)]),
            "qat_executor_create": (P, [PP, P, P]),
            "qat_executor_input_name": (C.c_char_p, [P, C.c_size_t]),
            "qat_executor_num_outputs": (C.c_size_t, [P]),
            "qat_executor_run": (P, [PP, P, C.POINTER(C.c_char_p), PP, C.c_size_t,
                                     C.POINTER(C.c_char_p), C.c_size_t]),
            "qat_executor_free": (None, [P]),
            "qat_fake_quant": (P, [P, P, P, C.c_size_t, P]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
            setattr(self, name, fn)

    def check(self, status, what):
        if status:
            code = self.qat_status_code(status)
            message = self.qat_status_message(status).decode()
            self.qat_status_free(status)
            raise RuntimeError(f"{what} failed ({code}): {message}")

    def take(self, status):
        """(code, message) of a status, which is freed."""
        code, message = self.qat_status_code(status), self.qat_status_message(status).decode()
        self.qat_status_free(status)
        return code, message


def tensor(api, dtype, shape, values_ctype, values):
    buf = (values_ctype * len(values))(*values)
    dims = (C.c_int64 * len(shape))(*shape)
    out = P()
    api.check(api.qat_tensor_create(C.byref(out), dtype, dims, len(shape), buf), "tensor")
    return out


def dataset(api, rng, n, features):
    """Seeded examples: the pixels of class c are noise around (c - 4.5) / 4.5."""
    y = [i % 10 for i in range(n)]
    x = [(y[i] - 4.5) / 4.5 + rng.random() - 0.5 for i in range(n) for _ in range(features)]
    tx = tensor(api, QAT_FLOAT32, [n, features], C.c_float, x)
    ty = tensor(api, QAT_INT64, [n], C.c_int64, y)
    data = P()
    api.check(api.qat_dataset_create(C.byref(data), tx, ty), "dataset")
    api.qat_tensor_free(tx)
    api.qat_tensor_free(ty)
    return data


def main():
    lib_path, out_dir = sys.argv[1], sys.argv[2]
    api = Api(lib_path)
    print("libqat", api.qat_version().decode())
    rng = random.Random(1)
    features = 784
    train = dataset(api, rng, 256, features)
    test = dataset(api, rng, 200, features)

    model = P()
    api.check(api.qat_model_zoo(C.byref(model), b"mlp", 0), "zoo")
    table = P()
    calibrate = CalibrateOptions()
    calibrate.max_samples = 128
    api.check(api.qat_calibrate(C.byref(table), model, train, C.byref(calibrate)), "calibrate")
    print("calibrated", api.qat_calibration_table_size(table), "tensors")
    qdq = P()
    api.check(api.qat_quantize(C.byref(qdq), model, table, None), "quantize")
    folder = os.path.join(out_dir, "qat").encode()
    api.check(api.qat_prepare(qdq, folder, C.byref(PrepareOptions())), "prepare")
    print("prepared", folder.decode())

    # Two chained calls: 1 epoch, then 1 more at a lower rate.  The progress
    # callback sees every step.
    seen = []

    @TrainCallback
    def on_step(_, progress):
        seen.append((progress.contents.global_step, progress.contents.loss))
        return 0

    for lr in (1e-3, 5e-4):
        options = TrainFolderOptions(epochs=1, batch=32, lr=lr, seed=1, num_threads=1,
                                     progress=on_step)
        result = TrainResult()
        api.check(api.qat_train_folder(C.byref(result), folder, train, C.byref(options)),
                  "train")
        print(f"trained 1 epoch at lr {lr}: {result.steps} steps, last loss {seen[-1][1]:.4f}")
    if [s for s, _ in seen] != list(range(1, 9)) * 2:
        raise RuntimeError(f"the callback saw steps {[s for s, _ in seen]}")

    # A callback that returns non-zero stops the run: QAT_CANCELLED, and
    # --resume (here resume=True) finishes it.
    @TrainCallback
    def stop_at_3(_, progress):
        return 1 if progress.contents.global_step == 3 else 0

    options = TrainFolderOptions(epochs=1, batch=32, lr=5e-4, seed=1, num_threads=1,
                                 progress=stop_at_3)
    code, message = api.take(api.qat_train_folder(None, folder, train, C.byref(options)))
    if code != QAT_CANCELLED:
        raise RuntimeError(f"expected QAT_CANCELLED from a stopped run, got {code}: {message}")
    options = TrainFolderOptions(resume=True, num_threads=1)
    result = TrainResult()
    api.check(api.qat_train_folder(C.byref(result), folder, train, C.byref(options)), "resume")
    print(f"stopped at step 3 ({message}); resumed to step {result.steps}")

    exported = P()
    api.check(api.qat_export_folder(C.byref(exported), folder, None), "export")
    path = os.path.join(out_dir, "int8.onnx").encode()
    api.check(api.qat_model_save(exported, path), "save")
    print("exported", path.decode())
    report = EvalReport()
    evaluate = EvaluateOptions()
    evaluate.num_threads = 1
    api.check(api.qat_evaluate(C.byref(report), exported, test, C.byref(evaluate)), "evaluate")
    print(f"evaluate int8: accuracy {report.accuracy:.4f} ({report.correct}/{report.examples}),"
          f" mean loss {report.mean_loss:.4f}")
    if report.examples != 200:
        raise RuntimeError(f"evaluated {report.examples} examples, not 200")

    # The executor handle: compiled once, run twice.
    executor = P()
    api.check(api.qat_executor_create(C.byref(executor), exported, None), "executor")
    name = (C.c_char_p * 1)(api.qat_executor_input_name(executor, 0))
    batch = tensor(api, QAT_FLOAT32, [3, features], C.c_float, [0.5] * (3 * features))
    inputs = (P * 1)(batch)
    for _ in range(2):
        outputs = (P * 1)()
        api.check(api.qat_executor_run(outputs, executor, name, inputs, 1, None, 1), "run")
        shape = api.qat_tensor_shape(outputs[0])
        print("executor: logits", [shape[i] for i in range(api.qat_tensor_rank(outputs[0]))])
        api.qat_tensor_free(outputs[0])
    api.qat_tensor_free(batch)
    api.qat_executor_free(executor)

    # The FakeQuant kernel on a caller's buffer.
    params = FakeQuantParams(1, 0.5, 0.0, -128, 127)
    values = [0.25, 0.75, -1.25, 100.0, -100.0]
    try:
        import numpy as np
        xs = np.array(values, dtype=np.float32)
        ys = np.empty_like(xs)
        x_ptr, y_ptr = xs.ctypes.data, ys.ctypes.data
        api.check(api.qat_fake_quant(y_ptr, None, x_ptr, xs.size, C.byref(params)), "fake_quant")
        result = ys.tolist()
        print("FakeQuant on a numpy buffer:", result)
    except ImportError:
        xs = (C.c_float * len(values))(*values)
        ys = (C.c_float * len(values))()
        x_ptr, y_ptr = C.cast(xs, P), C.cast(ys, P)
        api.check(api.qat_fake_quant(y_ptr, None, x_ptr, len(values), C.byref(params)),
                  "fake_quant")
        result = list(ys)
        print("FakeQuant on a ctypes buffer (numpy not installed):", result)
    expected = [0.0, 1.0, -1.0, 63.5, -64.0]
    if result != expected:
        raise RuntimeError(f"FakeQuant gave {result}, expected {expected}")

    # A bad call returns an error status, never an exception or a crash.
    bad = FakeQuantParams(1, 0.0, 0.0, -128, 127)
    code, message = api.take(api.qat_fake_quant(y_ptr, None, x_ptr, 1, C.byref(bad)))
    if code != QAT_INVALID_ARGUMENT or "scale" not in message:
        raise RuntimeError(f"expected INVALID_ARGUMENT about the scale, got {code}: {message}")
    print("a zero scale is reported:", message)

    for free, handle in ((api.qat_model_free, exported), (api.qat_model_free, qdq),
                         (api.qat_calibration_table_free, table), (api.qat_model_free, model),
                         (api.qat_dataset_free, train), (api.qat_dataset_free, test)):
        free(handle)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()

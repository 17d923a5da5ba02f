"""The C ABI (qat/c_api.h) through ctypes: finding libqat.so, the structs
field for field, the signatures, and statuses turned into exceptions.

Nothing else in the package calls ctypes on the library; everything goes
through `lib()`.  ctypes releases the GIL around every call into a CDLL, and
a CFUNCTYPE callback takes it back while it runs Python code.
"""
import ctypes as C
import ctypes.util
import os
import threading

from . import errors

P = C.c_void_p
PP = C.POINTER(P)
QAT_UNSET = -(2 ** 63)

# QatDataType: ONNX TensorProto codes.
FLOAT32, UINT8, INT8, INT32, INT64, BOOL, FLOAT64 = 1, 2, 3, 6, 7, 9, 11

ENV_VAR = "LIBQAT_LIBRARY"


def _versioned(cls, version, **defaults):
    """An options struct initialized like its _INIT macro."""
    s = cls()
    s.version = version
    for name, value in defaults.items():
        setattr(s, name, value)
    return s


class CalibrateOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("method", C.c_int), ("per_channel_weights", C.c_bool),
                ("symmetric_activations", C.c_bool), ("batch_size", C.c_int64),
                ("num_threads", C.c_int), ("max_samples", C.c_int64),
                ("weight_bits", C.c_int), ("activation_bits", C.c_int)]

    @classmethod
    def init(cls):
        return _versioned(cls, 3, batch_size=64, weight_bits=8, activation_bits=8)


class QuantizeOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("weight_bits", C.c_int), ("activation_type", C.c_int),
                ("per_channel", C.c_bool), ("weights_as_int8", C.c_bool),
                ("symmetric_activations", C.c_bool), ("exclude_nodes", C.POINTER(C.c_char_p)),
                ("num_exclude_nodes", C.c_size_t),
                # version 2
                ("activation_bits", C.c_int), ("unsigned_weights", C.c_bool),
                ("affine_weights", C.c_bool), ("weight_range", C.c_int),
                ("activation_range", C.c_int), ("node_overrides", P),
                ("num_node_overrides", C.c_size_t),
                # version 3
                ("block_size", C.c_int64),
                # version 4
                ("uint8_block_scales", C.c_bool)]

    @classmethod
    def init(cls):
        return _versioned(cls, 4, weight_bits=8, activation_type=UINT8, activation_bits=8)


class PrepareOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("loss", C.c_int), ("quant_params", C.c_int),
                ("frozen", C.POINTER(C.c_char_p)), ("num_frozen", C.c_size_t),
                ("trainable", C.POINTER(C.c_char_p)), ("num_trainable", C.c_size_t),
                # version 3: distillation
                ("teacher", P), ("distill", C.c_bool), ("distill_kind", C.c_int),
                ("temperature", C.c_float), ("distill_outputs", C.POINTER(C.c_char_p)),
                ("num_distill_outputs", C.c_size_t), ("distill_weights", C.POINTER(C.c_float)),
                ("distill_tensors", C.POINTER(C.c_char_p)), ("num_distill_tensors", C.c_size_t),
                ("label_weight", C.c_float)]

    @classmethod
    def init(cls):
        return _versioned(cls, 3, temperature=1.0)


class TrainProgress(C.Structure):
    _fields_ = [("epoch", C.c_int64), ("epochs", C.c_int64), ("step_in_epoch", C.c_int64),
                ("steps_per_epoch", C.c_int64), ("global_step", C.c_int64),
                ("loss", C.c_float), ("lr", C.c_float), ("epoch_mean_loss", C.c_double)]


class NamedBatch(C.Structure):
    """QatNamedBatch: a batch of named inputs (and labels or NULL)."""
    _fields_ = [("version", C.c_uint32), ("num_inputs", C.c_size_t),
                ("names", C.POINTER(C.c_char_p)), ("inputs", PP), ("labels", P)]


NAMED_BATCH_VERSION = 1
TrainCallback = C.CFUNCTYPE(C.c_int, P, C.POINTER(TrainProgress))
NamedBatchCallback = C.CFUNCTYPE(C.c_int, P, C.POINTER(NamedBatch))
BatchCallback = C.CFUNCTYPE(C.c_int, P, PP)
TrainBatchCallback = C.CFUNCTYPE(C.c_int, P, C.c_int64, C.c_int64, PP, PP)

# The run settings of QatTrainFolderOptions, in order.
RUN_SETTINGS = [("epochs", C.c_int64), ("batch", C.c_int64), ("optimizer", C.c_int64),
                ("lr", C.c_double), ("schedule", C.c_int64), ("warmup", C.c_int64),
                ("momentum", C.c_double), ("nesterov", C.c_int64),
                ("weight_decay", C.c_double), ("max_grad_norm", C.c_double),
                ("seed", C.c_int64), ("data", C.c_char_p), ("limit", C.c_int64),
                ("observe_steps", C.c_int64)]


class TrainFolderOptions(C.Structure):
    _fields_ = [("version", C.c_uint32)] + RUN_SETTINGS + [
        ("num_threads", C.c_int), ("save_every", C.c_int64), ("resume", C.c_bool),
        ("progress", TrainCallback), ("user_data", P),
        # version 2: data parallel (left unset from Python)
        ("allreduce", P), ("allreduce_user_data", P), ("rank", C.c_int32),
        ("num_ranks", C.c_int32), ("mpi_comm", P), ("mpi_timeout_seconds", C.c_double),
        # version 3
        ("freeze_bn_steps", C.c_int64),
        # version 4
        ("batch_shards", C.c_int32), ("sync_batch_norm", C.c_bool)]

    @classmethod
    def init(cls):
        s = cls()
        s.version = 4
        for name, ctype in RUN_SETTINGS:  # QAT_TRAIN_FOLDER_OPTIONS_INIT
            setattr(s, name, None if ctype is C.c_char_p else QAT_UNSET)
        s.freeze_bn_steps = QAT_UNSET
        s.batch_shards = 1
        return s


class TrainResult(C.Structure):
    _fields_ = [("version", C.c_uint32), ("epochs", C.c_int64), ("steps", C.c_int64)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1)


class ExportOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("keep_float_weights", C.c_bool), ("opset", C.c_int),
                # version 3
                ("uint8_block_scales", C.c_bool)]

    @classmethod
    def init(cls):
        return _versioned(cls, 3)


class EvaluateOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("batch_size", C.c_int64), ("num_threads", C.c_int),
                ("input", C.c_char_p), ("output", C.c_char_p)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1)


class EvalReport(C.Structure):
    _fields_ = [("version", C.c_uint32), ("examples", C.c_int64), ("correct", C.c_int64),
                ("accuracy", C.c_double), ("mean_loss", C.c_double), ("seconds", C.c_double)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1)


class DatasetOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("split", C.c_char_p), ("limit", C.c_int64),
                ("mean", C.c_float), ("std", C.c_float)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1, mean=0.2860, std=0.3530)


class ExecutorOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("num_threads", C.c_int), ("seed", C.c_uint64)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1)


class TrainerOptions(C.Structure):
    _fields_ = [("version", C.c_uint32), ("loss", C.c_int), ("optimizer", C.c_int),
                ("learning_rate", C.c_float), ("momentum", C.c_float), ("nesterov", C.c_bool),
                ("weight_decay", C.c_float), ("max_grad_norm", C.c_float),
                ("num_threads", C.c_int), ("seed", C.c_uint64),
                ("frozen", C.POINTER(C.c_char_p)), ("num_frozen", C.c_size_t)]

    @classmethod
    def init(cls):
        return _versioned(cls, 1, learning_rate=1e-3, weight_decay=-1.0)


class FakeQuantParams(C.Structure):
    _fields_ = [("version", C.c_uint32), ("scale", C.c_float), ("zero_point", C.c_float),
                ("quant_min", C.c_int32), ("quant_max", C.c_int32)]


_I64P = C.POINTER(C.c_int64)
_SIGNATURES = {
    "qat_version": (C.c_char_p, []),
    "qat_kernel_variant": (C.c_char_p, []),
    "qat_status_code": (C.c_int, [P]),
    "qat_status_message": (C.c_char_p, [P]),
    "qat_status_free": (None, [P]),
    "qat_free": (None, [P]),
    "qat_tensor_create": (P, [PP, C.c_int, _I64P, C.c_size_t, P]),
    "qat_tensor_type": (C.c_int, [P]),
    "qat_tensor_rank": (C.c_size_t, [P]),
    "qat_tensor_shape": (_I64P, [P]),
    "qat_tensor_num_elements": (C.c_size_t, [P]),
    "qat_tensor_data": (P, [P]),
    "qat_tensor_free": (None, [P]),
    "qat_model_load": (P, [PP, C.c_char_p]),
    "qat_model_load_from_memory": (P, [PP, P, C.c_size_t]),
    "qat_model_save": (P, [P, C.c_char_p]),
    "qat_model_serialize": (P, [PP, C.POINTER(C.c_size_t), P]),
    "qat_model_free": (None, [P]),
    "qat_model_zoo": (P, [PP, C.c_char_p, C.c_uint64]),
    "qat_executor_create": (P, [PP, P, C.POINTER(ExecutorOptions)]),
    "qat_executor_num_inputs": (C.c_size_t, [P]),
    "qat_executor_input_name": (C.c_char_p, [P, C.c_size_t]),
    "qat_executor_num_outputs": (C.c_size_t, [P]),
    "qat_executor_output_name": (C.c_char_p, [P, C.c_size_t]),
    "qat_executor_run": (P, [PP, P, C.POINTER(C.c_char_p), PP, C.c_size_t,
                             C.POINTER(C.c_char_p), C.c_size_t]),
    "qat_executor_free": (None, [P]),
    "qat_dataset_load": (P, [PP, C.c_char_p, P, C.POINTER(DatasetOptions)]),
    "qat_dataset_create": (P, [PP, P, P]),
    "qat_dataset_from_callback": (P, [PP, NamedBatchCallback, P]),
    "qat_dataset_size": (C.c_int64, [P]),
    "qat_dataset_free": (None, [P]),
    "qat_calibrate": (P, [PP, P, P, C.POINTER(CalibrateOptions)]),
    "qat_calibrate_arrays": (P, [PP, P, P, C.POINTER(CalibrateOptions)]),
    "qat_calibrate_callback": (P, [PP, P, BatchCallback, P, C.POINTER(CalibrateOptions)]),
    "qat_calibration_table_load": (P, [PP, C.c_char_p]),
    "qat_calibration_table_save": (P, [P, C.c_char_p]),
    "qat_calibration_table_size": (C.c_size_t, [P]),
    "qat_calibration_table_free": (None, [P]),
    "qat_quantize": (P, [PP, P, P, C.POINTER(QuantizeOptions)]),
    "qat_prepare": (P, [P, C.c_char_p, C.POINTER(PrepareOptions)]),
    "qat_train_folder": (P, [C.POINTER(TrainResult), C.c_char_p, P,
                             C.POINTER(TrainFolderOptions)]),
    "qat_export_folder": (P, [PP, C.c_char_p, C.POINTER(ExportOptions)]),
    "qat_evaluate": (P, [C.POINTER(EvalReport), P, P, C.POINTER(EvaluateOptions)]),
    "qat_trainer_train_step": (P, [C.POINTER(C.c_float), P, P, P]),
    "qat_trainer_set_learning_rate": (P, [P, C.c_float]),
    "qat_trainer_step_count": (C.c_int64, [P]),
    "qat_trainer_save_checkpoint": (P, [P, C.c_char_p]),
    "qat_trainer_free": (None, [P]),
    "qat_fake_quant": (P, [P, P, P, C.c_size_t, C.POINTER(FakeQuantParams)]),
    "qat_fake_quant_per_channel": (P, [P, P, P, _I64P, C.c_size_t, C.c_int64, P, P,
                                       C.c_int32, C.c_int32]),
}
# Calls added within 0.2 (additive): bound when the library has them.
_OPTIONAL_SIGNATURES = {
    "qat_train_folder_callback": (P, [C.POINTER(TrainResult), C.c_char_p, TrainBatchCallback,
                                      P, C.c_int64, C.POINTER(TrainFolderOptions)]),
    "qat_trainer_open_folder": (P, [PP, C.c_char_p, C.POINTER(TrainerOptions)]),
    "qat_evaluate_callback": (P, [C.POINTER(EvalReport), P, NamedBatchCallback, P,
                                  C.POINTER(EvaluateOptions)]),
}


class Library:
    """libqat.so with its signatures bound; `path` says which file it is."""

    def __init__(self, path):
        self.path = path
        self._cdll = C.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self._cdll, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)
        for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
            fn = getattr(self._cdll, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)

    def need(self, name):
        """The call `name`, or errors.Unimplemented when this libqat.so predates it."""
        fn = getattr(self, name)
        if fn is None:
            raise errors.Unimplemented(
                errors.UNIMPLEMENTED,
                f"{self.path} has no {name}: it is older than this package; rebuild libqat")
        return fn

    def check(self, status):
        """Raises the exception of a non-NULL status, which is freed."""
        if status:
            code = self.qat_status_code(status)
            message = self.qat_status_message(status).decode("utf-8", "replace")
            self.qat_status_free(status)
            raise errors.from_status(code, message)


_lock = threading.Lock()
_library = None


def _candidates():
    """Where libqat.so is looked for, in order, with what names each."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for name in ("libqat.so", "libqat.so.0"):
        out.append((os.path.join(here, name), "bundled in the package"))
    # The source tree: capi/python/libqat -> build/lib/libqat.so.
    out.append((os.path.normpath(os.path.join(here, "..", "..", "..", "build", "lib",
                                              "libqat.so")), "the in-tree build"))
    found = ctypes.util.find_library("qat")
    if found:
        out.append((found, "the system's library path"))
    for prefix in ("/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"):
        out.append((os.path.join(prefix, "libqat.so"), "installed under " + prefix))
    return out


def load(path=None):
    """Loads libqat.so once per process: `path` when given, else
    $LIBQAT_LIBRARY, else a copy in the package directory, the in-tree
    build, or the installed library.  Raises errors.LibraryNotFound, naming
    every place tried (or the library already loaded, for another path)."""
    global _library
    with _lock:
        if _library is not None:
            # Handles must go back to the library that made them: one per process.
            if path is None or os.path.realpath(path) == os.path.realpath(_library.path):
                return _library
            raise errors.LibraryNotFound(
                f"libqat is already loaded from '{_library.path}'; cannot switch to '{path}' "
                "in the same process")
        if path is None:
            path = os.environ.get(ENV_VAR) or None
            if path is not None and not os.path.exists(path):
                raise errors.LibraryNotFound(f"${ENV_VAR} is '{path}', which does not exist")
        if path is not None:
            try:
                lib = Library(os.fspath(path))
            except OSError as e:
                raise errors.LibraryNotFound(f"cannot load libqat from '{path}': {e}") from e
        else:
            tried = []
            lib = None
            for candidate, where in _candidates():
                if not os.path.isabs(candidate) or os.path.exists(candidate):
                    try:
                        lib = Library(candidate)
                        break
                    except OSError as e:
                        tried.append(f"{candidate} ({where}): {e}")
                        continue
                tried.append(f"{candidate} ({where}): not there")
            if lib is None:
                raise errors.LibraryNotFound(
                    "libqat.so not found.  Pass its path to libqat.load(PATH), set $"
                    f"{ENV_VAR}, or install libqat (cmake --install).  Tried:\n  " +
                    "\n  ".join(tried))
        _library = lib
        return lib


def lib():
    """The loaded library (loading it on first use)."""
    return _library if _library is not None else load()


def strings(values):
    """A C array of char* for a list of str (and the list, kept alive)."""
    encoded = [os.fsencode(v) if isinstance(v, os.PathLike) else str(v).encode()
               for v in values]
    return (C.c_char_p * max(1, len(encoded)))(*encoded), len(encoded)

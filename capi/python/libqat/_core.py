"""The C handles as Python objects: tensors (numpy in and out), models,
calibration tables and data sets, and the conversions the stages share.

Every handle is freed when its Python object is collected (or by close()).
"""
import ctypes as C
import os

import numpy as np

from . import _ffi, errors

# numpy dtype -> QatDataType.  Anything else is refused, never reinterpreted.
_TYPES = {np.dtype(np.float32): _ffi.FLOAT32, np.dtype(np.uint8): _ffi.UINT8,
          np.dtype(np.int8): _ffi.INT8, np.dtype(np.int32): _ffi.INT32,
          np.dtype(np.int64): _ffi.INT64, np.dtype(np.bool_): _ffi.BOOL,
          np.dtype(np.float64): _ffi.FLOAT64}
_DTYPES = {code: dtype for dtype, code in _TYPES.items()}


class _Handle:
    """Owns one C handle; `_free` is the name of its qat_*_free."""
    _free = None

    def __init__(self, handle):
        self._handle = handle

    @property
    def handle(self):
        if not self._handle:
            raise ValueError(f"this {type(self).__name__} was closed")
        return self._handle

    def close(self):
        if getattr(self, "_handle", None):
            getattr(_ffi.lib(), self._free)(self._handle)
            self._handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def as_array(value, what="array"):
    """`value` as a C-contiguous, native-order numpy array of a type the C
    ABI has: non-contiguous or byte-swapped arrays are copied; other types
    (float16, uint16, object, ...) are refused with TypeError."""
    a = np.asarray(value)
    dtype = a.dtype.newbyteorder("=") if a.dtype.byteorder not in ("=", "|") else a.dtype
    if dtype not in _TYPES:
        raise TypeError(f"{what} has dtype {a.dtype}; libqat takes "
                        f"{', '.join(str(d) for d in _TYPES)} (convert it with .astype)")
    return np.ascontiguousarray(a, dtype=dtype)


class Tensor(_Handle):
    """A QatTensor: a copy of a numpy array, made for one C call."""
    _free = "qat_tensor_free"

    def __init__(self, value, what="array"):
        a = as_array(value, what)
        shape = (C.c_int64 * max(1, a.ndim))(*a.shape)
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_tensor_create(
            C.byref(out), _TYPES[a.dtype], shape, a.ndim, a.ctypes.data if a.size else None))
        super().__init__(out)
        self.shape = a.shape


def tensor_to_numpy(handle):
    """A numpy copy of a QatTensor (the handle stays the caller's)."""
    lib = _ffi.lib()
    dtype = _DTYPES[lib.qat_tensor_type(handle)]
    rank = lib.qat_tensor_rank(handle)
    dims = lib.qat_tensor_shape(handle)
    shape = tuple(dims[i] for i in range(rank))
    out = np.empty(shape, dtype=dtype)
    if out.size:
        C.memmove(out.ctypes.data, lib.qat_tensor_data(handle), out.nbytes)
    return out


class Model(_Handle):
    """An ONNX model held by libqat (checked, shapes inferred).

    Make one with Model.load(path), Model.from_bytes(data), Model.zoo(name),
    or as_model(x), which every stage applies to its model argument.
    """
    _free = "qat_model_free"

    @classmethod
    def load(cls, path):
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_model_load(C.byref(out), os.fsencode(path)))
        return cls(out)

    @classmethod
    def from_bytes(cls, data):
        data = bytes(data)
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_model_load_from_memory(C.byref(out), data, len(data)))
        return cls(out)

    @classmethod
    def zoo(cls, name, seed=0):
        """A reference model, PyTorch-initialized: "mlp" (784-500-10), "lenet5",
        or "resnet8" and "mobilenetv2" (training-mode BatchNormalization)."""
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_model_zoo(C.byref(out), name.encode(), seed))
        return cls(out)

    def save(self, path):
        """Writes the model atomically."""
        _ffi.lib().check(_ffi.lib().qat_model_save(self.handle, os.fsencode(path)))

    def to_bytes(self):
        """The serialized ModelProto."""
        data, size = _ffi.P(), C.c_size_t()
        _ffi.lib().check(_ffi.lib().qat_model_serialize(C.byref(data), C.byref(size),
                                                        self.handle))
        try:
            return C.string_at(data, size.value)
        finally:
            _ffi.lib().qat_free(data)

    def to_onnx(self):
        """An onnx.ModelProto (needs the onnx package)."""
        import onnx
        return onnx.load_model_from_string(self.to_bytes())


def as_model(model):
    """A Model from a Model, a path (str or os.PathLike), bytes, or an
    onnx.ModelProto (anything with SerializeToString)."""
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Model.load(model)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return Model.from_bytes(model)
    if hasattr(model, "SerializeToString"):
        return Model.from_bytes(model.SerializeToString())
    raise TypeError(f"a model is a path, bytes, an onnx.ModelProto or a libqat.Model, "
                    f"not {type(model).__name__}")


class CalibrationTable(_Handle):
    """The ranges calibrate measured, one entry per tensor."""
    _free = "qat_calibration_table_free"

    @classmethod
    def load(cls, path):
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_calibration_table_load(C.byref(out),
                                                               os.fsencode(path)))
        return cls(out)

    def save(self, path):
        _ffi.lib().check(_ffi.lib().qat_calibration_table_save(self.handle, os.fsencode(path)))

    def __len__(self):
        return _ffi.lib().qat_calibration_table_size(self.handle)


class Dataset(_Handle):
    """Labelled examples held by libqat, for calibrate, fit and eval.

    Dataset.load(spec, model) reads what the CLI's --data takes (an IDX
    folder such as /usr/share/datasets/fashion-mnist, or
    "FEATURES.npy,LABELS.npy"); Dataset.from_arrays(features, labels) copies
    numpy arrays.
    """
    _free = "qat_dataset_free"

    @classmethod
    def load(cls, spec, model, split="train", limit=0, mean=None, std=None):
        options = _ffi.DatasetOptions.init()
        options.split = split.encode()
        options.limit = limit
        if mean is not None:
            options.mean = mean
        if std is not None:
            options.std = std
        out = _ffi.P()
        model = as_model(model)  # alive until the call returns
        _ffi.lib().check(_ffi.lib().qat_dataset_load(
            C.byref(out), os.fsencode(spec), model.handle, C.byref(options)))
        return cls(out)

    @classmethod
    def from_batches(cls, batches):
        """A data set of every batch of an iterable, copied into libqat and
        concatenated (qat_dataset_from_callback): dicts of named numpy
        arrays, one per model input (int64 token ids, bool masks: any C ABI
        type), with "labels" in every batch or in none.  An exception
        raised by the iterable propagates with its traceback."""
        stored = _Stored()
        feeder = NamedBatches(iter(batches), stored, "data")
        out = _ffi.P()
        call_with_callbacks(stored, _ffi.lib().qat_dataset_from_callback, C.byref(out),
                            _ffi.NamedBatchCallback(feeder), None)
        return cls(out)

    @classmethod
    def from_arrays(cls, features, labels=None):
        x = Tensor(features, "features")
        y = Tensor(labels, "labels") if labels is not None else None
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_dataset_create(C.byref(out), x.handle,
                                                       y.handle if y else None))
        return cls(out)

    def __len__(self):
        return _ffi.lib().qat_dataset_size(self.handle)


LABELS = "labels"


# The name of the one input of an (x, y) pair or a bare array: it feeds a
# single-input model whatever the model calls its input (Dataset::Bind).
UNNAMED = "input"


def batch_parts(batch, what="a batch"):
    """({input name: array}, labels or None) of one batch: a dict of arrays
    (one per model input, optionally "labels"), an (x, y) pair, or an array
    of features alone."""
    if isinstance(batch, dict):
        inputs = {k: v for k, v in batch.items() if k != LABELS}
        if not inputs:
            raise ValueError(f"{what} has no inputs, only {sorted(batch)}")
        return inputs, batch.get(LABELS)
    if isinstance(batch, tuple) and len(batch) == 2:
        return {UNNAMED: batch[0]}, batch[1]
    if isinstance(batch, np.ndarray):
        return {UNNAMED: batch}, None
    raise TypeError(f"{what} is a {type(batch).__name__}; expected a dict of numpy arrays "
                    "({name: x, \"labels\": y}), an (x, y) tuple or an array")


def is_multi_input(batch):
    return isinstance(batch, dict) and sum(1 for k in batch if k != LABELS) > 1


def split_batch(batch, what="a batch"):
    """(features, labels or None) of a batch of one input (the calls that
    feed a single data input)."""
    inputs, labels = batch_parts(batch, what)
    if len(inputs) != 1:
        raise ValueError(f"{what} has inputs {sorted(inputs)}; this call feeds a model's one "
                         "data input (multi-input batches go to calibrate, fit and eval)")
    return next(iter(inputs.values())), labels


class NamedBatches:
    """A QatNamedBatchCallback over an iterator of batches (batch_parts's
    forms).  The tensors of a batch live until the next call; an exception
    (the iterator's, or a batch that does not convert) is stored for the
    caller to re-raise and aborts the C call.  need_labels: a batch without
    "labels" is a ValueError."""

    def __init__(self, iterator, stored, what, need_labels=False):
        self._it = iterator
        self._stored = stored
        self._what = what
        self._need_labels = need_labels
        self._index = 0
        self._kept = None

    def __call__(self, _, out):
        try:
            item = next(self._it)
        except StopIteration:
            return 0
        except BaseException as e:  # the caller's error, re-raised after the call
            self._stored.hold(e)
            return -1
        try:
            what = f"{self._what} batch {self._index}"
            inputs, labels = batch_parts(item, what)
            if labels is None and self._need_labels:
                raise ValueError(f"{what} has no \"labels\"")
            tensors = [Tensor(v, f"{what}: input '{k}'") for k, v in inputs.items()]
            names, n = _ffi.strings(inputs.keys())
            handles = (_ffi.P * n)(*[t.handle for t in tensors])
            label_tensor = Tensor(labels, f"{what}: labels") if labels is not None else None
        except BaseException as e:
            self._stored.hold(e)
            return -1
        self._kept = (tensors, names, handles, label_tensor)
        self._index += 1
        batch = out.contents
        batch.num_inputs = n
        batch.names = names
        batch.inputs = handles
        batch.labels = label_tensor.handle if label_tensor is not None else None
        return 1


def is_spec(data):
    return isinstance(data, (str, os.PathLike))


class _Stored:
    """The exception a callback raised, for the caller to re-raise once the
    C call returned (a ctypes callback cannot raise through C)."""

    def __init__(self):
        self.error = None

    def hold(self, error):
        if self.error is None:
            self.error = error

    def reraise(self):
        if self.error is not None:
            error, self.error = self.error, None
            raise error.with_traceback(error.__traceback__)


def call_with_callbacks(stored, fn, *args):
    """fn(*args) (a C call returning a status) whose callbacks may have stored
    an exception: that exception wins over the Cancelled status it caused."""
    status = fn(*args)
    if status and stored.error is not None:
        _ffi.lib().qat_status_free(status)
        stored.reraise()
    stored.reraise()
    _ffi.lib().check(status)

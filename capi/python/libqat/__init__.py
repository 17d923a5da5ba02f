"""libqat: quantization-aware training of ONNX models, from Python.

The stages, one C ABI call each (libqat.so through ctypes):

    table = libqat.calibrate(model, data)           # -> CalibrationTable
    qdq = libqat.quantize(model, table)             # -> Model (QDQ)
    trainer = libqat.prepare(qdq, "qat_dir")        # -> Trainer(folder)
    trainer.fit(data, epochs=1, lr=1e-4)
    int8 = trainer.export("int8.onnx")              # -> Model
    libqat.eval(int8, data)                         # -> EvalReport
    libqat.run(int8, {"input": x})                  # -> {name: np.ndarray}

Models are paths, bytes, onnx.ModelProto objects or libqat.Model; data is a
data spec as the CLI's --data takes it, a libqat.Dataset, or any iterable of
dicts of numpy arrays.  Failed calls raise libqat.Error subclasses carrying
the C status's code and message.  docs/python.md is the guide.
"""
from ._ffi import ENV_VAR, load
from ._core import CalibrationTable, Dataset, Model
from ._stages import EvalReport, Session, calibrate, eval, fake_quant, prepare, quantize, run
from ._trainer import Progress, Trainer, TrainResult
from .errors import (Cancelled, DataLoss, Error, FailedPrecondition, Internal, InvalidArgument,
                     LibraryNotFound, NotFound, OutOfRange, PermissionDenied, ResourceExhausted,
                     Unimplemented, Unknown)

__version__ = "0.2.0"


def version():
    """The loaded libqat.so's version, "MAJOR.MINOR.PATCH"."""
    from ._ffi import lib
    return lib().qat_version().decode()


def library_path():
    """The path of the libqat.so in use (loading it if needed)."""
    from ._ffi import lib
    return lib().path


__all__ = ["load", "version", "library_path", "ENV_VAR", "Model", "CalibrationTable",
           "Dataset", "Session", "Trainer", "TrainResult", "Progress", "EvalReport",
           "calibrate", "quantize", "prepare", "eval", "run", "fake_quant", "Error",
           "Cancelled", "Unknown", "InvalidArgument", "NotFound", "PermissionDenied",
           "ResourceExhausted", "FailedPrecondition", "OutOfRange", "Unimplemented",
           "Internal", "DataLoss", "LibraryNotFound"]

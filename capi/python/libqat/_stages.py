"""The stages as functions: calibrate, quantize, prepare, eval, run (through
a reusable Session) and fake_quant.  One C call each; the Trainer is in
_trainer.py."""
import ctypes as C
import itertools
import os
from dataclasses import dataclass

import numpy as np

from . import _ffi
from ._core import (CalibrationTable, Dataset, Model, NamedBatches, Tensor, _Handle, _Stored,
                    as_model, call_with_callbacks, is_multi_input, is_spec, split_batch,
                    tensor_to_numpy)

_METHODS = {"minmax": 0, "moving_average": 1, "percentile": 2, "entropy": 3, "mse": 4}
_LOSSES = {"cross_entropy": 0, "mse": 1, "bce_with_logits": 2, "l1": 3}
_DISTILL = {"mse": 0, "kl": 1, "cosine": 2}
_QUANT_PARAMS = {"fixed": 0, "learn": 1, "observe": 2}
_ACTIVATION_TYPES = {"uint8": _ffi.UINT8, "int8": _ffi.INT8}


def choice(table, value, what):
    if value not in table:
        raise ValueError(f"{what} must be one of {', '.join(table)}, not {value!r}")
    return table[value]


def calibrate(model, data, method="minmax", per_channel=False, symmetric_activations=False,
              batch_size=64, max_samples=0, num_threads=0, split="train", limit=0):
    """The calibrate stage: each tensor's range over `data` -> CalibrationTable.

    data: a data spec as the CLI's --data takes it (an IDX folder, or
    "FEATURES.npy,LABELS.npy"; `split` and `limit` apply), a libqat.Dataset,
    a numpy array of samples [N, ...], or any iterable of batches (dicts of
    numpy arrays, (x, y) pairs or arrays; labels are not used), which
    libqat pulls one batch at a time through its batch callback; then
    batch_size and max_samples do not apply.  Batches of several named
    inputs (a dict with more than one array besides "labels") are read
    into one data set first (Dataset.from_batches), and then batch_size
    and max_samples do apply.  An exception raised by the iterable
    propagates with its traceback.
    """
    model = as_model(model)
    options = _ffi.CalibrateOptions.init()
    options.method = choice(_METHODS, method, "method")
    options.per_channel_weights = per_channel
    options.symmetric_activations = symmetric_activations
    options.batch_size = batch_size
    options.num_threads = num_threads
    options.max_samples = max_samples
    lib = _ffi.lib()
    out = _ffi.P()
    if is_spec(data):
        data = Dataset.load(data, model, split=split, limit=limit)
    if isinstance(data, Dataset):
        lib.check(lib.qat_calibrate(C.byref(out), model.handle, data.handle, C.byref(options)))
    elif isinstance(data, np.ndarray):
        x = Tensor(data, "samples")
        lib.check(lib.qat_calibrate_arrays(C.byref(out), model.handle, x.handle,
                                           C.byref(options)))
    else:
        batches = iter(data)
        first = next(batches, None)
        if first is not None:
            batches = itertools.chain([first], batches)
        if is_multi_input(first):
            named = Dataset.from_batches(batches)
            lib.check(lib.qat_calibrate(C.byref(out), model.handle, named.handle,
                                        C.byref(options)))
            return CalibrationTable(out)
        stored = _Stored()
        current = [None]

        def next_batch(_, batch):
            try:
                item = next(batches)
            except StopIteration:
                return 0
            except BaseException as e:  # the caller's error, re-raised below
                stored.hold(e)
                return -1
            try:
                current[0] = Tensor(split_batch(item)[0], "a calibration batch")
            except BaseException as e:
                stored.hold(e)
                return -1
            batch[0] = current[0].handle
            return 1

        callback = _ffi.BatchCallback(next_batch)
        call_with_callbacks(stored, lib.qat_calibrate_callback, C.byref(out), model.handle,
                            callback, None, C.byref(options))
    return CalibrationTable(out)


def quantize(model, table, weight_bits=8, activation_type="uint8", per_channel=False,
             weights_as_int8=False, symmetric_activations=False, exclude_nodes=(),
             block_size=0, uint8_block_scales=False):
    """The quantize stage: QuantizeLinear/DequantizeLinear pairs with the
    table's ranges -> the QDQ Model (runs in ONNX Runtime as it is).

    block_size > 0 (with weight_bits=4): the weights of MatMul and Gemm are
    quantized per block of that many along the reduction axis, one scale
    per block (`qat quantize --block-size`; the model is raised to opset
    21, and exports default to opset 21 with packed INT4 weights).
    uint8_block_scales: the block scales snapped to uint8 codes times a
    power-of-two step per output channel, which exports store in a quarter
    of the bytes (`qat quantize --uint8-block-scales`)."""
    if not isinstance(table, CalibrationTable):
        table = CalibrationTable.load(table)
    options = _ffi.QuantizeOptions.init()
    options.weight_bits = weight_bits
    options.activation_type = choice(_ACTIVATION_TYPES, activation_type, "activation_type")
    options.per_channel = per_channel
    options.weights_as_int8 = weights_as_int8
    options.symmetric_activations = symmetric_activations
    names, count = _ffi.strings(exclude_nodes)
    options.exclude_nodes, options.num_exclude_nodes = names, count
    options.block_size = block_size
    options.uint8_block_scales = uint8_block_scales
    out = _ffi.P()
    model = as_model(model)  # alive until the call returns
    _ffi.lib().check(_ffi.lib().qat_quantize(C.byref(out), model.handle,
                                             table.handle, C.byref(options)))
    return Model(out)


def prepare(model, out_dir, loss="cross_entropy", quant_params="fixed", frozen=(),
            trainable=(), teacher=None, distill=None, temperature=1.0, distill_outputs=(),
            distill_weights=None, distill_tensors=(), label_weight=0.0):
    """The prepare stage: writes the training folder out_dir (training.onnx,
    eval.onnx, checkpoint) and returns a Trainer over it.

    loss: cross_entropy, mse, bce_with_logits or l1.  quant_params: fixed
    (the calibrated scales stay), learn (LSQ) or observe (moving min/max).
    frozen / trainable: parameter name globs.

    Distillation (`qat prepare --teacher/--distill`), on when `teacher` or
    `distill` is given: the loss compares the model's outputs with the
    teacher's on the same batch, so the data needs no labels.  teacher: a
    model (path, bytes, onnx.ModelProto, Model); None with `distill` set:
    the fp32 model that quantize recorded (NotFound when none).  distill:
    mse (the default), kl (at `temperature`) or cosine, for every output in
    distill_outputs (all the model's outputs by default), weighted by
    distill_weights (one per name in distill_outputs); distill_tensors: intermediate
    tensors matched by mse; label_weight > 0 adds that times the labelled
    `loss` (the data then needs labels).
    """
    from ._trainer import Trainer
    options = _ffi.PrepareOptions.init()
    options.loss = choice(_LOSSES, loss, "loss")
    options.quant_params = choice(_QUANT_PARAMS, quant_params, "quant_params")
    frozen_names, options.num_frozen = _ffi.strings(frozen)
    trainable_names, options.num_trainable = _ffi.strings(trainable)
    options.frozen, options.trainable = frozen_names, trainable_names
    keep = []  # what the options point to, alive until the call returns
    if teacher is not None or distill is not None:
        if teacher is not None:
            teacher = as_model(teacher)
            options.teacher = teacher.handle
        options.distill = True
        options.distill_kind = choice(_DISTILL, distill or "mse", "distill")
        options.temperature = temperature
        outputs, options.num_distill_outputs = _ffi.strings(distill_outputs)
        tensors, options.num_distill_tensors = _ffi.strings(distill_tensors)
        options.distill_outputs, options.distill_tensors = outputs, tensors
        if distill_weights is not None:
            weights = [float(w) for w in distill_weights]
            if len(weights) != len(distill_outputs):
                raise ValueError(f"distill_weights has {len(weights)} weights for "
                                 f"{len(distill_outputs)} distill_outputs")
            array = (C.c_float * max(1, len(weights)))(*weights)
            options.distill_weights = C.cast(array, C.POINTER(C.c_float))
            keep.append(array)
        options.label_weight = label_weight
        keep += [outputs, tensors]
    model = as_model(model)  # alive until the call returns
    _ffi.lib().check(_ffi.lib().qat_prepare(model.handle, os.fsencode(out_dir),
                                            C.byref(options)))
    del keep
    return Trainer(out_dir)


@dataclass(frozen=True)
class EvalReport:
    """A classifier's accuracy and loss (what `qat eval` prints)."""
    examples: int
    correct: int
    accuracy: float
    mean_loss: float
    seconds: float


def eval(model, data, batch_size=64, num_threads=0, input=None, output=None, split="test",
         limit=0):
    """The evaluate stage: a classifier's accuracy and mean cross-entropy on
    labelled data -> EvalReport.

    data: a data spec (its `split`, "test" by default, and `limit`), a
    Dataset, or an iterable of labelled batches (dicts of one or more named
    inputs and "labels", or (x, y) pairs), scored one batch at a time as
    libqat pulls them through its batch callback (qat_evaluate_callback):
    nothing is gathered, and each batch is run in pieces of batch_size.  An
    exception raised by the iterable propagates with its traceback."""
    model = as_model(model)
    if is_spec(data):
        data = Dataset.load(data, model, split=split, limit=limit)
    options = _ffi.EvaluateOptions.init()
    options.batch_size = batch_size
    options.num_threads = num_threads
    options.input = input.encode() if input else None
    options.output = output.encode() if output else None
    report = _ffi.EvalReport.init()
    lib = _ffi.lib()
    if isinstance(data, Dataset):
        lib.check(lib.qat_evaluate(C.byref(report), model.handle, data.handle, C.byref(options)))
    else:
        stored = _Stored()
        feeder = NamedBatches(iter(data), stored, "data", need_labels=True)
        call_with_callbacks(stored, lib.need("qat_evaluate_callback"), C.byref(report),
                            model.handle, _ffi.NamedBatchCallback(feeder), None,
                            C.byref(options))
    return EvalReport(report.examples, report.correct, report.accuracy, report.mean_loss,
                      report.seconds)


class Session(_Handle):
    """A model compiled once (a QatExecutor), run any number of times.

    One run at a time per session (a second thread gets FailedPrecondition);
    use one session per thread to run concurrently."""
    _free = "qat_executor_free"

    def __init__(self, model, num_threads=0, seed=0):
        options = _ffi.ExecutorOptions.init()
        options.num_threads = num_threads
        options.seed = seed
        out = _ffi.P()
        lib = _ffi.lib()
        model = as_model(model)  # alive until the call returns
        lib.check(lib.qat_executor_create(C.byref(out), model.handle,
                                          C.byref(options)))
        super().__init__(out)
        self.input_names = [lib.qat_executor_input_name(out, i).decode()
                            for i in range(lib.qat_executor_num_inputs(out))]
        self.output_names = [lib.qat_executor_output_name(out, i).decode()
                             for i in range(lib.qat_executor_num_outputs(out))]

    def run(self, inputs, outputs=None):
        """inputs: {name: numpy array}; returns {name: numpy array} for
        `outputs` (names; all the model's outputs by default)."""
        if not isinstance(inputs, dict):
            raise TypeError("inputs is a dict {input name: numpy array}")
        tensors = [Tensor(v, f"input '{k}'") for k, v in inputs.items()]
        names, n = _ffi.strings(inputs.keys())
        handles = (_ffi.P * max(1, n))(*[t.handle for t in tensors])
        wanted = list(self.output_names if outputs is None else outputs)
        out_names, m = _ffi.strings(wanted)
        results = (_ffi.P * max(1, m))()
        lib = _ffi.lib()
        lib.check(lib.qat_executor_run(results, self.handle, names, handles, n, out_names, m))
        try:
            return {name: tensor_to_numpy(results[i]) for i, name in enumerate(wanted)}
        finally:
            for i in range(m):
                lib.qat_tensor_free(results[i])


def run(model, inputs, outputs=None, num_threads=0):
    """One run of `model` on {name: numpy array} -> {name: numpy array}.
    To run a model more than once, make a Session."""
    return Session(model, num_threads=num_threads).run(inputs, outputs)


def _float32(value, what):
    a = np.asarray(value)
    if a.dtype.kind != "f" or a.dtype.itemsize != 4:
        if isinstance(value, np.ndarray):
            raise TypeError(f"{what} has dtype {a.dtype}; fake_quant takes float32 "
                            "(convert it with .astype(np.float32))")
        a = np.asarray(value, dtype=np.float32)  # Python numbers and lists
    return np.ascontiguousarray(a, dtype=np.dtype(np.float32))


def fake_quant(x, scale, zero_point, qmin, qmax, axis=None, return_mask=False):
    """y = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
    on a float32 array (copied when not contiguous; other dtypes refused),
    per tensor or, with `axis`, per channel (scale and zero_point 1-D, one
    per channel).  With return_mask also the mask qmin <= q <= qmax."""
    xs = _float32(x, "x")
    y = np.empty_like(xs)
    mask = np.empty(xs.shape, dtype=np.bool_) if return_mask else None
    mask_ptr = mask.ctypes.data if return_mask else None
    lib = _ffi.lib()
    if axis is None:
        params = _ffi.FakeQuantParams(1, float(scale), float(zero_point), int(qmin), int(qmax))
        lib.check(lib.qat_fake_quant(y.ctypes.data, mask_ptr, xs.ctypes.data, xs.size,
                                     C.byref(params)))
    else:
        rank = xs.ndim
        if not -rank <= axis < rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank}")
        channels = xs.shape[axis]
        scales = _float32(scale, "scale").reshape(-1)
        zero_points = _float32(zero_point, "zero_point").reshape(-1)
        for name, a in (("scale", scales), ("zero_point", zero_points)):
            if a.size != channels:
                raise ValueError(f"{name} has {a.size} values for {channels} channels "
                                 f"(axis {axis} of shape {xs.shape})")
        shape = (C.c_int64 * max(1, rank))(*xs.shape)
        lib.check(lib.qat_fake_quant_per_channel(
            y.ctypes.data, mask_ptr, xs.ctypes.data, shape, rank, axis, scales.ctypes.data,
            zero_points.ctypes.data, int(qmin), int(qmax)))
    return (y, mask) if return_mask else y

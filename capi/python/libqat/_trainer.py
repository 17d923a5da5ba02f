"""Trainer: the train, evaluate and export stages on a folder that prepare
wrote."""
import ctypes as C
import itertools
import os
import sys
from dataclasses import dataclass

from . import _ffi
from ._core import (Dataset, Model, Tensor, _Handle, _Stored, call_with_callbacks,
                    is_multi_input, is_spec, split_batch)
from ._stages import EvalReport, choice, eval as _eval

_OPTIMIZERS = {"adamw": 0, "sgd": 1}
_SCHEDULES = {"constant": 0, "linear": 1, "cosine": 2}


@dataclass(frozen=True)
class Progress:
    """What a progress hook sees after every optimizer step."""
    epoch: int            # 0-based
    epochs: int
    step_in_epoch: int    # 1-based
    steps_per_epoch: int
    global_step: int
    loss: float
    lr: float
    epoch_mean_loss: float


@dataclass(frozen=True)
class TrainResult:
    epochs: int  # completed in the run
    steps: int   # optimizer steps in the run


class _Bar:
    """A tqdm bar over the run's steps (tqdm is optional)."""

    def __init__(self):
        import tqdm
        self._tqdm = tqdm.tqdm
        self._bar = None

    def __call__(self, p):
        if self._bar is None:
            self._bar = self._tqdm(total=p.epochs * p.steps_per_epoch, unit="step",
                                   initial=p.global_step - 1)
        self._bar.update(1)
        self._bar.set_postfix(epoch=f"{p.epoch + 1}/{p.epochs}", loss=f"{p.epoch_mean_loss:.4f}")

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _epoch_lines(p):
    """Without tqdm: one line per finished epoch, on stderr."""
    if p.step_in_epoch == p.steps_per_epoch:
        print(f"epoch {p.epoch + 1}/{p.epochs}: mean loss {p.epoch_mean_loss:.4f}",
              file=sys.stderr)


def _progress_hook(progress):
    """(hook, close) for fit's `progress`: None, a callable, or True (a tqdm
    bar when tqdm is installed, else a line per epoch)."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        try:
            bar = _Bar()
            return bar, bar.close
        except ImportError:
            return _epoch_lines, lambda: None
    if callable(progress):
        return progress, lambda: None
    raise TypeError("progress is None, True (a bar) or a callable taking a libqat.Progress")


class _Batches:
    """Serves a Python iterable's batches to qat_train_folder_callback.

    Each epoch iterates `data` afresh (iter(data)); `data` may also be a
    function of the epoch returning the epoch's iterable (to shuffle per
    epoch).  A resumed run asks for a step > 0 first: the batches before it
    are skipped.  The tensors of a batch live until the next call.
    `primed`: epoch 0's iterator, already started (fit looked at its first
    batch), used instead of asking `data` again."""

    def __init__(self, data, stored, primed=None):
        self._data = data
        self._stored = stored
        self._primed = primed
        self._it = None
        self._epoch = None
        self._next_step = 0
        self._tensors = None

    def _iterable(self, epoch):
        return self._data(epoch) if callable(self._data) else self._data

    def __call__(self, _, epoch, step, features, labels):
        try:
            if epoch != self._epoch or step != self._next_step:
                if epoch == 0 and self._primed is not None:
                    self._it, self._primed = self._primed, None
                else:
                    self._it = iter(self._iterable(epoch))
                self._epoch, self._next_step = epoch, 0
            item = None
            while self._next_step <= step:
                try:
                    item = next(self._it)
                except StopIteration:
                    raise ValueError(
                        f"the data gave {self._next_step} batches in epoch {epoch}, "
                        f"fewer than steps_per_epoch ({step + 1} or more needed)") from None
                self._next_step += 1
            x, y = split_batch(item, f"batch {step} of epoch {epoch}")
            if y is None:
                raise ValueError(f"batch {step} of epoch {epoch} has no \"labels\"")
            self._tensors = (Tensor(x, "features"), Tensor(y, "labels"))
        except BaseException as e:  # re-raised by fit, with its traceback
            self._stored.hold(e)
            return -1
        features[0] = self._tensors[0].handle
        labels[0] = self._tensors[1].handle
        return 1


class _StepTrainer(_Handle):
    _free = "qat_trainer_free"


class Trainer:
    """The training folder `folder` (written by libqat.prepare or `qat prepare`).

    fit() trains it in place (the train stage; calls chain, and resume=True
    finishes an interrupted run exactly); step() takes one optimizer step
    in memory; evaluate() and export() read what the folder holds.
    """

    def __init__(self, folder, num_threads=0):
        self.folder = os.fspath(folder)
        self.num_threads = num_threads
        self._stepper = None

    # -- the train stage ------------------------------------------------------

    def fit(self, data, epochs=None, lr=None, batch=None, optimizer=None, schedule=None,
            warmup=None, momentum=None, nesterov=None, weight_decay=None,
            max_grad_norm=None, seed=None, limit=None, observe_steps=None, save_every=0,
            resume=False, steps_per_epoch=None, progress=None, batch_shards=1, sync_bn=False,
            freeze_bn_steps=None):
        """Trains the folder; returns TrainResult(epochs, steps) of the run.

        data: a data spec as `qat train --data` takes it (its train split,
        with `limit`), a libqat.Dataset, or any iterable of batches (dicts
        {input: x, "labels": y}, or (x, y) pairs), iterated afresh every
        epoch (a function of the epoch returning one also works); libqat
        pulls them one at a time through its batch callback.  An iterable
        sets its own order and batch size (`batch` and `seed` then only
        record the run; seed still seeds dropout) and needs len() or
        steps_per_epoch.  Batches of several named inputs (a multi-input
        model's: ids, masks) are read once, from the first epoch's
        iterable, into a libqat.Dataset (Dataset.from_batches), which then
        trains as a Dataset does: libqat shuffles it with `seed` in batches
        of `batch`, and steps_per_epoch does not apply.  An exception
        raised by the data or by `progress` stops the run (the checkpoint
        keeps what was saved) and propagates with its traceback.

        Unset settings (None) take the default for a new run and the stored
        value with resume=True, as `qat train` does.  progress: a callable
        taking a libqat.Progress after every step, or True for a tqdm bar
        (a line per epoch without tqdm).  batch_shards=K computes each batch
        as K data-parallel ranks would, bit for bit; sync_bn=True normalizes
        training-mode BatchNorm with the statistics of the whole batch over
        the shards (docs/training.md).  Neither is stored: pass them again
        with resume=True.  freeze_bn_steps=N: from global step N of the run
        on, training-mode BatchNorm keeps its running statistics and
        normalizes with them (`qat train --freeze-bn-steps`).
        """
        self._sync()
        options = _ffi.TrainFolderOptions.init()
        settings = dict(epochs=epochs, lr=lr, batch=batch, warmup=warmup, momentum=momentum,
                        weight_decay=weight_decay, max_grad_norm=max_grad_norm, seed=seed,
                        limit=limit, observe_steps=observe_steps)
        for name, value in settings.items():
            if value is not None:
                setattr(options, name, value)
        if optimizer is not None:
            options.optimizer = choice(_OPTIMIZERS, optimizer, "optimizer")
        if schedule is not None:
            options.schedule = choice(_SCHEDULES, schedule, "schedule")
        if nesterov is not None:
            options.nesterov = int(bool(nesterov))
        options.num_threads = self.num_threads
        options.save_every = save_every
        options.resume = resume
        options.batch_shards = batch_shards
        options.sync_batch_norm = bool(sync_bn)
        if freeze_bn_steps is not None:
            options.freeze_bn_steps = freeze_bn_steps

        stored = _Stored()
        hook, close = _progress_hook(progress)
        if hook is not None:
            def on_step(_, p):
                try:
                    c = p.contents
                    hook(Progress(c.epoch, c.epochs, c.step_in_epoch, c.steps_per_epoch,
                                  c.global_step, c.loss, c.lr, c.epoch_mean_loss))
                except BaseException as e:
                    stored.hold(e)
                    return 1
                return 0
            options.progress = _ffi.TrainCallback(on_step)
        result = _ffi.TrainResult.init()
        lib = _ffi.lib()
        folder = os.fsencode(self.folder)
        try:
            if is_spec(data):
                options.data = os.fsencode(data)
                call_with_callbacks(stored, lib.qat_train_folder, C.byref(result), folder,
                                    None, C.byref(options))
            elif isinstance(data, Dataset):
                call_with_callbacks(stored, lib.qat_train_folder, C.byref(result), folder,
                                    data.handle, C.byref(options))
            else:
                # The first batch says whether the data has several inputs.
                primed = iter(data(0) if callable(data) else data)
                first = next(primed, None)
                if first is not None:
                    primed = itertools.chain([first], primed)
                if is_multi_input(first):
                    named = Dataset.from_batches(primed)
                    call_with_callbacks(stored, lib.qat_train_folder, C.byref(result), folder,
                                        named.handle, C.byref(options))
                    return TrainResult(result.epochs, result.steps)
                steps = self._steps_per_epoch(data, steps_per_epoch, epochs)
                callback = _ffi.TrainBatchCallback(_Batches(data, stored, primed))
                call_with_callbacks(stored, lib.need("qat_train_folder_callback"),
                                    C.byref(result), folder, callback, None, steps,
                                    C.byref(options))
        finally:
            close()
        return TrainResult(result.epochs, result.steps)

    @staticmethod
    def _steps_per_epoch(data, steps_per_epoch, epochs):
        if steps_per_epoch is not None:
            return steps_per_epoch
        if callable(data):
            raise TypeError("data is a function of the epoch: pass steps_per_epoch")
        if iter(data) is data and (epochs or 1) > 1:
            raise TypeError("data is an iterator, which runs out after one epoch: pass a "
                            "list, an object with __iter__, or a function of the epoch")
        try:
            return len(data)
        except TypeError:
            raise TypeError(f"data ({type(data).__name__}) has no len(): pass "
                            "steps_per_epoch") from None

    # -- step by step -------------------------------------------------------------

    def step(self, batch, lr=1e-3, optimizer="adamw", seed=0):
        """One optimizer step on `batch` ({input: x, "labels": y} or (x, y));
        returns the loss before the update.  The first step() starts from
        the folder's checkpoint with a fresh optimizer (lr, optimizer and
        seed apply from then on: call set_lr to change the rate); the steps
        are written back to the folder's checkpoint by save(), and before
        fit, evaluate and export."""
        lib = _ffi.lib()
        if self._stepper is None:
            options = _ffi.TrainerOptions.init()
            options.learning_rate = lr
            options.optimizer = choice(_OPTIMIZERS, optimizer, "optimizer")
            options.num_threads = self.num_threads
            options.seed = seed
            out = _ffi.P()
            lib.check(lib.need("qat_trainer_open_folder")(C.byref(out),
                                                          os.fsencode(self.folder),
                                                          C.byref(options)))
            self._stepper = _StepTrainer(out)
        x, y = split_batch(batch)
        if y is None:
            raise ValueError("a training batch needs \"labels\"")
        features, labels = Tensor(x, "features"), Tensor(y, "labels")
        loss = C.c_float()
        lib.check(lib.qat_trainer_train_step(C.byref(loss), self._stepper.handle,
                                             features.handle, labels.handle))
        return loss.value

    def set_lr(self, lr):
        """The learning rate of the following step() calls."""
        if self._stepper is None:
            raise RuntimeError("set_lr applies to step(): take a step first")
        _ffi.lib().check(_ffi.lib().qat_trainer_set_learning_rate(self._stepper.handle, lr))

    @property
    def steps_taken(self):
        """Optimizer steps taken by step() since the last save (0 when none)."""
        if self._stepper is None:
            return 0
        return _ffi.lib().qat_trainer_step_count(self._stepper.handle)

    def save(self):
        """Writes the steps taken by step() to FOLDER/checkpoint."""
        self._sync()

    def _sync(self):
        if self._stepper is not None:
            path = os.path.join(self.folder, "checkpoint")
            _ffi.lib().check(_ffi.lib().qat_trainer_save_checkpoint(self._stepper.handle,
                                                                    os.fsencode(path)))
            self._stepper.close()
            self._stepper = None

    # -- export and evaluate ----------------------------------------------------------

    def export(self, path=None, keep_float_weights=False, opset=None, uint8_block_scales=False):
        """The export stage: the inference model (int8 QDQ when quantized);
        written to `path` (atomically) when given.  Returns the Model.

        opset: 13, or 21 (4-bit weights packed two per byte as INT4 behind
        DequantizeLinear-21, block-wise ones with its block_size), as `qat
        export --opset`; None picks 21 when a weight is 4-bit or block-wise,
        else 13.  uint8_block_scales: snap block scales that training moved
        to uint8 codes times a power-of-two step (`qat export
        --uint8-block-scales`; scales already of that form are stored so
        without it)."""
        self._sync()
        options = _ffi.ExportOptions.init()
        options.keep_float_weights = keep_float_weights
        options.opset = opset or 0
        options.uint8_block_scales = uint8_block_scales
        out = _ffi.P()
        _ffi.lib().check(_ffi.lib().qat_export_folder(C.byref(out), os.fsencode(self.folder),
                                                      C.byref(options)))
        model = Model(out)
        if path is not None:
            model.save(path)
        return model

    def evaluate(self, data, batch_size=64, split="test", limit=0):
        """The exported model's accuracy and loss on labelled data (as
        libqat.eval) -> EvalReport."""
        return _eval(self.export(), data, batch_size=batch_size, num_threads=self.num_threads,
                     split=split, limit=limit)


__all__ = ["Trainer", "TrainResult", "Progress", "EvalReport"]

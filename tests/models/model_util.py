"""What the real-model scripts share: their command line, file names as `qat
run` writes them, .npy saving, and the relative L2 error every gradient check
uses."""
import os

import numpy as np


def file_name(name):
    """The file name `qat run` uses for a tensor name (run_command.cc)."""
    out = "".join(c if (c.isalnum() and c.isascii()) or c in "._-" else "_" for c in name)
    return out or "_"


def rel_l2(got, want):
    """||got - want||_2 / ||want||_2, in float64 (the absolute norm when want is 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    d = np.linalg.norm((got - want).ravel())
    n = np.linalg.norm(want.ravel())
    return float(d / n) if n > 0 else float(d)


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(array))


def model_names(argv, models, usage):
    """The models named on the command line (all when none), or None after
    printing why the command line is wrong."""
    if len(argv) < 2:
        print(usage)
        return None
    names = argv[2:] or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        print(f"unknown model(s) {unknown}; known: {', '.join(models)}")
        return None
    return names

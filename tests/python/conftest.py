"""pytest fixtures for the libqat package's suite (tests/python).

The package under test is the installed one when `import libqat` works,
else the source tree's capi/python.  The library is $LIBQAT_LIBRARY (ctest
sets it to the build's libqat.so) or what libqat.load() finds.
"""
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    import libqat  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(ROOT, "capi", "python"))
    import libqat  # noqa: F401

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fmnist():
    if not os.path.exists(os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte")) and \
            not os.path.exists(os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte.gz")):
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION_MNIST} "
                    "(Debian package dataset-fashion-mnist)")
    return FASHION_MNIST


@pytest.fixture(scope="session")
def qat_cli():
    path = os.environ.get("QAT_CLI") or os.path.join(ROOT, "build", "examples", "qat")
    if not os.path.exists(path):
        pytest.skip(f"the qat CLI is not built ({path}); set $QAT_CLI")
    return path


@pytest.fixture(scope="session")
def node_ort():
    """The ONNX Runtime node runner (tests/ort), or a skip saying why."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: ONNX Runtime checks need it")
    return node, os.path.join(ROOT, "tests", "ort")


@pytest.fixture(scope="session")
def mlp():
    return libqat.Model.zoo("mlp", seed=0)


def examples(n, seed=7):
    """n seeded MLP examples whose class shows in the features."""
    rng = np.random.RandomState(seed)
    y = (np.arange(n) % 10).astype(np.int64)
    x = ((y[:, None] - 4.5) / 4.5 + rng.rand(n, 784) - 0.5).astype(np.float32)
    return x, y


def batches(x, y, size=32, name="input"):
    return [{name: x[i:i + size], "labels": y[i:i + size]} for i in range(0, len(y), size)]


def pytest_report_header(config):
    return [f"libqat package: {os.path.dirname(libqat.__file__)}",
            f"libqat.so: {libqat.library_path()} (version {libqat.version()})"]

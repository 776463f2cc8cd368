"""Shared fixtures. Expensive things (a trained run) are made once per session."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import torch

import labkit

# A suite started in the background (`python -m pytest &`, a script's `cmd &`) inherits Ctrl-C
# ignored, and so would every command the tests start and send one to: each would ignore it,
# and the tests of Ctrl-C would wait for nothing. A handler set here resets to the default in
# every process started from here, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The cores are shared among the test workers (pytest-xdist): each worker, and every kernel
# or command it starts, gets its share of threads, or torch's threads would wait for each
# other across workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, (os.cpu_count() or 2) // _WORKERS)
os.environ["OMP_NUM_THREADS"] = str(_THREADS)
torch.set_num_threads(_THREADS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (collection order among them, so a module's stay together and
    share its fixtures): each worker takes the next test when it is free (``--dist load
    --maxschedchunk 1``), and the run ends on short ones instead of one worker starting a
    minute-long notebook while the other has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def run_cache_of_the_suite(tmp_path_factory, worker_id):
    """One run cache for the whole suite, shared by its workers and every kernel and command
    they start (as a class shares one): never the checkout's ``runs/.cache``."""
    import os

    from labkit import store

    base = tmp_path_factory.getbasetemp()  # a worker's is a folder in the run's
    shared = (base if worker_id == "master" else base.parent) / "run-cache"
    os.environ[store.CACHE_VAR] = str(shared)
    yield shared
    del os.environ[store.CACHE_VAR]


@pytest.fixture(scope="session", autouse=True)
def own_tensorboard_registry(tmp_path_factory):
    """The tests note their TensorBoards in a registry of their own (kernels and commands they
    start inherit it), so stopping them never touches one a student's notebook started."""
    import os

    from labkit import view

    os.environ[view.processes.REGISTRY_VAR] = str(tmp_path_factory.mktemp("tensorboard-registry"))
    yield
    view.stop_all(everyone=True)
    del os.environ[view.processes.REGISTRY_VAR]


@pytest.fixture(scope="session")
def digits():
    return labkit.load_dataset("digits")


@pytest.fixture(scope="session")
def digits_run(digits):
    """A 4-epoch CNN run on digits, shared by tests that only read snapshots."""
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes, seed=0)
    snaps = labkit.train(model, digits, epochs=4, seed=0, progress=False)
    return model, snaps


@pytest.fixture(scope="session")
def deep_run(digits):
    """All five layers of the deep MLP on digits, trained long enough to fit the train set."""
    model = labkit.build_model("deep-mlp", digits.input_shape, digits.n_classes, seed=0)
    snaps = labkit.train(model, digits, epochs=30, layers="all", seed=0, progress=False)
    return model, snaps


@pytest.fixture
def standin_colab(monkeypatch):
    """The stand-in ``google.colab`` (tests/standin) imported, as Colab's kernel does at start;
    removed again afterwards, so no other test believes it runs on Colab."""
    from anywidget import _util

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "standin"))
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    _util.enable_custom_widget_manager_once.cache_clear()  # once per process, as on Colab
    import google.colab

    google.colab.output.calls.clear()
    try:
        yield google.colab
    finally:
        for name in [m for m in sys.modules if m.startswith("google.colab")]:
            del sys.modules[name]
        _util.enable_custom_widget_manager_once.cache_clear()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    """Projector logs of a one-epoch digits run, for the tests that serve them."""
    snaps = labkit.train(
        labkit.build_model("mlp", (64,), 10, seed=0),
        labkit.load_dataset("digits", probe_size=50),
        epochs=1,
        progress=False,
    )
    folder = tmp_path_factory.mktemp("served") / "tensorboard"
    labkit.write_projector(snaps, folder)
    return folder

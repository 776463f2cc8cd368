"""A run's arguments and its run folder under careless and hostile input, through the real
command line and the library: nothing the kit is pointed at is lost, and every mistake is
one sentence (exit code 2, no traceback; a ``LabkitError`` in Python) before any training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import labkit
from labkit import experiment, store
from labkit.errors import ConfigError, LabkitError, RunExistsError
from tests.test_mistakes import QUICK, assert_one_sentence, contents, labkit_cli, leftovers


def cached_runs() -> set[str]:
    """The run cache's entries: a refusal that comes before training adds none."""
    return {p.name for p in store.folder().glob("*.npz")}


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A working directory holding a user's own files, an earlier run and the run cache."""
    (tmp_path / "mydocs").mkdir()
    (tmp_path / "mydocs" / "thesis.tex").write_text("three years of work")
    (tmp_path / "notes.txt").write_text("the working directory's own file")
    proc = labkit_cli("run", "--out", "runs/digits", *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "runs" / ".cache").mkdir()  # where a class's run cache lives
    (tmp_path / "runs" / ".cache" / "entry.npz").write_bytes(b"a kept run")
    return tmp_path


# -- --overwrite replaces only what the kit can prove it wrote --------------------------------


@pytest.mark.parametrize(
    "out, words",
    [
        ("mydocs", ["mydocs is not empty and is not a run folder the kit wrote", "thesis.tex"]),
        (".", ["--out . is the working directory", "--out runs/NAME"]),
        ("{cwd}", ["is the working directory"]),
        ("runs", ["--out runs is the folder of all runs"]),
        ("runs/.cache", ["runs/.cache is not empty and is not a run folder"]),
        ("..", ["holds the working directory"]),
    ],
)
@pytest.mark.parametrize("overwrite", [True, False])
def test_overwrite_never_replaces_a_folder_the_kit_did_not_write(workspace, out, words, overwrite):
    out = out.format(cwd=workspace)
    before, cache = contents(workspace), cached_runs()
    flags = ["--overwrite"] if overwrite else []
    proc = labkit_cli("run", "--out", out, *flags, "--seed", "3", *QUICK, cwd=workspace)
    assert_one_sentence(proc, *words)
    assert contents(workspace) == before  # every file, the earlier run and the cache too
    assert cached_runs() == cache  # refused before training (seed 3 is a new run)


def test_a_run_folder_holding_a_file_of_the_users_is_not_replaced(workspace):
    run = workspace / "runs" / "digits"
    (run / "my_analysis.ipynb").write_text("{}")
    before = contents(run)
    proc = labkit_cli("run", "--out", str(run), "--overwrite", *QUICK, cwd=workspace)
    assert_one_sentence(proc, "files the kit did not write", "my_analysis.ipynb", "move them")
    assert contents(run) == before


def test_a_run_without_a_manifest_is_left_alone_and_said_so(workspace):
    run = workspace / "runs" / "digits"
    (run / ".labkit-run.json").unlink()  # as a run written before run folders had one
    before = contents(run)
    proc = labkit_cli("run", "--out", str(run), "--overwrite", *QUICK, cwd=workspace)
    assert_one_sentence(proc, "looks like a run, but has no manifest", "delete it yourself")
    assert contents(run) == before


def test_a_forged_or_damaged_manifest_proves_nothing(workspace):
    docs = workspace / "mydocs"
    for forged in ('{"files": ["thesis.tex"]}', "not json", '{"written_by": "labkit"}'):
        (docs / ".labkit-run.json").write_text(forged)
        before = contents(docs)
        proc = labkit_cli("run", "--out", "mydocs", "--overwrite", *QUICK, cwd=workspace)
        assert_one_sentence(proc, "is not a run folder the kit wrote")
        assert contents(docs) == before


def test_a_symlinked_out_is_refused(workspace):
    (workspace / "link").symlink_to(workspace / "mydocs")
    before = contents(workspace / "mydocs")
    proc = labkit_cli("run", "--out", "link", "--overwrite", *QUICK, cwd=workspace)
    assert_one_sentence(proc, "--out link is a symbolic link")
    assert contents(workspace / "mydocs") == before and (workspace / "link").is_symlink()


def test_the_library_follows_the_same_rule(workspace):
    before = contents(workspace)
    here = os.getcwd()
    os.chdir(workspace)
    try:
        for out in ("mydocs", ".", "runs"):
            with pytest.raises(LabkitError):
                experiment.run("digits", epochs=1, probe_size=60, out=out, overwrite=True)
        with pytest.raises(RunExistsError, match="not a run folder the kit wrote"):
            experiment.run("digits", epochs=1, probe_size=60, out="mydocs", overwrite=True)
    finally:
        os.chdir(here)
    assert contents(workspace) == before


def test_a_long_run_name_works_and_one_too_long_is_refused_before_training(tmp_path):
    long = "x" * 245  # within the file system's 255, beyond it with a ".partial-..." suffix
    proc = labkit_cli("run", "--out", f"runs/{long}", *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert labkit.Snapshots.load(tmp_path / "runs" / long).n_probe == 60
    assert leftovers(tmp_path / "runs") == []
    cache = cached_runs()
    proc = labkit_cli("run", "--out", "y" * 300, "--seed", "4", *QUICK, cwd=tmp_path)
    assert_one_sentence(proc, "300 bytes long", "at most 255", "shorter name")
    assert cached_runs() == cache


# -- arguments at the edges: one sentence, before anything is loaded or trained -------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "1e308"], ["lr, the learning rate,", "at most 3.4e+38", "got 1e+308"]),
        (["--lr", "1e39"], ["lr, the learning rate,", "at most 3.4e+38"]),
        (["--seed", str(2**32)], ["seed must be", "from 0 to 2**32 - 1", "4294967296"]),
        (["--device", "mps"], ["device='mps'", "no Apple GPU", "'cpu'"]),
        (["--probe-size", "5", "--method", "tsne"], ["tsne needs at least 6 points", "has 5"]),
        (["--probe-size", "3", "--method", "umap"], ["umap needs at least 4 points", "has 3"]),
    ],
)
def test_edge_arguments_are_one_sentence_before_training(tmp_path, args, words):
    cache = cached_runs()
    quick = [a for a in QUICK if a != "--no-figures"]  # the methods matter for the figures
    seed = [] if "--seed" in args else ["--seed", "7"]  # a run the cache has not seen
    proc = labkit_cli("run", *quick, *args, *seed, cwd=tmp_path)
    assert_one_sentence(proc, *words)
    assert cached_runs() == cache
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def digits():
    return labkit.load_dataset("digits", probe_size=60)


def mlp(data, n_classes=None):
    return labkit.build_model("mlp", data.input_shape, n_classes or data.n_classes)


QUIET = {"epochs": 1, "progress": False, "cache": False}


class UnusedLayer(nn.Module):
    """A model whose ``spare`` layer its forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.spare, self.head = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1))))


def _poke(t: torch.Tensor, value) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[5] = value
    return t


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: (mlp(d, 20), d), ["10 classes", "head has 20 outputs"]),
        (lambda d: (UnusedLayer(), d), ["layer 'spare' of UnusedLayer gave no output"]),
        (lambda d: (mlp(d), replace(d, x_train=d.x_train.double())), ["torch.float64", ".float()"]),
        (lambda d: (mlp(d), replace(d, x_test=_poke(d.x_test, float("nan")))), ["x_test", "NaN"]),
        (lambda d: (mlp(d), replace(d, x_train=_poke(d.x_train, float("inf")))), ["infinite"]),
        (lambda d: (mlp(d), replace(d, y_train=_poke(d.y_train, 12))), ["label 12", "0..9"]),
        (lambda d: (mlp(d), replace(d, y_test=_poke(d.y_test, -1))), ["label -1"]),
        (lambda d: (mlp(d), replace(d, y_train=d.y_train.int())), ["torch.int32", ".long()"]),
        (
            lambda d: (mlp(d), replace(d, y_train=d.y_train[:-3])),
            ["1344 labels", "one label per sample"],
        ),
        (lambda d: (mlp(d), replace(d, titles=[1, *d.titles[1:]])), ["titles should be 60 str"]),
        (lambda d: (mlp(d), replace(d, titles=d.titles[:-1])), ["titles should be 60", "got 59"]),
        (lambda d: (mlp(d), replace(d, class_names=[0, *d.class_names[1:]])), ["class_names"]),
        (
            lambda d: (mlp(d), replace(d, probe_index=d.probe_index + 1000)),
            ["probe_index holds", "outside the 450 samples of the test split"],
        ),
    ],
)
def test_train_refuses_data_and_models_it_cannot_use(digits, make, words):
    model, data = make(digits)
    layers = ["spare"] if isinstance(model, UnusedLayer) else "penultimate"
    with pytest.raises(ConfigError) as info:
        labkit.train(model, data, layers=layers, **QUIET)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"eval_batch_size": 0}, ["eval_batch_size", ">= 1", "got 0"]),
        ({"seed": 2**32}, ["seed", "2**32 - 1"]),
        ({"lr": 1e39}, ["learning rate", "at most 3.4e+38"]),
        ({"device": "mps"}, ["no Apple GPU"]),
    ],
)
def test_train_refuses_edge_arguments(digits, kwargs, words):
    with pytest.raises(LabkitError) as info:
        labkit.train(mlp(digits), digits, **QUIET | kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_numpy_numbers_are_taken_as_the_python_numbers_they_are(digits):
    plain = labkit.train(mlp(digits), digits, epochs=1, lr=1e-3, progress=False, cache=False)
    numpy = labkit.train(
        mlp(digits),
        digits,
        epochs=np.int64(1),
        lr=np.float64(1e-3),
        seed=np.int32(0),
        batch_size=None,
        progress=False,
        cache=False,
    )
    assert numpy.equals(plain) and numpy.meta["lr"] == 1e-3 and numpy.epochs == 1
    single = labkit.train(mlp(digits), digits, lr=np.float32(1e-3), **QUIET)
    assert single.meta["lr"] == float(np.float32(1e-3))


def test_capture_warns_when_a_forward_pass_runs_in_training_mode(digits):
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    model.train()
    x = digits.x_test[:16]
    warns = pytest.warns(UserWarning, match="ran in training mode.*BatchNorm2d.*model.eval")
    with warns as said, torch.no_grad(), labkit.capture(model, "embed"):
        model(x)
        model(x)
    assert len([w for w in said if "training mode" in str(w.message)]) == 1  # once a block
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # switched to evaluation mode in the block: not a word
        with torch.no_grad(), labkit.capture(model, "embed") as acts:
            model.eval()
            model(x)
        with torch.no_grad(), labkit.capture(model, "embed") as acts:
            model(x)
    assert acts["embed"].shape[0] == 16


# -- Ctrl-C: in the first seconds, and one that a library swallows -----------------------------


def _started(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "NGROK_AUTHTOKEN"}
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("delay", [0.2, 0.6])
def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path, delay):
    proc = _started([sys.executable, "-m", "labkit", "run", *QUICK], tmp_path)
    time.sleep(delay)  # torch is still being imported
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: nothing was written" in err, err
    assert not (tmp_path / "runs").exists()


SWALLOWING = """
import os, signal, sys, time
import numpy as np
from labkit import cli

savez = np.savez


def swallowing_savez(*args, **kwargs):
    # What a library does with a Ctrl-C that lands inside an import it treats as optional
    # (a compiled module's start turns it into ImportError, and `except ImportError` goes on).
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except (KeyboardInterrupt, ImportError):
        pass
    return savez(*args, **kwargs)


np.savez = swallowing_savez
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_ctrl_c_a_library_swallowed_still_stops_the_run(workspace):
    run = workspace / "runs" / "digits"
    before = contents(run)
    script = workspace / "swallowing.py"
    script.write_text(SWALLOWING)
    args = ["run", "--out", str(run), "--overwrite", "--seed", "5", *QUICK]
    proc = _started([sys.executable, str(script), *args], workspace)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "interrupted: nothing was written, and an earlier run folder is as it was" in err
    assert contents(run) == before
    assert leftovers(run.parent) == [".cache"]  # the fixture's: no half-built run beside it


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"seed": 2**32}, ["seed", "from 0 to 2**32 - 1", "4294967296"]),
        ({"seed": 1.5}, ["seed", "whole number"]),
        ({"probe_size": 0}, ["probe_size", "at least 1", "got 0"]),
        ({"probe_size": 2.5}, ["probe_size", "whole number"]),
    ],
)
def test_load_dataset_refuses_seeds_and_probe_sizes_out_of_range(kwargs, words):
    with pytest.raises(labkit.DataError) as info:
        labkit.load_dataset("digits", **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_the_command_line_gives_the_callers_warning_format_back(tmp_path):
    before = warnings.formatwarning
    proc = labkit_cli("run", *QUICK, "--probe-size", "5000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: probe size 5000 is more than" in proc.stderr  # a sentence while it ran
    assert warnings.formatwarning is before


def test_run_names_its_own_mistaken_argument_not_the_data_sets(tmp_path):
    with pytest.raises(ConfigError) as refused:
        experiment.run("digits", epochs=1, out=tmp_path / "r", reducer="umap")
    message = str(refused.value)
    assert message.startswith("run() takes no argument 'reducer' (did you mean 'method'?)")
    assert "load_dataset('digits')" in message and "label_noise" in message
    assert not (tmp_path / "r").exists()
    # What the data set does take still reaches it.
    result = experiment.run(
        "blobs", epochs=1, out=tmp_path / "b", n_samples=300, figures=False, progress=False
    )
    assert len(result.data.y_train) + len(result.data.y_test) == 300


def test_a_layer_typo_is_a_labkit_error_and_a_key_error(digits):
    model = labkit.build_model("mlp", digits.input_shape, digits.n_classes)
    with pytest.raises(labkit.LayerNotFound) as typo, labkit.capture(model, ["hiden2"]):
        pass
    assert isinstance(typo.value, KeyError) and isinstance(typo.value, LabkitError)
    assert str(typo.value).startswith("MLP has no layer 'hiden2'.")  # a sentence, not a repr
    assert "labkit.layer_names(model)" in str(typo.value)
    snaps = labkit.train(model, digits, **QUIET)
    with pytest.raises(labkit.LayerNotFound, match="layer 'nope' was not captured"):
        snaps.layer("nope")
    assert labkit.DivergedError.__module__ == labkit.ConfigError.__module__ == "labkit.errors"


ONE_CTRL_C_THEN_ANOTHER_COMMAND = """
import os, signal, threading
from labkit import cli

# The first command is interrupted (Ctrl-C during the run); the same process then runs a
# second command, which must not inherit that Ctrl-C.
quick = ["--epochs", "3", "--probe-size", "60", "--no-figures", "--no-progress"]
# A whole run first: every lazy import done, so the Ctrl-C lands in the run itself (one that
# lands inside an import leaves that module half made for the rest of the process).
assert cli.main(["run", *quick, "--out", "warm", "--no-cache"]) == 0
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
first = cli.main(["run", *quick, "--epochs", "30", "--out", "first", "--no-cache"])
second = cli.main(["run", *quick, "--out", "second"])
print(first, second)
"""


def test_a_ctrl_c_of_one_command_does_not_stop_the_next_in_the_same_process(tmp_path):
    script = tmp_path / "twice.py"
    script.write_text(ONE_CTRL_C_THEN_ANOTHER_COMMAND)
    proc = _started([sys.executable, str(script)], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert out.split()[-2:] == ["130", "0"], (out, err)
    assert not (tmp_path / "first").exists() and (tmp_path / "second").is_dir()

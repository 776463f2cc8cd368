"""The run cache: the same training is loaded, not done again, and only the same training."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import labkit
from labkit import store
from labkit.training import runcache
from labkit.training.device import resolve_precision

LOADED = "loaded the run trained on"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, so what it holds is what this test trained."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(store.CACHE_VAR, str(folder))
    return folder


def _train(data, *, seed=0, model_options=None, **options):
    model = labkit.build_model(
        "cnn", data.input_shape, data.n_classes, seed=seed, **(model_options or {})
    )
    options = {"epochs": 1, "progress": False, **options}
    return model, labkit.train(model, data, **options)


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz"))


def test_a_second_identical_run_is_loaded_and_equals_a_fresh_training(digits, cache, capsys):
    model, first = _train(digits, epochs=2)
    assert len(_entries(cache)) == 1 and LOADED not in capsys.readouterr().out
    loaded_model, loaded = _train(digits, epochs=2)
    out = capsys.readouterr().out
    assert out.count(LOADED) == 1 and "cache=False" in out and str(cache) in out
    fresh_model, fresh = _train(digits, epochs=2, cache=False)
    assert LOADED not in capsys.readouterr().out
    assert loaded.equals(first) and loaded.equals(fresh)
    # The model the caller passed ends trained, as after a real training, in eval mode.
    for name, weight in fresh_model.state_dict().items():
        assert torch.equal(loaded_model.state_dict()[name], weight), name
    assert not loaded_model.training
    again = labkit.evaluate(loaded_model, digits.to("cpu"), ["embed"])
    np.testing.assert_array_equal(again["embeddings"]["embed"], fresh.layer()[-1])


@pytest.mark.parametrize(
    "change",
    [
        "data",
        "label noise",
        "model layer",
        "initial weights",
        "epochs",
        "lr",
        "layers",
        "precision",
        "batch size",
    ],
)
def test_each_ingredient_changed_alone_trains_again(digits, cache, capsys, change):
    _train(digits)
    capsys.readouterr()
    data, options, seed, model_options = digits, {}, 0, None
    if change == "data":
        x = digits.x_train.clone()
        x[0, 0, 0, 0] += 1.0  # one pixel of one image
        data = replace(digits, x_train=x)
    elif change == "label noise":
        data = labkit.load_dataset("digits", label_noise=0.05)
    elif change == "model layer":
        model_options = {"embed_dim": 32}
    elif change == "initial weights":
        seed = 1
    elif change == "epochs":
        options = {"epochs": 2}
    elif change == "lr":
        options = {"lr": 2e-3}
    elif change == "layers":
        options = {"layers": "all"}
    elif change == "precision":
        usual = resolve_precision("auto", torch.device("cpu"))
        options = {"precision": "bf16" if usual == "fp32" else "fp32"}
    elif change == "batch size":
        options = {"batch_size": 64}
    _train(data, seed=seed, model_options=model_options, **options)
    assert LOADED not in capsys.readouterr().out
    assert len(_entries(cache)) == 2


def test_a_students_own_model_is_keyed_by_its_code_not_its_name(digits, cache, capsys):
    def model_class(scale: float):
        class Net(nn.Module):  # the same name, module and layers; another forward
            def __init__(self):
                super().__init__()
                self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
                self.head = nn.Linear(16, 10)

            def forward(self, x):
                return self.head(self.embed(x) * scale)

        return Net

    runs = []
    for scale in (1.0, 2.0, 2.0):
        torch.manual_seed(0)
        model = model_class(scale)()
        runs.append(labkit.train(model, digits, epochs=1, progress=False))
    out = capsys.readouterr().out
    # The constant 2.0 is part of the code: the third run is the second's, not the first's.
    assert out.count(LOADED) == 1 and len(_entries(cache)) == 2
    assert runs[2].equals(runs[1]) and not runs[1].equals(runs[0])


def test_cache_false_trains_and_keeps_nothing(digits, cache, capsys):
    _train(digits, cache=False)
    _train(digits, cache=False)
    assert LOADED not in capsys.readouterr().out and not cache.exists()


def test_a_truncated_entry_is_a_miss_with_a_warning(digits, cache, capsys):
    _, first = _train(digits)
    (entry,) = _entries(cache)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.warns(UserWarning, match="could not be read .* training again"):
        _, second = _train(digits)
    assert LOADED not in capsys.readouterr().out and second.equals(first)
    (entry,) = _entries(cache)  # trained again, and kept whole this time
    _, third = _train(digits)
    assert LOADED in capsys.readouterr().out and third.equals(first)


def test_the_oldest_entries_go_when_the_cache_grows_too_large(digits, cache):
    for epochs in (1, 2):
        _train(digits, epochs=epochs)
    old, new = sorted(_entries(cache), key=lambda p: p.stat().st_mtime)
    os.utime(old, (1, 1))  # long unused
    entry = runcache.load(new.stem)
    runcache.store(new.stem, entry, max_bytes=new.stat().st_size + 1)
    assert _entries(cache) == [new]
    assert store.clear() == 1 and _entries(cache) == []


RACE = textwrap.dedent(
    """
    import sys, labkit
    data = labkit.load_dataset("digits")
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    snaps = labkit.train(model, data, epochs=1, progress=False)
    snaps.save(sys.argv[1])
    """
)


def test_two_processes_training_one_key_leave_one_whole_entry(digits, cache, tmp_path):
    # The key counts torch's threads: the processes get this one's.
    threads = str(torch.get_num_threads())
    env = {**os.environ, store.CACHE_VAR: str(cache), "OMP_NUM_THREADS": threads}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path / f"run{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert len(_entries(cache)) == 1
    assert [p.name for p in cache.iterdir()] == [_entries(cache)[0].name]  # no temporary left
    one, two = (labkit.Snapshots.load(tmp_path / f"run{i}") for i in range(2))
    assert one.equals(two)
    _, here = _train(digits)  # this process finds their entry
    assert here.equals(one) and len(_entries(cache)) == 1


def test_the_command_line_loads_from_the_cache_and_no_cache_trains(cache, tmp_path):
    def run(*extra):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "labkit",
                "run",
                "--epochs",
                "1",
                "--no-progress",
                "--no-figures",
                *extra,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, store.CACHE_VAR: str(cache)},
            cwd=tmp_path,
            check=True,
        ).stdout

    assert LOADED not in run("--out", "a")
    assert LOADED in run("--out", "b")
    assert LOADED not in run("--out", "c", "--no-cache")
    loads = [labkit.Snapshots.load(tmp_path / name) for name in "abc"]
    assert loads[0].equals(loads[1]) and loads[1].equals(loads[2])


# -- projections ------------------------------------------------------------------------------


def _points(n=300, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(3, 8))
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, 8))).astype(np.float32)


def _kept(folder: Path) -> list[Path]:
    return sorted((folder / "projections").glob("*.npy"))


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_a_projection_is_computed_once_and_read_back_equal(cache, method):
    x = _points()
    first = labkit.reduce.project(x, method, seed=0)
    assert len(_kept(cache)) == 1
    again = labkit.reduce.project(x, method, seed=0)
    fresh = labkit.reduce.project(x, method, seed=0, cache=False)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(fresh, first)  # the same as computing it
    assert again.dtype == fresh.dtype == np.float64 and again.shape == (300, 2)
    assert len(_kept(cache)) == 1  # cache=False keeps nothing new


@pytest.mark.parametrize(
    "method,change",
    [
        ("tsne", {"x": _points(seed=1)}),
        ("umap", {"seed": 1}),  # t-SNE's default PCA start does not draw on the seed
        ("tsne", {"n_components": 3}),
        ("tsne", {"init": "previous"}),
        ("tsne", {"perplexity": 12.0}),
    ],
    ids=lambda c: next(iter(c)) if isinstance(c, dict) else c,
)
def test_each_input_of_a_projection_changed_alone_computes_it_again(cache, method, change):
    base = labkit.reduce.project(_points(), method, seed=0)
    options = dict(change)
    x = options.pop("x", _points())
    if options.get("init") == "previous":
        options["init"] = base[::-1].copy()
    changed = labkit.reduce.project(x, method, **{"seed": 0, **options})
    assert len(_kept(cache)) == 2
    assert changed.shape != base.shape or not np.array_equal(changed, base)


def test_a_damaged_projection_is_a_miss_with_a_warning(cache):
    first = labkit.reduce.project(_points(), "umap", seed=0)
    (entry,) = _kept(cache)
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="could not be read"):
        again = labkit.reduce.project(_points(), "umap", seed=0)
    np.testing.assert_array_equal(again, first)
    assert len(_kept(cache)) == 1 and entry.stat().st_size > 100  # computed and kept again


def test_a_trustworthiness_is_computed_once_and_read_back_equal(cache):
    """Scores are kept beside the projections, keyed by both sets of points and k."""
    from sklearn.manifold import trustworthiness as sklearns

    x = _points()
    xy = labkit.reduce.project(x, "pca")
    first = labkit.reduce.trustworthiness(x, xy)
    assert first == sklearns(x.astype(np.float64), xy, n_neighbors=10)
    assert len(_kept(cache)) == 1
    assert labkit.reduce.trustworthiness(x, xy) == first  # read back
    assert labkit.reduce.trustworthiness(x, xy, cache=False) == first
    assert len(_kept(cache)) == 1  # cache=False keeps nothing new
    for other in (
        labkit.reduce.trustworthiness(x, xy[::-1].copy()),  # another projection
        labkit.reduce.trustworthiness(_points(seed=1), xy),  # other points
        labkit.reduce.trustworthiness(x, xy, n_neighbors=5),
    ):
        assert other != first
    assert len(_kept(cache)) == 4


def test_umap_leaves_torchs_thread_count_as_it_was(cache):
    # umap-learn's fit sets the OpenMP runtime torch shares to every core; a training after
    # it would run on other threads (and so have another key) than one before it.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        labkit.reduce.project(_points(), "umap", seed=0, cache=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_clear_removes_the_projections_too(digits, cache):
    _train(digits)
    labkit.reduce.project(_points(), "tsne", seed=0)
    assert store.clear() == 2
    assert _entries(cache) == [] and _kept(cache) == []


def test_no_cache_on_the_command_line_keeps_no_layout_either(tmp_path, monkeypatch):
    """``run --no-cache --method umap`` neither reads nor writes the run cache: no run, and
    no projection (its help says it keeps nothing there)."""
    from tests.test_mistakes import labkit_cli

    cache = tmp_path / "cache"
    monkeypatch.setenv(store.CACHE_VAR, str(cache))
    args = ["run", "--epochs", "1", "--probe-size", "60", "--no-progress", "--method", "umap"]
    proc = labkit_cli(*args, "--no-cache", "--out", "a", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
    proc = labkit_cli(*args, "--out", "b", cwd=tmp_path)  # with the cache: it is used
    assert proc.returncode == 0, proc.stderr
    assert list((cache / "projections").glob("*.npy")) and list(cache.glob("*.npz"))


KEY_OF_A_RUN = """
import torch
import labkit
from labkit.training import runcache
data = labkit.load_dataset("digits", probe_size=60)
model = labkit.build_model("mlp", data.input_shape, data.n_classes, seed=0)
from labkit.training.settings import TrainSettings
settings = TrainSettings(epochs=1).resolved(
    layers=["hidden2"], batch_size=64, device=torch.device("cpu"), precision="fp32"
)
print(runcache.run_key(model, data, settings))
"""


def test_the_key_follows_the_training_code_not_the_rest_of_the_kit(tmp_path):
    """A class's cache survives a fixed typo in the explorer; a change to the loop trains
    again. Each key is computed by a fresh process on a copy of the kit."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "kit"
    shutil.copytree(Path(labkit.__file__).parent, copy / "labkit")

    def key() -> str:
        env = {**os.environ, "PYTHONPATH": str(copy)}
        out = subprocess.run(
            [sys.executable, "-c", KEY_OF_A_RUN],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()[-1]

    first = key()
    explorer = copy / "labkit" / "view" / "explorer.py"
    explorer.write_text(explorer.read_text() + "\n# a typo fixed in a message\n")
    assert key() == first
    analysis = copy / "labkit" / "analysis" / "workflows.py"
    analysis.write_text(analysis.read_text() + "\n# a measure changed\n")
    assert key() == first
    loop = copy / "labkit" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n# the loop changed\n")
    assert key() != first

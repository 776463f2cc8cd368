"""Ordinary mistakes, through the real command line and the API: one clear sentence, exit code
2 (130 for Ctrl-C), no traceback, and no run folder lost or mixed with another.

Run folders are compared byte for byte before and after each failed attempt.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labkit
from labkit import experiment
from labkit.errors import ConfigError, DivergedError, LabkitError, RunExistsError

QUICK = ["--epochs", "1", "--probe-size", "60", "--no-figures", "--no-progress"]


def labkit_cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NGROK_AUTHTOKEN"}
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def assert_one_sentence(proc: subprocess.CompletedProcess, *words: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished run folder that the failed attempts below must leave as it is."""
    root = tmp_path_factory.mktemp("runs")
    proc = labkit_cli("run", "--out", str(root / "digits"), *QUICK, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "digits"


# -- arguments, refused before any data is loaded ---------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--dataset", "blobs", "--model", "cnn"], ["'cnn' model needs images", "--model mlp"]),
    (["--lr", "0"], ["--lr", "finite number > 0"]),
    (["--lr", "nan"], ["--lr", "finite number > 0"]),
    (["--lr=-1e-3"], ["--lr", "finite number > 0"]),
    (["--seed", "-1"], ["--seed", "must be >= 0"]),
    (["--device", "foo"], ["--device", "auto, cpu, cuda"]),
    (["--batch-size", "1"], ["--batch-size must be at least 2", "BatchNorm"]),
    (["--epochs", "1.5"], ["--epochs", "must be a whole number, got 1.5"]),
    (["--csv", "x.csv"], ["--csv is for --dataset bbc"]),
    (["--topics", "A,B"], ["--topics is for --dataset wikipedia"]),
])
def test_bad_run_arguments_are_one_sentence(tmp_path, args, words):
    started = time.perf_counter()
    proc = labkit_cli("run", "--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert_one_sentence(proc, *words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()
    assert time.perf_counter() - started < 60  # refused up front, not after training


@pytest.mark.parametrize("port", ["0", "70000"])
def test_a_port_out_of_range_is_refused(tmp_path, port):
    proc = labkit_cli("tensorboard", str(tmp_path), "--port", port, cwd=tmp_path)
    assert_one_sentence(proc, "--port", "1..65535")


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("notes")
    proc = labkit_cli("run", "--out", str(tmp_path / "taken"), *QUICK, cwd=tmp_path)
    assert_one_sentence(proc, "is a file, not a folder", "--out")
    assert (tmp_path / "taken").read_text() == "notes"


def test_tunnel_without_a_token_is_refused_before_tensorboard_starts(earlier_run, tmp_path):
    port = labkit.serve.find_free_port(6470)
    proc = labkit_cli("tensorboard", str(earlier_run), "--tunnel", "--port", str(port),
                      cwd=tmp_path)
    assert_one_sentence(proc, "no ngrok token found", "NGROK_AUTHTOKEN")
    assert labkit.serve._port_free(port)  # nothing was started


# -- run folders are written as one unit ---------------------------------------------------------

def test_an_existing_run_is_refused_without_overwrite(earlier_run):
    before = contents(earlier_run)
    proc = labkit_cli("run", "--out", str(earlier_run), *QUICK, cwd=earlier_run.parent)
    assert_one_sentence(proc, "already holds a run", "--overwrite")
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def test_overwrite_replaces_the_run_whole(tmp_path):
    out = tmp_path / "run"
    assert labkit_cli("run", "--out", str(out), *QUICK, cwd=tmp_path).returncode == 0
    (out / "figures").mkdir()
    (out / "figures" / "old_grid.png").write_bytes(b"an old figure")
    (out / "tensorboard" / "projector" / "stale.bin").write_bytes(b"an old tensor")
    proc = labkit_cli("run", "--out", str(out), "--overwrite", "--seed", "1", *QUICK,
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (out / "figures").exists()  # --no-figures: none of the old run's left either
    assert not (out / "tensorboard" / "projector" / "stale.bin").exists()
    assert labkit.Snapshots.load(out).meta["seed"] == 1
    assert leftovers(tmp_path) == []


def test_divergence_stops_training_and_writes_nothing(earlier_run):
    before = contents(earlier_run)
    proc = labkit_cli("run", "--out", str(earlier_run), "--overwrite", "--lr", "1e6",
                      *QUICK, cwd=earlier_run.parent)
    assert_one_sentence(proc, "training diverged at epoch 1 (loss nan)", "lower learning rate",
                        "--lr")
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def test_ctrl_c_during_training_keeps_the_earlier_run(earlier_run):
    before = contents(earlier_run)
    env = {k: v for k, v in os.environ.items() if k != "NGROK_AUTHTOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "run", "--out", str(earlier_run), "--overwrite",
         "--epochs", "200", "--no-figures"], cwd=earlier_run.parent, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The progress bar on stderr shows when training is under way.
    deadline = time.time() + 120
    seen = ""
    while "epoch" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: nothing was written" in err
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def _fail_in(monkeypatch, target: str, error: BaseException):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(experiment, target, fail)


@pytest.mark.parametrize("target, error", [
    ("write_mantis_csv", KeyboardInterrupt()),  # Ctrl-C while the run folder is written
    ("write_projector", OSError(28, "No space left on device", "tensorboard/x.bin")),
])
def test_a_failure_while_writing_keeps_the_earlier_run(earlier_run, monkeypatch, target, error):
    before = contents(earlier_run)
    _fail_in(monkeypatch, target, error)
    with pytest.raises(type(error)):
        experiment.run("digits", epochs=1, probe_size=60, out=earlier_run, overwrite=True,
                       figures=False, progress=False)
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def test_disk_full_on_the_command_line_names_the_file(tmp_path):
    code = ("import sys; from labkit import experiment, cli\n"
            "def full(*a, **k):\n"
            "    raise OSError(28, 'No space left on device', 'runs/x/mantis.csv')\n"
            "experiment.write_mantis_csv = full\n"
            f"sys.exit(cli.main(['run', '--out', {str(tmp_path / 'x')!r}, *{QUICK!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert_one_sentence(proc, "No space left on device", "runs/x/mantis.csv")
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


# -- the same checks in the Python API -----------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    data = labkit.load_dataset("digits", probe_size=60)
    return data, labkit.build_model("cnn", data.input_shape, data.n_classes)


@pytest.mark.parametrize("kwargs, words", [
    ({"epochs": 1.5}, "epochs must be a whole number >= 0, got 1.5"),
    ({"epochs": -1}, "epochs must be a whole number >= 0, got -1"),
    ({"batch_size": 0}, "batch size must be a whole number >= 2"),
    ({"batch_size": 1}, "BatchNorm"),
    ({"lr": 0.0}, "learning rate must be a finite number > 0, got 0.0"),
    ({"lr": math.inf}, "learning rate must be a finite number > 0, got inf"),
    ({"seed": -3}, "seed must be a whole number >= 0, got -3"),
    ({"device": "foo"}, "unknown device 'foo'"),
])
def test_train_refuses_bad_arguments(small, kwargs, words):
    data, model = small
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(".", r"\.")) as info:
        labkit.train(model, data, progress=False, **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LabkitError)


def test_train_refuses_more_classes_than_the_head_has(small):
    data, _ = small
    model = labkit.build_model("cnn", data.input_shape, 5)
    with pytest.raises(ConfigError, match="the data has 10 classes but the model's head has 5"):
        labkit.train(model, data, progress=False)


def test_train_stops_on_divergence(small):
    data, _ = small
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    with pytest.raises(DivergedError, match=r"training diverged at epoch 1 \(loss nan\)"):
        labkit.train(model, data, epochs=3, lr=1e6, progress=False)


def test_run_refuses_an_existing_folder_in_python(earlier_run):
    with pytest.raises(RunExistsError, match="overwrite=True") as info:
        experiment.run("digits", epochs=1, out=earlier_run, progress=False)
    assert isinstance(info.value, FileExistsError)


def test_errors_show_as_one_line_in_jupyter():
    err = ConfigError("the learning rate must be a finite number > 0, got 0")
    assert err._render_traceback_() == [
        "ConfigError: the learning rate must be a finite number > 0, got 0"]


# -- BBC-style CSVs with other column names -----------------------------------------------------

def test_other_csv_columns_are_named_with_flags(tmp_path):
    from .mediawiki import write_news_csv

    rows = write_news_csv(tmp_path / "std.csv", per_section=30)
    with open(tmp_path / "news.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["section", "body"])
        writer.writerows(rows)
    proc = labkit_cli("run", "--dataset", "bbc", "--csv", str(tmp_path / "news.csv"),
                      "--out", str(tmp_path / "bbc"), *QUICK, cwd=tmp_path)
    assert_one_sentence(proc, "has no column 'text', 'category'", "--text-column NAME",
                        "--label-column NAME")
    proc = labkit_cli("run", "--dataset", "bbc", "--csv", str(tmp_path / "news.csv"),
                      "--text-column", "body", "--label-column", "section",
                      "--out", str(tmp_path / "bbc"), *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(labkit.Snapshots.load(tmp_path / "bbc").class_names) == sorted(
        {section for section, _ in rows})


# -- small probe sets ----------------------------------------------------------------------------

def test_a_tiny_probe_set_reports_missing_metrics_and_still_draws(tmp_path):
    import json

    proc = labkit_cli("run", "--out", str(tmp_path / "tiny"), "--probe-size", "5", "--epochs",
                      "1", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("warning: 5 probe points in 5 classes are too few for knn_acc, linear_probe_acc, "
            "nc1, silhouette: reported as missing") in proc.stderr
    geometry = json.loads((tmp_path / "tiny" / "summary.json").read_text())["geometry"]
    assert all(row["silhouette"] is None and row["nc1"] is None for row in geometry)
    assert all(row["nc2_mean_cosine"] is not None for row in geometry)  # what can be, is
    for name in ("epoch_grid.png", "metric_curves.png", "epochs.gif"):
        assert (tmp_path / "tiny" / "figures" / name).stat().st_size > 1000


def test_a_probe_larger_than_the_test_split_says_what_it_became(tmp_path):
    proc = labkit_cli("run", "--out", str(tmp_path / "big"), "--probe-size", "5000", *QUICK[:2],
                      "--no-figures", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("warning: probe size 5000 is more than the 450 test samples of digits: the probe "
            "set is all 450 of them") in proc.stderr
    assert labkit.Snapshots.load(tmp_path / "big").n_probe == 450

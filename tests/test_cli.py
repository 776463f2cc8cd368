"""The one-command run: `python -m labkit run` on digits, as a student would type it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import labkit


@pytest.mark.slow
def test_run_on_digits_is_accurate_and_round_trips(tmp_path):
    out = tmp_path / "runs" / "digits"
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", "--dataset", "digits", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 10 and len(summary["history"]) == 11
    assert summary["final"]["test_acc"] >= 0.90, summary["final"]

    snaps = labkit.Snapshots.load(out)
    assert snaps.epochs == 10 and snaps.layer().shape == (11, 450, 64)
    assert snaps.history == summary["history"]
    assert snaps.meta["dataset"] == "digits" and snaps.meta["model"] == "cnn"
    # The viewers' files: the Mantis CSV and the projector logs of every epoch.
    table = labkit.read_mantis_csv(out / "mantis.csv")
    assert table.embeddings.shape == (11, 450, 64) and table.titles == snaps.titles
    config = (out / "tensorboard" / "projector_config.pbtxt").read_text()
    assert config.count("tensor_name:") == 11 and "sprite" in config
    # Figures and geometry metrics.
    for name in (
        "epoch_grid.png",
        "metric_curves.png",
        "cka_epochs.png",
        "epochs.gif",
        "epochs.html",
    ):
        assert (out / "figures" / name).stat().st_size > 10_000, name
    geo = summary["geometry"]
    assert [row["epoch"] for row in geo] == list(range(11))
    assert geo[-1]["nc1"] < geo[0]["nc1"] and geo[-1]["silhouette"] > geo[0]["silhouette"]
    # It tells the student where things are and what to do next.
    assert str(out) in proc.stdout and "Next:" in proc.stdout
    assert f"python -m labkit tensorboard {out}" in proc.stdout
    assert "test accuracy" in proc.stdout


def test_bad_arguments_are_refused_by_the_parser(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", "--epochs", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "must be >= 0" in proc.stderr

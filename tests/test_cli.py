"""The one-command run: `python -m labkit run` on digits, as a student would type it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
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


# (flags, the same mistake as run()'s keywords): each rule is the library's, said once.
SAME_MISTAKES = [
    (["--epochs", "-1"], {"epochs": -1}),
    (["--lr", "-1"], {"lr": -1.0}),
    (["--lr", "inf"], {"lr": float("inf")}),
    (["--lr", "1e39"], {"lr": 1e39}),
    (["--seed", "-3"], {"seed": -3}),
    (["--seed", str(2**32)], {"seed": 2**32}),
    (["--batch-size", "0"], {"batch_size": 0}),
    (["--batch-size", "1"], {"batch_size": 1}),  # the CNN has BatchNorm
    (["--device", "tpu"], {"device": "tpu"}),
    (["--probe-size", "0"], {"probe_size": 0}),
    (["--label-noise", "1.5"], {"label_noise": 1.5}),
    (["--model", "cnn", "--dataset", "bbc"], {"model": "cnn", "dataset": "bbc"}),
]


@pytest.mark.parametrize(("flags", "keywords"), SAME_MISTAKES, ids=lambda v: str(v))
def test_the_command_line_and_the_library_refuse_alike_before_any_data_is_read(
    tmp_path, capsys, flags, keywords
):
    """The command line judges no value itself: it builds the library's settings record, so
    both say the same sentence, and they say it before a data set is read or downloaded
    (MNIST from an empty folder, offline, would be another sentence)."""
    from labkit import cli, experiment

    data = tmp_path / "data"
    data.mkdir()
    args = {"dataset": "mnist", **keywords}
    with pytest.raises(labkit.LabkitError) as refused:
        experiment.run(args.pop("dataset"), data_dir=data, out=tmp_path / "r", **args)
    flags = flags if "--dataset" in flags else [*flags, "--dataset", "mnist"]
    code = cli.main(["run", *flags, "--data-dir", str(data), "--out", str(tmp_path / "r")])
    said = capsys.readouterr().err
    assert code == 2
    assert said == f"error: {refused.value}\n"
    assert list(data.iterdir()) == [] and not (tmp_path / "r").exists()


def test_the_training_settings_refuse_what_train_refuses_with_the_same_sentence(digits):
    from labkit.training.settings import TrainSettings

    model = labkit.build_model("mlp", digits.input_shape, digits.n_classes)
    for bad in (
        {"lr": 0},
        {"epochs": 1.5},
        {"weight_decay": -1},
        {"eval_batch_size": 0},
        {"precision": "fp8"},
        {"layers": [1, 2]},
        {"cache": "yes"},
    ):
        with pytest.raises(labkit.ConfigError) as direct:
            TrainSettings(**bad)
        with pytest.raises(labkit.ConfigError) as through_train:
            labkit.train(model, digits, **bad, progress=False)
        assert str(direct.value) == str(through_train.value)
    # Valid values come back as Python's own numbers, layers as a tuple.
    settings = TrainSettings(epochs=np.int64(3), lr=np.float32(0.5), layers=["hidden1"])
    assert (type(settings.epochs), type(settings.lr), settings.layers) == (int, float, ("hidden1",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0


def test_a_bad_port_is_the_librarys_sentence(tmp_path, capsys):
    from labkit import cli

    assert cli.main(["tensorboard", str(tmp_path), "--port", "70000"]) == 2
    assert capsys.readouterr().err == (
        "error: --port must be a whole number (an int) in 1..65535, got 70000\n"
    )

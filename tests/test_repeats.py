"""labkit.repeat: a measurement over seeds, its spread, and a paired difference."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import labkit


def test_repeat_keeps_one_row_per_seed_and_summarises_each_column():
    got = labkit.repeat(lambda s: {"a": s * 2.0, "b": 10 - s}, seeds=[0, 1, 2, 3], progress=False)
    assert list(got.runs.index) == [0, 1, 2, 3] and got.runs.index.name == "seed"
    assert got.runs["a"].tolist() == [0.0, 2.0, 4.0, 6.0]
    summary = got.summary
    assert summary.loc["a", "mean"] == 3.0
    assert summary.loc["a", "std"] == pytest.approx(np.std([0, 2, 4, 6], ddof=1))
    assert (summary.loc["b", "min"], summary.loc["b", "max"], summary.loc["b", "seeds"]) == (
        7.0,
        10.0,
        4,
    )
    assert "a: 3 ± 2.6" in repr(got) and "<table" in got._repr_html_()


def test_a_paired_difference_is_tighter_than_either_arm_when_both_move_with_the_seed():
    rng = np.random.default_rng(0)
    shift = {s: rng.normal(0, 5) for s in range(8)}  # what the seed does to both arms
    got = labkit.repeat(
        lambda s: {"mined": 90 + shift[s] + 2 + 0.1 * (s % 2), "random": 90 + shift[s]},
        seeds=range(8),
        progress=False,
    )
    diff = got.paired("mined", "random")
    assert diff["mean"] == pytest.approx(2.05)
    assert diff["std"] < 0.1 < got.summary.loc["random", "std"]
    assert diff["seeds above"] == 8 and diff["seeds"] == 8
    with pytest.raises(labkit.ConfigError, match=re.escape("no column 'other'")):
        got.paired("mined", "other")


def test_a_number_or_a_series_is_one_column():
    assert labkit.repeat(lambda s: s + 0.5, seeds=[1, 2], progress=False).runs[
        "value"
    ].tolist() == [1.5, 2.5]
    got = labkit.repeat(lambda s: pd.Series({"x": s}), seeds=[3], progress=False)
    assert got.runs.loc[3, "x"] == 3.0 and np.isnan(got.summary.loc["x", "std"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"measure": lambda s: 1.0, "seeds": []}, "at least one seed"),
        ({"measure": lambda s: 1.0, "seeds": [1, 1]}, "repeat one"),
        ({"measure": lambda s: 1.0, "seeds": [-1]}, "seed must be a whole number"),
        ({"measure": lambda s: 1.0, "seeds": [0.5]}, "seed must be a whole number"),
        ({"measure": lambda s: "high", "seeds": [0]}, "returned 'value': 'high', not a number"),
        ({"measure": lambda s: {"ok": True}, "seeds": [0]}, "not a number"),
        ({"measure": lambda s: {}, "seeds": [0]}, "returned nothing to keep"),
        (
            {"measure": lambda s: {"a": 1} if s == 0 else {"b": 1}, "seeds": [0, 1]},
            "return the same names for every seed",
        ),
        ({"measure": lambda s: float("nan"), "seeds": [0]}, "not finite"),
    ],
    ids=["none", "twice", "negative", "fraction", "text", "bool", "empty", "names", "nan"],
)
def test_repeat_refuses_what_it_cannot_summarise_in_one_sentence(kwargs, message):
    with pytest.raises(labkit.ConfigError, match=re.escape(message)):
        labkit.repeat(kwargs["measure"], seeds=kwargs["seeds"], progress=False)


def test_runs_loaded_from_the_cache_inside_a_repeat_are_reported_once(
    digits, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(labkit.store.CACHE_VAR, str(tmp_path / "cache"))

    def measure(seed):
        model = labkit.build_model("mlp", digits.input_shape, digits.n_classes, seed=seed)
        return labkit.train(model, digits, epochs=1, seed=seed, progress=False).history[-1][
            "test_acc"
        ]

    first = labkit.repeat(measure, seeds=[0, 1], progress=False)
    assert "loaded" not in capsys.readouterr().out  # trained, nothing to report
    again = labkit.repeat(measure, seeds=[0, 1], progress=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "2 of the trainings were loaded from the run cache" in out
    assert again.runs.equals(first.runs)
    # Outside a repeat, each loaded run is announced as before.
    measure(0)
    assert capsys.readouterr().out.startswith("loaded the run trained on")

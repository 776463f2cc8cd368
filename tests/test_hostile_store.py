"""What the kit keeps and exports, against careless and hostile input: saves that fail over an
earlier save, damaged saves and run-cache entries, snapshots made by hand that do not fit, and
exported titles that a spreadsheet would run as formulas.

Everything goes through real files: saves on disk edited byte by byte, run-cache entries
stored by the real ``labkit.train`` and rewritten, CSV and TSV files read back as a
spreadsheet or the projector reads them.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit
from labkit import store
from labkit.errors import ConfigError
from labkit.export.projector import write_projector
from labkit.snapshots import SnapshotsError

from .test_mistakes import contents

LOADED = "loaded the run trained on"


@pytest.fixture(scope="module")
def data():
    return labkit.load_dataset("digits", probe_size=60)


def _train(data, **options):
    model = labkit.build_model("mlp", data.input_shape, data.n_classes, seed=0)
    return model, labkit.train(model, data, epochs=1, progress=False, **options)


@pytest.fixture(scope="module")
def reference(data):
    """A fresh training, never cached: what every run of these settings must give."""
    return _train(data, cache=False)


@pytest.fixture
def run(reference):
    return copy.deepcopy(reference[1])


# -- 5. a failed save keeps the earlier save ---------------------------------------------------


def _set(field, key, value):
    return lambda snaps: getattr(snaps, field).__setitem__(key, value)


@pytest.mark.parametrize(
    "spoil, words",
    [
        (
            _set("meta", "when", datetime.datetime(2026, 12, 4, 17, 20)),
            "meta['when'] is a datetime, which JSON cannot hold; give a str",
        ),
        (
            _set("titles", 3, "caf\udce9"),
            "titles[3] holds '\\udce9' at position 3, a lone surrogate that cannot be "
            "encoded as UTF-8",
        ),
        (_set("meta", "scores", np.zeros(3)), "meta['scores'] is an array, which JSON cannot"),
        (
            lambda snaps: snaps.history[1].__setitem__("note", {"a"}),
            "history[1]['note'] is a set, which JSON cannot hold",
        ),
        (_set("class_names", 0, "caf\ud800"), "class_names[0] holds '\\ud800'"),
        (
            lambda snaps: setattr(snaps, "labels", snaps.labels + 100),
            "labels[0] is 10",
        ),
    ],
    ids=["datetime", "surrogate title", "array", "set", "surrogate class", "labels"],
)
def test_a_failed_save_leaves_the_earlier_save_byte_for_byte(run, tmp_path, spoil, words):
    folder = tmp_path / "saved"
    run.save(folder)
    (folder / "notes.txt").write_text("a file of the user's own")
    earlier, before = copy.deepcopy(run), contents(tmp_path)
    spoil(run)
    with pytest.raises(ConfigError) as refused:
        run.save(folder)
    message = str(refused.value)
    assert words in message and "\n" not in message, message
    assert contents(tmp_path) == before  # both files as they were, nothing left beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    assert labkit.Snapshots.load(folder).equals(earlier)
    # Saved again once fixed: both files replaced, the user's own file kept.
    earlier.meta["note"] = "second"
    earlier.save(folder)
    assert labkit.Snapshots.load(folder).equals(earlier)
    assert (folder / "notes.txt").read_text() == "a file of the user's own"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


# -- 9. a damaged save is one sentence naming the file and the field ---------------------------


def _meta(edit):
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        edit(meta)
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")

    return damage


def _arrays(edit):
    def damage(folder: Path) -> None:
        with np.load(folder / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
        edit(arrays)
        with open(folder / "arrays.npz", "wb") as f:
            np.savez(f, **arrays)

    return damage


def _emb(arrays):
    return next(k for k in arrays if k.startswith("emb/"))


DAMAGED = {
    "no titles": (_meta(lambda m: m.pop("titles")), "meta.json", "(it has no titles)"),
    "no class names": (
        _meta(lambda m: m.pop("class_names")),
        "meta.json",
        "(it has no class_names)",
    ),
    "a title with a lone surrogate": (
        _meta(lambda m: m["titles"].__setitem__(2, "caf\udce9")),
        "meta.json",
        "titles[2] holds '\\udce9' at position 3, a lone surrogate that cannot be encoded",
    ),
    "titles a str": (
        _meta(lambda m: m.update(titles="abc")),
        "meta.json",
        "titles should be a list of str, got a str",
    ),
    "a title short": (
        _meta(lambda m: m["titles"].pop()),
        "meta.json",
        "titles has 59 entries for 60 probe samples",
    ),
    "a class name a number": (
        _meta(lambda m: m["class_names"].__setitem__(2, 2)),
        "meta.json",
        "class_names[2] is an int, not a str",
    ),
    "a history row a list": (
        _meta(lambda m: m["history"].__setitem__(1, [1])),
        "meta.json",
        "history[1] is a list, not a dict",
    ),
    "a history row of another epoch": (
        _meta(lambda m: m["history"][1].update(epoch=5)),
        "meta.json",
        "history[1]['epoch'] is 5, not 1",
    ),
    "an accuracy a word": (
        _meta(lambda m: m["history"][1].update(test_acc="high")),
        "meta.json",
        "history[1]['test_acc'] is 'high', not a number",
    ),
    "an epochs count not matching": (
        _meta(lambda m: m["meta"].update(epochs=3)),
        "meta.json",
        "meta['epochs'] is 3, but there are 2 snapshots",
    ),
    "meta null": (_meta(lambda m: m.update(meta=None)), "meta.json", "meta should be a dict"),
    "a penultimate layer not captured": (
        _meta(lambda m: m["meta"].update(penultimate="conv9")),
        "meta.json",
        "meta['penultimate'] is 'conv9', not a captured layer",
    ),
    "snippets short": (
        _meta(lambda m: m.update(snippets=["a"])),
        "meta.json",
        "snippets has 1 entries for 60 probe samples",
    ),
    "a format version in words": (
        _meta(lambda m: m.update(format_version="one")),
        "meta.json",
        "format_version is 'one', not a whole number",
    ),
    "a label out of range": (
        _arrays(lambda a: a["labels"].__setitem__(0, 10)),
        "arrays.npz",
        "labels[0] is 10, not one of the 10 classes (0..9) of class_names",
    ),
    "a negative prediction": (
        _arrays(lambda a: a["predictions"].__setitem__((1, 5), -1)),
        "arrays.npz",
        "predictions[1, 5] is -1, not one of the 10 classes",
    ),
    "labels as floats": (
        _arrays(lambda a: a.update(labels=a["labels"].astype(np.float64))),
        "arrays.npz",
        "labels should be whole numbers [n_probe], got float64 values",
    ),
    "probabilities of another probe": (
        _arrays(lambda a: a.update(probabilities=a["probabilities"][:, :50])),
        "arrays.npz",
        "probabilities should be numbers [epochs + 1 = 2, 60, 10 classes], got shape [2, 50, 10]",
    ),
    "embeddings of another probe": (
        _arrays(lambda a: a.update({_emb(a): a[_emb(a)][:, :50]})),
        "arrays.npz",
        "should be numbers [epochs + 1 = 2, 60, dim], got shape [2, 50,",
    ),
    "head weights of one epoch": (
        _arrays(lambda a: a.update(head_weights=a["head_weights"][:1])),
        "arrays.npz",
        "head_weights should be numbers [epochs + 1 = 2, 10 classes, dim], got shape [1,",
    ),
    "flipped as numbers": (
        _arrays(lambda a: a.update(flipped=np.zeros(60))),
        "arrays.npz",
        "flipped should be booleans [60], got float64 values",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_save_is_one_sentence_naming_the_file_and_the_field(run, tmp_path, case):
    damage, name, words = DAMAGED[case]
    run.save(tmp_path / "run" / "snapshots")
    damage(tmp_path / "run" / "snapshots")
    with pytest.raises(SnapshotsError) as refused:
        labkit.Snapshots.load(tmp_path / "run")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'run' / 'snapshots' / name} is damaged ("), message
    assert words in message and "\n" not in message, message
    assert message.endswith("write it again (python -m labkit run --overwrite, or snaps.save)")


# -- Snapshots made by hand --------------------------------------------------------------------


def test_lists_where_arrays_belong_are_converted(run, tmp_path):
    made = labkit.Snapshots(
        embeddings={"x": run.layer().tolist()},
        labels=run.labels.tolist(),
        predictions=run.predictions.tolist(),
        probabilities=run.probabilities.tolist(),
        titles=tuple(run.titles),
        class_names=tuple(run.class_names),
        probe_index=run.probe_index.tolist(),
        flipped=[False] * run.n_probe,
    )
    assert made.labels.dtype == np.int64 and made.labels.shape == (60,)
    assert made.predictions.dtype == np.int64 and made.predictions.shape == (2, 60)
    assert made.probabilities.dtype == np.float32 and made.layer().dtype == np.float32
    assert made.probe_index.dtype == np.int64 and made.flipped.dtype == bool
    assert made.titles == run.titles and made.class_names == run.class_names
    np.testing.assert_array_equal(made.correct(-1), run.correct(-1))
    made.save(tmp_path / "made")
    assert labkit.Snapshots.load(tmp_path / "made").equals(made)


MISFITS = {
    "a label past the classes": (
        lambda s: {"labels": np.r_[10, s.labels[1:]]},
        "labels[0] is 10, not one of the 10 classes (0..9) of class_names",
    ),
    "a negative label": (lambda s: {"labels": np.r_[-1, s.labels[1:]]}, "labels[0] is -1"),
    "labels as floats": (
        lambda s: {"labels": s.labels.astype(float)},
        "labels should be whole numbers [n_probe], got float64 values",
    ),
    "predictions of fewer samples": (
        lambda s: {"predictions": s.predictions[:, :59]},
        "predictions should be whole numbers [epochs + 1, 60], got shape [2, 59]",
    ),
    "a prediction past the classes": (
        lambda s: {"predictions": s.predictions + 10},
        "predictions[0, 0] is",
    ),
    "probabilities of one epoch": (
        lambda s: {"probabilities": s.probabilities[:1]},
        "probabilities should be numbers [epochs + 1 = 2, 60, 10 classes], got shape [1, 60, 10]",
    ),
    "a title short": (lambda s: {"titles": s.titles[:-1]}, "titles has 59 entries for 60"),
    "a title a number": (lambda s: {"titles": [1, *s.titles[1:]]}, "titles[0] is an int"),
    "fewer class names than labels": (
        lambda s: {"class_names": s.class_names[:5]},
        "not one of the 5 classes (0..4) of class_names",
    ),
    "a class named twice": (
        lambda s: {"class_names": ["0", "0", *s.class_names[2:]]},
        "class_names holds '0' twice",
    ),
    "a short history": (
        lambda s: {"history": s.history[:1]},
        "a history of 1 epochs for 2 snapshots",
    ),
    "embeddings of fewer samples": (
        lambda s: {"embeddings": {"x": s.layer()[:, :59]}, "meta": {}},
        "embeddings['x'] should be numbers [epochs + 1 = 2, 60, dim], got shape [2, 59, 64]",
    ),
    "embeddings as text": (
        lambda s: {"embeddings": {"x": np.full((2, 60, 3), "a")}, "meta": {}},
        "embeddings['x'] should be numbers",
    ),
    "snippets short": (lambda s: {"snippets": ["x"]}, "snippets has 1 entries for 60"),
    "flipped short": (
        lambda s: {"flipped": np.zeros(59, bool)},
        "flipped should be booleans [60], got shape [59]",
    ),
    "thumbnails of fewer samples": (
        lambda s: {"thumbnails": np.zeros((59, 8, 8))},
        "thumbnails should be numbers [60, height, width], got shape [59, 8, 8]",
    ),
    "meta a list": (lambda s: {"meta": []}, "meta should be a dict, got a list"),
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_snapshots_made_by_hand_that_do_not_fit_are_one_sentence(run, case):
    change, words = MISFITS[case]
    with pytest.raises(ConfigError) as refused:
        dataclasses.replace(run, **change(run))
    message = str(refused.value)
    assert message.startswith("Snapshots: ") and words in message, message
    assert "\n" not in message


# -- 6. run-cache entries that read but do not fit ---------------------------------------------


@pytest.fixture(scope="module")
def stored(data, tmp_path_factory):
    """The key and the entry ``labkit.train`` stores for these settings, and an entry of
    the same settings on a probe of 50 points (another key)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(store.CACHE_VAR, str(folder))
        _train(data)
        (entry,) = folder.glob("*.npz")
        _train(labkit.load_dataset("digits", probe_size=50))
        (other,) = set(folder.glob("*.npz")) - {entry}
        return entry.stem, entry.read_bytes(), other.read_bytes()


def _entry(edit):
    def damage(path: Path, other: bytes) -> None:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        about = json.loads(bytes(arrays["about"]).decode("utf-8"))
        edit(arrays, about)
        arrays["about"] = np.frombuffer(json.dumps(about).encode("utf-8"), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    return damage


def _another_runs_entry(path: Path, other: bytes) -> None:
    path.write_bytes(other)


def _forge_weight(arrays: dict, about: dict) -> None:
    wider = np.zeros((*arrays["state_0"].shape, 2), arrays["state_0"].dtype)
    arrays["state_0"] = wider
    about["tensors"][0] = [wider.dtype.str, list(wider.shape)]


MISFIT_ENTRIES = {
    "a weight of the wrong shape": (
        _entry(lambda a, about: a.update(state_0=np.zeros((*a["state_0"].shape, 2), "f4"))),
        "the weights of",
    ),
    "embeddings for another probe size": (
        _entry(lambda a, about: a.update(embedding_0=a["embedding_0"][:, :50])),
        "got shape [2, 50, 64]",
    ),
    "another run's entry (a probe of 50)": (_another_runs_entry, "stored for another run"),
    "meta null": (_entry(lambda a, about: about.update(meta=None)), "meta should be a dict"),
    "a history shorter than the snapshots": (
        _entry(lambda a, about: about.update(history=about["history"][:1])),
        "a history of 1 epochs for 2 snapshots",
    ),
    # Forged: what the entry says of itself agrees with what it holds, but not with the run.
    "a weight forged with its description": (
        _entry(_forge_weight),
        "the weight ",
    ),
    "a weight renamed": (
        _entry(lambda a, about: about["state"].__setitem__(0, "renamed.weight")),
        "its weights are not named as the model's are",
    ),
    "an unknown time of training": (
        _entry(lambda a, about: about.update(trained_at=1e300)),
        "trained at 1e+300",
    ),
}


@pytest.mark.parametrize("case", list(MISFIT_ENTRIES))
def test_a_cache_entry_that_does_not_fit_is_a_miss_removed_and_replaced(
    data, reference, stored, tmp_path, monkeypatch, capsys, case
):
    damage, words = MISFIT_ENTRIES[case]
    key, good, other = stored
    cache = tmp_path / "cache"
    monkeypatch.setenv(store.CACHE_VAR, str(cache))
    cache.mkdir()
    path = cache / f"{key}.npz"
    path.write_bytes(good)
    damage(path, other)
    damaged = path.read_bytes()

    with pytest.warns(UserWarning) as said:
        model, snaps = _train(data)
    (warning,) = [w for w in said if "cached run" in str(w.message)]
    text = str(warning.message)
    assert f"the cached run {path} does not fit its run (" in text and words in text, text
    assert text.endswith("; training again")
    assert LOADED not in capsys.readouterr().out  # trained, not loaded
    ref_model, ref_snaps = reference
    assert snaps.equals(ref_snaps)
    for name, weight in ref_model.state_dict().items():  # nothing half-loaded into the model
        assert torch.equal(model.state_dict()[name], weight), name
    # The misfit is gone and a good entry took its place: the next run loads it.
    assert [p.name for p in cache.iterdir()] == [path.name] and path.read_bytes() != damaged
    _, again = _train(data)
    assert LOADED in capsys.readouterr().out and again.equals(ref_snaps)
    snaps.save(tmp_path / "saved")  # and what the run gave saves and loads
    assert labkit.Snapshots.load(tmp_path / "saved").equals(ref_snaps)


# -- exports: formulas, a byte-order mark, wide embeddings ------------------------------------

FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x")']
PLAIN = ["-1.5", "+3", "a=b", "'quoted", "", "plain", "two\r\nline ends", "cr\ronly"]
QUOTED = ["'=already", "''+twice"]  # look like the writer's quote: one more is added


def _hand_made(titles, class_names=("=cmd|' /C calc'!A0", "cat"), dim=4, epochs=1):
    rng = np.random.default_rng(0)
    n = len(titles)
    labels = np.arange(n) % len(class_names)
    return labkit.Snapshots(
        embeddings={"embed": rng.standard_normal((epochs + 1, n, dim)).astype(np.float32)},
        labels=labels,
        predictions=np.tile(labels, (epochs + 1, 1)),
        probabilities=np.tile(
            np.eye(len(class_names), dtype=np.float32)[labels], (epochs + 1, 1, 1)
        ),
        titles=list(titles),
        class_names=list(class_names),
    )


def _cells(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_mantis_cells_that_a_spreadsheet_would_run_start_with_a_quote(tmp_path):
    titles = [*FORMULAS, *PLAIN, *QUOTED]
    snaps = _hand_made(titles)
    n = len(titles)
    path = labkit.write_mantis_csv(snaps, tmp_path / "m.csv", extra={"=note": ["@x"] * n})
    rows = _cells(path)
    assert rows[0][:5] == ["title", "categoric", "prediction", "correct", "'=note"]
    assert [r[0] for r in rows[1:]] == [f"'{t}" for t in FORMULAS] + PLAIN + [
        f"'{t}" for t in QUOTED
    ]
    assert {r[1] for r in rows[1:]} == {"'=cmd|' /C calc'!A0", "cat"}
    assert {r[4] for r in rows[1:]} == {"'@x"}
    back = labkit.read_mantis_csv(path)  # the reader removes exactly what the writer added
    assert back.titles == titles
    assert back.categories == snaps.label_names
    assert back.columns["=note"] == ["@x"] * n
    assert back.columns["prediction"] == snaps.label_names
    assert np.array_equal(back.embeddings, snaps.layer())


def test_a_mantis_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    snaps = _hand_made(["a", "b", "c"])
    path = labkit.write_mantis_csv(snaps, tmp_path / "m.csv")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's "CSV UTF-8"
    back = labkit.read_mantis_csv(path)
    assert back.titles == ["a", "b", "c"] and np.array_equal(back.embeddings, snaps.layer())


def test_a_20000_wide_embedding_is_read_back_exactly(tmp_path):
    snaps = _hand_made(["a", "b", "c"], dim=20_000)
    path = labkit.write_mantis_csv(snaps, tmp_path / "wide.csv")
    back = labkit.read_mantis_csv(path)
    assert back.embeddings.shape == (2, 3, 20_000)
    assert np.array_equal(back.embeddings.view(np.uint32), snaps.layer().view(np.uint32))
    assert csv.field_size_limit() == 131_072  # the module's limit is as it was


def test_projector_metadata_keeps_formulas_out_and_one_row_per_point(tmp_path):
    titles = [*FORMULAS, "tab\there", "new\nline", "-1.5", "a=b", "'=already"]
    snaps = _hand_made(titles)
    write_projector(snaps, tmp_path / "tb", scalars=False)
    text = (tmp_path / "tb" / "projector" / "01_embed" / "epoch_00.tsv").read_text("utf-8")
    lines = text.split("\n")[:-1]
    assert lines[0] == "label\ttitle\tprediction\tcorrect\tindex"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == len(titles) and all(len(r) == 5 for r in rows)
    # Tabs and line breaks became spaces (and a leading one went), then the quote.
    assert [r[1] for r in rows] == [
        "'=1+2",
        "'+SUM(A1)",
        "'-2+3",
        "'@SUM(A1)",
        "'=1",
        "'=1",
        '\'=HYPERLINK("http://x")',
        "tab here",
        "new line",
        "-1.5",
        "a=b",
        "''=already",
    ]
    assert {r[0] for r in rows} == {"'=cmd|' /C calc'!A0", "cat"}
    assert {r[2] for r in rows} == {"'=cmd|' /C calc'!A0", "cat"}
    assert not any(re.match(r"[=+\-@]", cell) for r in rows for cell in r if cell != "-1.5")


@pytest.mark.parametrize("export", ["mantis", "projector"])
def test_a_title_changed_after_construction_is_named_by_the_exports(run, tmp_path, export):
    run.titles[3] = "caf\udce9"  # changed in place, after construction checked it
    with pytest.raises(ConfigError, match=r"titles\[3\] holds '\\udce9'.*lone surrogate"):
        if export == "mantis":
            labkit.write_mantis_csv(run, tmp_path / "m.csv")
        else:
            labkit.write_projector(run, tmp_path / "tb")
    assert list(tmp_path.iterdir()) == []  # nothing written

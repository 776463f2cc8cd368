"""Mantis CSV: the format contract, exact round trips, and errors that point at the cell."""

from __future__ import annotations

import ast
import copy
import csv
import dataclasses
import json

import numpy as np
import pytest

import labkit
from labkit.export.mantis import MantisFormatError, read_mantis_csv, write_mantis_csv

ODD_TITLES = [
    "comma, inside",
    'say "hi"',
    "two\nlines",
    "tab\there",
    "ünïcödé ✓ 日本語",
    "",
    "=SUM(A1)",
    "trailing space ",
]


@pytest.fixture
def odd(digits_run):
    _, snaps = digits_run
    snaps = copy.deepcopy(snaps)
    for i, t in enumerate(ODD_TITLES):
        snaps.titles[i] = t
    return snaps


def test_header_rows_and_cells_follow_the_contract(odd, tmp_path):
    path = write_mantis_csv(odd, tmp_path / "m.csv")
    raw = path.read_bytes()
    assert raw.decode("utf-8")  # UTF-8
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["title", "categoric", "prediction", "correct"] + [
        f"embedding_epoch_{e}" for e in range(5)
    ]
    assert len(rows) == 1 + odd.n_probe
    # A cell a spreadsheet would run as a formula starts with a quote (OWASP's guidance).
    assert [r[0] for r in rows[1:9]] == [f"'{t}" if t == "=SUM(A1)" else t for t in ODD_TITLES]
    assert [r[1] for r in rows[1:]] == odd.label_names  # class names, not indices
    emb = odd.layer()
    for r, row in enumerate(rows[1:]):
        for e in range(5):
            cell = row[4 + e]
            a, b = json.loads(cell), ast.literal_eval(cell)
            assert a == b and len(a) == emb.shape[2]
        if r < 3:
            assert np.array_equal(np.float32(a), emb[4, r])
    assert raw.count(b"\r\n") >= 1 + odd.n_probe  # RFC 4180 line ends


def test_round_trip_is_exact(odd, tmp_path):
    write_mantis_csv(odd, tmp_path / "m.csv")
    table = read_mantis_csv(tmp_path / "m.csv")
    assert table.titles == odd.titles
    assert table.categories == odd.label_names
    assert table.embeddings.dtype == np.float32 and table.embeddings.shape == odd.layer().shape
    assert np.array_equal(table.embeddings.view(np.uint32), odd.layer().view(np.uint32))
    assert table.columns["prediction"] == [odd.class_names[p] for p in odd.predictions[-1]]


F32 = np.finfo(np.float32)
ADVERSARIAL = np.array(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        1 / 3,
        2.5,
        -7.0,
        9999995.0,
        0.099999994,
        1.5e-7,
        16777217.0,
        123456789.0,  # 7-digit roundings that fail
        1e-45,
        -1e-45,
        1.4e-45,
        1e-40,
        F32.tiny,
        -F32.tiny,  # subnormals and the smallest normal
        F32.max,
        -F32.max,
        F32.eps,
        1 + F32.eps,
        1e10,
        1e-10,
        65504.0,
        3.4e38,
        np.nextafter(np.float32(1), np.float32(2)),
        np.nextafter(np.float32(0.1), np.float32(1)),
    ],
    dtype=np.float32,
)


def test_every_float32_survives_exactly_adversarial_and_random(tmp_path, digits_run):
    _, snaps = digits_run
    snaps = copy.deepcopy(snaps)
    rng = np.random.default_rng(0)
    n, d = snaps.n_probe, len(ADVERSARIAL)
    # epoch 0: the adversarial values in every row; epoch 1: random bit patterns, every
    # finite float32 equally likely by its bits (a harder mix than any layer's output)
    bits = rng.integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32).view(np.float32)
    bits = np.where(np.isfinite(bits), bits, np.float32(1.0))
    emb = np.stack([np.tile(ADVERSARIAL, (n, 1)), bits]).astype(np.float32)
    snaps = dataclasses.replace(  # a two-epoch run holding these values as its layer
        snaps,
        embeddings={"x": emb},
        meta={**snaps.meta, "penultimate": "x", "epochs": 1},
        predictions=snaps.predictions[:2],
        probabilities=snaps.probabilities[:2],
        history=snaps.history[:2],
        head_weights=None if snaps.head_weights is None else snaps.head_weights[:2],
        head_bias=None if snaps.head_bias is None else snaps.head_bias[:2],
    )
    path = write_mantis_csv(snaps, tmp_path / "m.csv")
    back = read_mantis_csv(path).embeddings
    assert np.array_equal(back.view(np.uint32), emb.view(np.uint32))  # -0.0 stays -0.0
    # Each written number is what float(np.float32(x)) reads back, in its shortest form.
    with open(path, encoding="utf-8", newline="") as f:
        first = next(r for i, r in enumerate(csv.reader(f)) if i == 1)
    written = first[-2][1:-1].split(", ")
    assert [float(np.float32(w)) for w in written] == [float(v) for v in ADVERSARIAL]
    assert written[8:10] == ["9999995", "0.099999994"]
    assert written[1] == "-0.0" and written[13] == "1e-45"  # "-0" would read as the int 0
    for w, v in zip(written, ADVERSARIAL, strict=True):  # no shorter text reads back the same
        digits = len(w.split("e")[0].replace("-", "").replace(".", "").strip("0") or "0")
        assert digits <= 9 and (digits == 1 or np.float32(f"{v:.{digits - 2}e}") != v), w


def test_snippets_extra_columns_and_direct_projection(odd, tmp_path):
    odd.snippets = [f'snippet, {i}\n"quoted"' for i in range(odd.n_probe)]
    write_mantis_csv(
        odd, tmp_path / "m.csv", coordinates=2, extra={"split": ["test"] * odd.n_probe}
    )
    table = read_mantis_csv(tmp_path / "m.csv")
    assert table.columns["snippet"][3] == 'snippet, 3\n"quoted"'
    assert table.columns["split"][0] == "test"
    # coordinate1/2 are the PCA of the last epoch: they carry its largest variance, in order.
    last = odd.layer()[-1].astype(np.float64)
    centred = last - last.mean(0)
    s = np.linalg.svd(centred, compute_uv=False)
    var = (table.coordinates**2).sum(0)
    np.testing.assert_allclose(var, s[:2] ** 2, rtol=1e-5)
    # ... and they are the kit's own PCA, signs included: Mantis shows the figures' picture.
    np.testing.assert_array_equal(table.coordinates, labkit.reduce.project(last, "pca"))
    with open(tmp_path / "m.csv", encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    assert header[-2:] == ["coordinate1", "coordinate2"]
    write_mantis_csv(odd, tmp_path / "m3.csv", coordinates=3)
    assert read_mantis_csv(tmp_path / "m3.csv").coordinates.shape == (odd.n_probe, 3)
    # Your own layout (an aligned frame, say) goes in as it is, as layout=.
    mine = np.random.default_rng(0).normal(size=(odd.n_probe, 2))
    write_mantis_csv(odd, tmp_path / "own.csv", layout=mine)
    np.testing.assert_array_equal(read_mantis_csv(tmp_path / "own.csv").coordinates, mine)
    with pytest.raises(labkit.errors.ConfigError, match=r"shape \(\d+, 2\); give a layout"):
        write_mantis_csv(odd, tmp_path / "x.csv", coordinates=mine)
    with pytest.raises(labkit.errors.ConfigError, match="not both"):
        write_mantis_csv(odd, tmp_path / "x.csv", coordinates=2, layout=mine)


def test_malformed_cell_error_names_line_and_column(odd, tmp_path):
    path = write_mantis_csv(odd, tmp_path / "m.csv")
    lines = path.read_bytes().decode("utf-8").split("\r\n")  # records end in CRLF
    target = odd.titles[20]  # a plain title; an earlier one spans two physical lines
    i = next(k for k, line in enumerate(lines) if line.startswith(target + ","))
    cells = lines[i].split('"[')
    cells[2] = "oops, " + cells[2]  # the second embedding cell: embedding_epoch_1
    lines[i] = '"['.join(cells)
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    with pytest.raises(MantisFormatError) as info:
        read_mantis_csv(path)
    msg = str(info.value)
    # The line an editor shows: every \n counts, the one inside "two\nlines" too.
    physical = "\r\n".join(lines[:i]).count("\n") + 2
    assert physical == 23  # header, rows 0..19 (row 2 spans two lines), then row 20
    assert f"line {physical}," in msg and "column 6 (embedding_epoch_1)" in msg and "oops" in msg


def test_wrong_dimension_and_missing_columns_are_reported(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('title,categoric,embedding_epoch_0\na,x,"[1, 2]"\nb,y,"[1]"\n')
    with pytest.raises(
        MantisFormatError, match=r"line 3, column 3.*1 values, earlier cells have 2"
    ):
        read_mantis_csv(bad)
    bad.write_text("name,embedding_epoch_0\n")
    with pytest.raises(MantisFormatError, match="no 'title' column"):
        read_mantis_csv(bad)


def test_interrupted_write_keeps_the_previous_file(odd, tmp_path, monkeypatch):
    path = write_mantis_csv(odd, tmp_path / "m.csv")
    before = path.read_bytes()
    import labkit.export.mantis as mantis

    def boom(*a, **k):
        raise KeyboardInterrupt  # as if the student pressed stop mid-export

    monkeypatch.setattr(mantis, "format_cells", boom)
    with pytest.raises(KeyboardInterrupt):
        write_mantis_csv(odd, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]  # no temp file left behind


def test_nan_is_refused_with_a_reason(odd, tmp_path):
    odd.embeddings[odd.penultimate] = odd.layer().copy()
    odd.embeddings[odd.penultimate][2, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_mantis_csv(odd, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_labkit_exports_are_reachable_from_the_top(odd, tmp_path):
    labkit.write_mantis_csv(odd, tmp_path / "m.csv")
    assert labkit.read_mantis_csv(tmp_path / "m.csv").embeddings.shape[0] == 5


def test_float64_embeddings_are_float32_from_construction_and_come_back_as_held(
    digits_run, tmp_path
):
    """The contract: a Snapshots holds float32. float64 given to it is converted when it is
    made, so the CSV, the saved run and the object all hold the same numbers."""
    _, snaps = digits_run
    wide = np.random.default_rng(1).standard_normal((snaps.epochs + 1, snaps.n_probe, 5))
    made = dataclasses.replace(
        snaps,
        embeddings={"x": wide},
        probabilities=snaps.probabilities.astype(np.float64),
        meta={**snaps.meta, "penultimate": "x"},
    )
    assert made.layer().dtype == np.float32 and made.probabilities.dtype == np.float32
    np.testing.assert_array_equal(made.layer(), wide.astype(np.float32))
    assert not np.array_equal(made.layer(), wide)  # float64 had more digits: they are gone
    back = read_mantis_csv(write_mantis_csv(made, tmp_path / "m.csv")).embeddings
    assert back.dtype == np.float32 and np.array_equal(back, made.layer())
    made.save(tmp_path / "saved")
    assert np.array_equal(labkit.Snapshots.load(tmp_path / "saved").layer(), made.layer())

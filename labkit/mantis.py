"""The Mantis CSV: one row per probe sample, one column of embedding lists per epoch.

    title,categoric,snippet,prediction,correct,embedding_epoch_0,...,embedding_epoch_N
    test #3,7,,1,False,"[0.125, -1.5, 3.25]",...

UTF-8, RFC 4180 quoting (titles may hold commas, quotes and newlines). Every embedding cell is
a list that ``json.loads`` and ``ast.literal_eval`` both read. Values are written with
``precision`` significant digits: 7 (the default) keeps every float32 within 5e-7 relative,
9 keeps them bit for bit.

>>> write_mantis_csv(snaps, "runs/digits/mantis.csv")        # doctest: +SKIP
>>> table = read_mantis_csv("runs/digits/mantis.csv")        # doctest: +SKIP
>>> table.embeddings.shape                                   # doctest: +SKIP
(11, 450, 64)
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write
from .errors import LabkitError

__all__ = ["MantisTable", "MantisFormatError", "read_mantis_csv", "write_mantis_csv"]

_EMB = "embedding_epoch_"
_COORD = "coordinate"


class MantisFormatError(LabkitError):
    """A Mantis CSV that cannot be read; the message names the line and column."""


def _rounded(values: np.ndarray, digits: int) -> np.ndarray:
    """float64 values nearest to each input rounded to ``digits`` significant digits.

    ``repr`` of such a double is the short decimal (``0.1234567``), so formatting stays in C.
    """
    x = values.astype(np.float64)
    mag = np.abs(x)
    exp = np.zeros(x.shape, np.int32)
    nz = mag > 0
    exp[nz] = np.floor(np.log10(mag[nz])).astype(np.int32)
    shift = digits - 1 - exp
    # Divide by a power of ten rather than multiply by its inverse: 10**k is exact up to
    # k = 22, so the quotient is the double closest to the short decimal.
    pos = shift >= 0
    out = np.empty_like(x)
    out[pos] = np.rint(x[pos] * 10.0 ** shift[pos]) / 10.0 ** shift[pos]
    out[~pos] = np.rint(x[~pos] / 10.0 ** -shift[~pos]) * 10.0 ** -shift[~pos]
    return out


def _cells(emb: np.ndarray, digits: int) -> list[str]:
    """One ``[a, b, ...]`` string per row of a ``[n, d]`` array."""
    if not np.isfinite(emb).all():
        bad = np.argwhere(~np.isfinite(emb))[0]
        raise ValueError(f"embedding row {bad[0]} holds {emb[tuple(bad)]} (NaN or infinity), "
                         f"which a Mantis CSV cannot store; check the training for divergence")
    rows = _rounded(emb, digits).tolist() if digits < 17 else emb.astype(np.float64).tolist()
    return ["[" + ", ".join(map(repr, row)) + "]" for row in rows]


def _clean(text: str) -> str:
    # csv quotes newlines correctly, but a bare CR inside a cell trips some spreadsheet apps.
    return str(text).replace("\r\n", "\n").replace("\r", "\n")


def write_mantis_csv(snaps, path: str | Path, layer: str | None = None, precision: int = 7,
                     coordinates: np.ndarray | int | None = None,
                     extra: dict[str, list] | None = None) -> Path:
    """Write the Mantis CSV of ``layer`` (default: the penultimate) atomically.

    ``coordinates``: ``2`` or ``3`` adds ``coordinate1..k`` from a PCA of the last epoch
    (Mantis' direct projection); an ``[n, k]`` array adds those values instead. ``extra``
    adds columns after ``categoric``. ``precision`` is in significant digits (1-17).
    """
    if not 1 <= precision <= 17:
        raise ValueError(f"precision is in significant digits, 1 to 17; got {precision}")
    emb = snaps.layer(layer)
    n = emb.shape[1]
    columns: dict[str, list] = {"title": [_clean(t) for t in snaps.titles],
                                "categoric": snaps.label_names}
    if snaps.snippets:
        columns["snippet"] = [_clean(s) for s in snaps.snippets]
    columns["prediction"] = [snaps.class_names[i] for i in snaps.predictions[-1]]
    columns["correct"] = [bool(c) for c in snaps.correct(-1)]
    for name, values in (extra or {}).items():
        if name in columns or name.startswith((_EMB, _COORD)):
            raise ValueError(f"extra column {name!r} clashes with a column the format defines")
        if len(values) != n:
            raise ValueError(f"extra column {name!r} has {len(values)} values for {n} rows")
        columns[name] = [_clean(v) for v in values]

    coords = None
    if coordinates is not None:
        if isinstance(coordinates, (int, np.integer)):
            coords = _pca(emb[-1], int(coordinates))
        else:
            coords = np.asarray(coordinates, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] not in (2, 3):
            raise ValueError(f"coordinates must be 2 or 3 columns for {n} rows, "
                             f"got shape {coords.shape}")

    header = list(columns) + [f"{_EMB}{e}" for e in range(emb.shape[0])]
    if coords is not None:
        header += [f"{_COORD}{k + 1}" for k in range(coords.shape[1])]
    cells = [_cells(emb[e], precision) for e in range(emb.shape[0])]
    coord_cells = [] if coords is None else [
        [repr(v) for v in _rounded(coords[:, k], precision).tolist()]
        for k in range(coords.shape[1])]
    meta_rows = list(zip(*columns.values(), strict=True))

    with atomic_write(path, "w") as f:
        writer = csv.writer(f, lineterminator="\r\n")  # RFC 4180: CRLF, quote when needed
        writer.writerow(header)
        for i in range(n):
            writer.writerow([*meta_rows[i], *(c[i] for c in cells), *(c[i] for c in coord_cells)])
    return Path(path)


def _pca(x: np.ndarray, k: int) -> np.ndarray:
    centred = x.astype(np.float64) - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :k] * s[:k]


@dataclass
class MantisTable:
    """What :func:`read_mantis_csv` gives back."""

    titles: list[str]
    categories: list[str]
    embeddings: np.ndarray  # float32 [epochs + 1, n, dim]
    columns: dict[str, list[str]] = field(default_factory=dict)  # the other text columns
    coordinates: np.ndarray | None = None  # [n, 2 or 3]

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.categories))


def read_mantis_csv(path: str | Path) -> MantisTable:
    """Read a Mantis CSV back into arrays; a malformed cell is reported by line and column."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise MantisFormatError(f"{path} is empty") from None
    for needed in ("title", "categoric"):
        if needed not in header:
            raise MantisFormatError(f"{path}, line 1: no {needed!r} column (found: "
                                    f"{', '.join(header)})")
    emb_cols = [i for i, h in enumerate(header) if h.startswith(_EMB)]
    epochs = [int(header[i][len(_EMB):]) for i in emb_cols]
    if not emb_cols or epochs != list(range(len(emb_cols))):
        raise MantisFormatError(f"{path}, line 1: expected columns {_EMB}0 .. {_EMB}N in "
                                f"order, found {[header[i] for i in emb_cols]}")
    coord_cols = [i for i, h in enumerate(header) if h.startswith(_COORD)]
    text_cols = [i for i in range(len(header)) if i not in emb_cols and i not in coord_cols]

    rows, lines = [], []
    line = reader.line_num + 1
    for row in reader:
        if row:
            if len(row) != len(header):
                raise MantisFormatError(f"{path}, line {line}: {len(row)} cells, the header has "
                                        f"{len(header)}")
            rows.append(row)
            lines.append(line)
        line = reader.line_num + 1

    n, dim = len(rows), None
    emb = None
    for e, col in enumerate(emb_cols):
        for r, row in enumerate(rows):
            try:
                values = json.loads(row[col])
                if not isinstance(values, list) or not all(
                        isinstance(v, (int, float)) for v in values):
                    raise ValueError("not a list of numbers")
            except ValueError as err:
                cell = row[col] if len(row[col]) <= 40 else row[col][:37] + "..."
                raise MantisFormatError(
                    f"{path}, line {lines[r]}, column {col + 1} ({header[col]}): cannot read "
                    f"{cell!r} as a list of numbers ({err})") from None
            if dim is None:
                dim = len(values)
                emb = np.empty((len(emb_cols), n, dim), np.float32)
            if len(values) != dim:
                raise MantisFormatError(
                    f"{path}, line {lines[r]}, column {col + 1} ({header[col]}): "
                    f"{len(values)} values, earlier cells have {dim}")
            emb[e, r] = values
    coords = None
    if coord_cols:
        try:
            coords = np.array([[float(row[c]) for c in coord_cols] for row in rows])
        except ValueError as err:
            raise MantisFormatError(f"{path}: a coordinate cell is not a number ({err})") from None
    ti, ci = header.index("title"), header.index("categoric")
    return MantisTable(
        titles=[row[ti] for row in rows],
        categories=[row[ci] for row in rows],
        embeddings=emb if emb is not None else np.zeros((len(emb_cols), 0, 0), np.float32),
        columns={header[i]: [row[i] for row in rows] for i in text_cols
                 if header[i] not in ("title", "categoric")},
        coordinates=coords,
    )

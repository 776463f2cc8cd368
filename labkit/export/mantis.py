"""The Mantis CSV: one row per probe sample, one column of embedding lists per epoch.

    title,categoric,snippet,prediction,correct,embedding_epoch_0,...,embedding_epoch_N
    test #3,7,,1,False,"[0.125, -1.5, 3.25]",...

UTF-8, RFC 4180 quoting (titles may hold commas, quotes, tabs and line breaks, written as they
are). Every embedding cell is a list that ``json.loads`` and ``ast.literal_eval`` both read,
and every float32 is written as the shortest decimal that reads back as the same float32: the
round trip is exact, bit for bit, ``-0.0`` and subnormals included.

A text cell (title, class, snippet, extra column, column name) that a spreadsheet would take
for a formula, one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, is
written with a single quote before it, as OWASP's guidance on CSV injection has it
(:mod:`labkit.export.cells`; a plain number such as ``-1.5`` is left as it is).
:func:`read_mantis_csv` removes exactly the quotes the writer added, so title -> CSV -> title
is exact. It reads a file with a UTF-8 byte-order mark (Excel's "CSV UTF-8") and cells of any
length (a 20,000-wide embedding is a 300 kB cell, past the csv module's default limit).

>>> write_mantis_csv(snaps, "runs/digits/mantis.csv")        # doctest: +SKIP
>>> table = read_mantis_csv("runs/digits/mantis.csv")        # doctest: +SKIP
>>> table.embeddings.shape                                   # doctest: +SKIP
(11, 450, 64)

The numbers are formatted by Apache Arrow (``pyarrow.compute.cast`` of a float32 array to
strings, the shortest round-trip form, vectorised in C++), not by hand: faster than a
NumPy formatter and exact by construction.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._io import atomic_write
from ..analysis.reduce import SVDProjection
from ..errors import ConfigError, LabkitError
from .cells import quote_formula, unquote_formula

if TYPE_CHECKING:
    from ..snapshots import Snapshots

__all__ = [
    "MantisTable",
    "MantisFormatError",
    "format_cells",
    "read_mantis_csv",
    "write_mantis_csv",
]

_EMB = "embedding_epoch_"
_COORD = "coordinate"


class MantisFormatError(LabkitError, ValueError):
    """A Mantis CSV that cannot be read; the message names the line and column."""


def format_cells(x: np.ndarray) -> list[bytes]:
    """``[n, d]`` numbers as ``n`` cells ``[v, v, ...]``, each value the shortest text that
    reads back as the same number (float32 stays float32, float64 stays float64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    x = np.ascontiguousarray(x)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ConfigError(
            f"embedding value at {tuple(int(i) for i in bad)} is "
            f"{x[tuple(bad)]} (NaN or infinity), which a Mantis CSV cannot "
            f"store; check the training for divergence"
        )
    n, d = x.shape
    flat = x.reshape(-1)
    text = pc.cast(pa.array(flat), pa.string())
    negative_zero = (flat == 0) & np.signbit(flat)
    if negative_zero.any():  # Arrow writes "-0", which JSON reads as the integer 0
        text = pc.if_else(pa.array(negative_zero), "-0.0", text)
    rows = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * d + 1, d, dtype=np.int64).astype(np.int32)), text
    )
    cells = pc.binary_join(rows, ", ")
    cells = pc.binary_join_element_wise("[", cells, "]", "")
    return [c.encode("ascii") for c in cells.to_pylist()]


def _text_columns(snaps: Snapshots, extra: dict[str, list] | None, n: int) -> dict[str, list]:
    """The columns before the embeddings: title, label, snippet (text), the last epoch's
    prediction and whether it is right, then ``extra``."""
    columns: dict[str, list] = {
        "title": list(snaps.titles),
        "categoric": snaps.label_names,
    }
    if snaps.snippets:
        columns["snippet"] = list(snaps.snippets)
    columns["prediction"] = [snaps.class_names[i] for i in snaps.predictions[-1]]
    columns["correct"] = [bool(c) for c in snaps.correct(-1)]
    for name, values in (extra or {}).items():
        if name in columns or name.startswith((_EMB, _COORD)):
            raise ConfigError(f"extra column {name!r} clashes with a column the format defines")
        if len(values) != n:
            raise ConfigError(f"extra column {name!r} has {len(values)} values for {n} rows")
        columns[name] = [str(v) for v in values]
    return columns


def _coordinates(
    emb: np.ndarray, n: int, coordinates: int | None, layout: np.ndarray | None
) -> np.ndarray | None:
    """The ``coordinate1..k`` columns: the kit's PCA of the last epoch, the caller's layout,
    or none."""
    if coordinates is not None:
        if not isinstance(coordinates, (int, np.integer)) or coordinates not in (2, 3):
            shown = (
                f"an array of shape {np.shape(coordinates)}"
                if np.ndim(coordinates)
                else coordinates
            )
            raise ConfigError(
                f"coordinates is 2 or 3 (columns of the kit's PCA), got {shown}; "
                f"give a layout of your own as layout="
            )
        return SVDProjection(int(coordinates)).fit_transform(emb[-1])
    if layout is not None:
        coords = np.asarray(layout, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] not in (2, 3):
            raise ConfigError(
                f"layout must be 2 or 3 columns for {n} rows, got shape {coords.shape}"
            )
        return coords
    return None


def write_mantis_csv(
    snaps: Snapshots,
    path: str | Path,
    layer: str | None = None,
    *,
    coordinates: int | None = None,
    layout: np.ndarray | None = None,
    extra: dict[str, list] | None = None,
) -> Path:
    """Write the Mantis CSV of ``layer`` (default: the penultimate) atomically.

    ``coordinates=2`` (or ``3``) adds ``coordinate1..k``, the kit's PCA of the last epoch
    (Mantis' direct projection); ``layout=`` an ``[n, 2]`` or ``[n, 3]`` array of your own
    (e.g. the last frame of an aligned trajectory) adds those values instead. ``extra``
    adds columns after ``categoric``. Every value is written exactly.
    """
    if coordinates is not None and layout is not None:
        raise ConfigError("give coordinates=2 or 3 (the kit's PCA) or layout= (your own), not both")
    snaps = replace(snaps)  # construction's checks again: a title changed since is named
    emb = snaps.layer(layer)
    n = emb.shape[1]
    columns = _text_columns(snaps, extra, n)
    coords = _coordinates(emb, n, coordinates, layout)

    header = list(columns) + [f"{_EMB}{e}" for e in range(emb.shape[0])]
    if coords is not None:
        header += [f"{_COORD}{k + 1}" for k in range(coords.shape[1])]
    # Each epoch's cells, then each row's: epochs are the columns. Embedding cells hold no
    # quotes, so they are wrapped in "..." as they are; text columns go through csv.
    epochs = [format_cells(e) for e in emb]
    coord_cells = (
        []
        if coords is None
        else [[c[1:-1] for c in format_cells(coords[:, k : k + 1])] for k in range(coords.shape[1])]
    )
    meta_lines = _csv_lines(zip(*columns.values(), strict=True))

    with atomic_write(path, "wb") as f:
        f.write(next(_csv_lines([header])) + b"\r\n")
        for i, line in enumerate(meta_lines):
            cells = b'","'.join(cells[i] for cells in epochs)
            coord = b"".join(b"," + c[i] for c in coord_cells)
            f.write(line + b',"' + cells + b'"' + coord + b"\r\n")
    return Path(path)


def _csv_lines(rows) -> Iterator[bytes]:
    """Each row of text cells as one CSV line (RFC 4180 quoting, no line end), every cell
    quoted against formulas. One row at a time: a cell may hold line breaks of its own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([quote_formula(str(cell)) for cell in row])
        yield buffer.getvalue()[:-2].encode("utf-8")


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


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def read_mantis_csv(path: str | Path) -> MantisTable:
    """Read a Mantis CSV back into arrays; a malformed cell is reported by line and column."""
    path = Path(path)
    header, rows, lines = _read_rows(path)
    for needed in ("title", "categoric"):
        if needed not in header:
            raise MantisFormatError(
                f"{path}, line 1: no {needed!r} column (found: {', '.join(header)})"
            )
    emb_cols = [i for i, h in enumerate(header) if h.startswith(_EMB)]
    epochs = [header[i][len(_EMB) :] for i in emb_cols]
    if not emb_cols or epochs != [str(e) for e in range(len(emb_cols))]:
        raise MantisFormatError(
            f"{path}, line 1: expected columns {_EMB}0 .. {_EMB}N in "
            f"order, found {[header[i] for i in emb_cols]}"
        )
    coord_cols = [i for i, h in enumerate(header) if h.startswith(_COORD)]
    text_cols = [i for i in range(len(header)) if i not in emb_cols and i not in coord_cols]
    coords = None
    if coord_cols:
        try:
            coords = np.array([[float(row[c]) for c in coord_cols] for row in rows])
        except ValueError as err:
            raise MantisFormatError(f"{path}: a coordinate cell is not a number ({err})") from None
    ti, ci = header.index("title"), header.index("categoric")

    def text(i: int) -> list[str]:
        return [unquote_formula(row[i]) for row in rows]

    return MantisTable(
        titles=text(ti),
        categories=text(ci),
        embeddings=_read_embeddings(path, header, rows, lines, emb_cols),
        columns={header[i]: text(i) for i in text_cols if header[i] not in ("title", "categoric")},
        coordinates=coords,
    )


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the non-empty rows, and the line each row starts on (a quoted cell may
    span lines)."""
    raw = path.read_bytes()
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # the byte-order mark Excel puts before UTF-8
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise MantisFormatError(
            f"{path}, line {line}, column {column}: not UTF-8 (byte "
            f"{raw[err.start]:#04x}); a Mantis CSV is UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    with _cells_up_to(len(text)):
        try:
            header = [unquote_formula(name) for name in next(reader)]
        except StopIteration:
            raise MantisFormatError(f"{path} is empty") from None
        rows, lines = [], []
        line = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise MantisFormatError(
                        f"{path}, line {line}: {len(row)} cells, the header has {len(header)}"
                    )
                rows.append(row)
                lines.append(line)
            line = reader.line_num + 1
    return header, rows, lines


@contextlib.contextmanager
def _cells_up_to(size: int) -> Iterator[None]:
    """The csv module's limit on a cell's length (131,072 characters, a 10,000-wide
    embedding) raised to ``size`` while a file is read, and put back after: the limit is
    the module's, shared by every reader in the process."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, size))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_embeddings(
    path: Path, header: list[str], rows: list[list[str]], lines: list[int], emb_cols: list[int]
) -> np.ndarray:
    """The ``embedding_e`` cells as ``[epochs, n, dim]`` float32 (strict JSON number lists)."""
    emb, dim = None, None
    for e, col in enumerate(emb_cols):
        for r, row in enumerate(rows):
            where = f"{path}, line {lines[r]}, column {col + 1} ({header[col]})"
            try:
                # Strict JSON numbers: NaN and Infinity are not JSON, true/false not numbers.
                values = json.loads(row[col], parse_constant=_no_constant)
                if not isinstance(values, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                ):
                    raise ValueError("not a list of numbers")
            except ValueError as err:
                cell = row[col] if len(row[col]) <= 40 else row[col][:37] + "..."
                raise MantisFormatError(
                    f"{where}: cannot read {cell!r} as a list of numbers ({err})"
                ) from None
            if dim is None:
                dim = len(values)
                emb = np.empty((len(emb_cols), len(rows), dim), np.float32)
            if len(values) != dim:
                raise MantisFormatError(f"{where}: {len(values)} values, earlier cells have {dim}")
            emb[e, r] = values
    return emb if emb is not None else np.zeros((len(emb_cols), 0, 0), np.float32)

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

import concurrent.futures
import csv
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write
from .errors import ConfigError, LabkitError

__all__ = ["MantisTable", "MantisFormatError", "read_mantis_csv", "write_mantis_csv"]

_EMB = "embedding_epoch_"
_COORD = "coordinate"


class MantisFormatError(LabkitError, ValueError):
    """A Mantis CSV that cannot be read; the message names the line and column."""


def _layout(e: int, digits: int) -> list[tuple[int, int, int]]:
    """How a number with decimal exponent ``e`` is spelled, as ``(digit, char, threshold)``.

    ``digit`` >= 0 takes that mantissa digit, else the literal ``char``; a position is kept
    when the number's count of significant digits exceeds ``threshold`` (-1: always). Like
    ``%g``: fixed point for 1e-4 <= |x| < 10**digits, else scientific; trailing zeros go,
    but one digit always follows the point (``3.0``, ``1.5e-05``).
    """
    lit = [(-1, ord(c), -1) for c in "0123456789.e+-"]
    zero, point = lit[0], lit[10]
    out: list[tuple[int, int, int]] = []
    if 0 <= e < digits:
        out += [(k, 0, -1) for k in range(e + 1)] + [point]
        out += [(k, 0, -1 if k == e + 1 else k) for k in range(e + 1, digits)]
        if e == digits - 1:
            out.append(zero)
    elif -4 <= e < 0:
        out += [zero, point] + [zero] * (-e - 1)
        out += [(k, 0, -1 if k == 0 else k) for k in range(digits)]
    else:
        out += [(0, 0, -1), point] + [(k, 0, -1 if k == 1 else k) for k in range(1, digits)]
        if digits == 1:
            out.append(zero)  # 1.0e-05, never the invalid 1.e-05
        out += [lit[11], lit[13] if e < 0 else lit[12], lit[abs(e) // 10], lit[abs(e) % 10]]
    return out


_E_MIN, _E_MAX = -99, 99
_CHUNK = 4
# The 4 ASCII digits of 0000..9999, each packed in one uint32 so a look-up moves 4 bytes.
_CHUNK_TABLE = np.array([list(f"{i:04d}".encode()) for i in range(10**_CHUNK)],
                        np.uint8).view(np.uint32).ravel()
# Trailing zeros of each 4-digit chunk (0000 counts 4).
_CHUNK_TZ = np.array([4 if i == 0 else len(str(i)) - len(str(i).rstrip("0"))
                      for i in range(10**_CHUNK)], np.int8)


@functools.lru_cache(maxsize=32)
def _templates(digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per exponent: digit index or -1 and literal char per position; keep-masks per exponent
    and significant count, each padded to 16 bytes and packed as one item so a gather is
    cheap. Returns them and the real width."""
    real = max(digits, 2) + 5  # the widest spelling: 0.000ddddddd or d.dddddde-XX
    width = -(-real // 16) * 16
    n = _E_MAX - _E_MIN + 1
    src = np.full((n, width), -1, np.int8)
    char = np.zeros((n, width), np.uint8)
    thr = np.full((n, width), 127, np.int16)  # 127: never kept (padding)
    for row, e in enumerate(range(_E_MIN, _E_MAX + 1)):
        for j, (k, c, t) in enumerate(_layout(e, digits)):
            src[row, j], char[row, j], thr[row, j] = k, c, t
    keep = np.arange(digits + 1)[None, :, None] > thr[:, None, :]  # [exponent, sig, position]
    packed = np.ascontiguousarray(keep).view(f"V{width}").reshape(n * (digits + 1))
    return src[:, :real], char[:, :real], packed, real


def _digit_chars(m: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits of each ``digits``-digit integer ``[N, digits]``, and its trailing zeros."""
    chunks = -(-digits // _CHUNK)
    packed = np.empty((len(m), chunks), np.uint32)
    trailing, done = np.zeros(len(m), np.int16), np.zeros(len(m), bool)
    rest = m
    for c in range(chunks):  # least significant chunk first
        if c == chunks - 1:
            chunk = rest
        else:  # quotient by float division: exact for these sizes, and SIMD-fast
            high = np.floor(rest / 10.0**_CHUNK).astype(np.int64)
            chunk, rest = rest - high * 10**_CHUNK, high
        packed[:, chunks - 1 - c] = _CHUNK_TABLE[chunk]
        tz = _CHUNK_TZ[chunk]
        trailing += np.where(done, 0, tz)
        done |= tz < _CHUNK
    chars = packed.view(np.uint8).reshape(len(m), chunks * _CHUNK)[:, chunks * _CHUNK - digits:]
    return chars, np.minimum(trailing, digits - 1)


def _format_block(x: np.ndarray, digits: int, cell_len: int, row_len: int
                  ) -> tuple[bytes, np.ndarray]:
    """Text of a flat float array: rows of ``row_len`` values in cells of ``cell_len``.

    Inside a cell values are joined by ``, ``, cells by ``]","[``, so a row of all epochs
    of one sample becomes ``v, v]","[v, v`` (the writer adds the outer ``"[`` and ``]"``).
    Returns the bytes and each row's end offset. Every value's decimal mantissa and exponent
    come from array arithmetic, its characters from the template of its exponent, and a
    keep-mask drops trailing zeros and padding: about 10x faster than ``repr`` per value.
    """
    mag = np.abs(x.astype(np.float64))
    nonzero = mag > 0
    e = np.zeros(len(x), np.int64)
    # float32 log10 is fast and at worst one off next to a power of ten: fixed below.
    e[nonzero] = np.floor(np.log10(mag[nonzero].astype(np.float32)))
    if (e > _E_MAX).any() or (e < _E_MIN).any():
        raise ValueError("a value's decimal exponent is beyond +-99; embeddings should be float32")
    pow10 = 10.0 ** np.arange(-_E_MIN + digits + 2, dtype=np.float64)  # exact up to 1e22

    def mantissa(e, mag):
        k = digits - 1 - e  # scale by 10**k; divide when k < 0 so the power stays exact
        if (k >= 0).all():
            return mag * pow10[k]
        return np.where(k >= 0, mag * pow10[np.abs(k)], mag / pow10[np.abs(k)])

    m = np.rint(mantissa(e, mag)).astype(np.int64)
    # log10 can land one off next to a power of ten, and rounding can carry (9.9999999 -> 10).
    for fix in (m >= 10**digits, nonzero & (m < 10 ** (digits - 1))):
        if fix.any():
            e[fix] += np.where(m[fix] >= 10**digits, 1, -1)
            m[fix] = np.rint(mantissa(e[fix], mag[fix])).astype(np.int64)
    digit_chars, trailing = _digit_chars(m, digits)
    sig = np.where(nonzero, digits - trailing, 1)

    src, char, keep_table, width = _templates(digits)
    row = (e - _E_MIN).astype(np.intp)
    # Columns: sign, the number's positions, then a separator of up to 5 characters.
    chars = np.empty((len(x), width + 6), np.uint8)
    keep = np.empty((len(x), width + 6), bool)
    chars[:, 0] = ord("-")
    keep[:, 0] = np.signbit(x)  # -0.0 keeps its sign, so it reads back as -0.0
    packed = keep_table[row * (digits + 1) + sig].view(bool).reshape(len(x), -1)
    keep[:, 1:width + 1] = packed[:, :width]
    for r in np.flatnonzero(np.bincount(row, minlength=len(src))):  # few distinct exponents
        idx = np.flatnonzero(row == r)
        take = src[r] >= 0
        block = np.empty((len(idx), width), np.uint8)
        block[:] = char[r]
        block[:, take] = digit_chars[idx][:, src[r][take]]
        chars[idx, 1:width + 1] = block
    # ", " after every value, ']","[' after a cell's last, nothing after a row's last.
    chars[:, width + 1:] = np.frombuffer(b",    ", np.uint8)
    keep[:, width + 1:width + 3] = True
    keep[:, width + 3:] = False
    cells = row_len // cell_len
    chars4 = chars.reshape(-1, cells, cell_len, width + 6)
    keep4 = keep.reshape(-1, cells, cell_len, width + 6)
    chars4[:, :, -1, width + 1:] = np.frombuffer(b']","[', np.uint8)
    keep4[:, :, -1, width + 1:] = True
    keep4[:, -1, -1, width + 1:] = False
    ends = np.cumsum(keep.reshape(-1, row_len * (width + 6)).sum(axis=1))
    return chars[keep].tobytes(), ends


def _format_rows(emb: np.ndarray, digits: int, threads: int = 2) -> tuple[bytes, np.ndarray]:
    """Format ``[n, d]`` (one cell a row) or ``[n, cells, d]`` (several cells a row).

    Rows are split across threads: NumPy releases the GIL in the heavy steps.
    """
    if not np.isfinite(emb).all():
        bad = np.argwhere(~np.isfinite(emb))[0]
        raise ConfigError(f"embedding value at {tuple(int(i) for i in bad)} is "
                         f"{emb[tuple(bad)]} (NaN or infinity), which a Mantis CSV cannot "
                         f"store; check the training for divergence")
    emb = emb[:, None, :] if emb.ndim == 2 else emb
    n, cells, d = emb.shape
    # Blocks of ~1M values: small enough to stay in cache-friendly sizes, many enough to share.
    per_block = max(1, min(n, 1_000_000 // max(1, cells * d)))
    blocks = [(a, min(a + per_block, n)) for a in range(0, n, per_block)]

    def run(block):
        a, b = block
        return _format_block(emb[a:b].reshape(-1), digits, d, cells * d)

    with concurrent.futures.ThreadPoolExecutor(max(1, min(threads, len(blocks)))) as pool:
        results = list(pool.map(run, blocks))
    data = b"".join(r[0] for r in results)
    offsets, base = [], 0
    for chunk, ends in results:
        offsets.append(ends + base)
        base += len(chunk)
    return data, np.concatenate(offsets) if offsets else np.zeros(0, np.int64)


def _numbers(values: np.ndarray, digits: int) -> list[bytes]:
    """Each value of a 1-D array as its own bytes, ``digits`` significant digits."""
    data, ends = _format_rows(values[:, None], digits)
    starts = np.concatenate([[0], ends[:-1]])
    return [data[a:b] for a, b in zip(starts, ends, strict=True)]


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
        raise ConfigError(f"precision is in significant digits, 1 to 17; got {precision}")
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
            raise ConfigError(f"extra column {name!r} clashes with a column the format defines")
        if len(values) != n:
            raise ConfigError(f"extra column {name!r} has {len(values)} values for {n} rows")
        columns[name] = [_clean(v) for v in values]

    coords = None
    if coordinates is not None:
        if isinstance(coordinates, (int, np.integer)):
            coords = _pca(emb[-1], int(coordinates))
        else:
            coords = np.asarray(coordinates, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] not in (2, 3):
            raise ConfigError(f"coordinates must be 2 or 3 columns for {n} rows, "
                             f"got shape {coords.shape}")

    header = list(columns) + [f"{_EMB}{e}" for e in range(emb.shape[0])]
    if coords is not None:
        header += [f"{_COORD}{k + 1}" for k in range(coords.shape[1])]
    # All epochs of a sample form one formatted row: v, v]","[v, v ... (see _format_block).
    data, ends = _format_rows(emb.transpose(1, 0, 2), precision)
    starts = np.concatenate([[0], ends[:-1]]).tolist()
    ends = ends.tolist()
    coord_cells = [] if coords is None else [
        _numbers(coords[:, k], precision) for k in range(coords.shape[1])]
    # Text columns go through csv (titles need RFC 4180 quoting); embedding cells hold no
    # quotes, so they are always wrapped in "..." as they are, without a scan.
    meta = io.StringIO()
    csv.writer(meta, lineterminator="\r\n").writerows(zip(*columns.values(), strict=True))
    meta_lines = meta.getvalue().encode("utf-8").split(b"\r\n")
    header_line = io.StringIO()
    csv.writer(header_line, lineterminator="\r\n").writerow(header)

    with atomic_write(path, "wb") as f:
        f.write(header_line.getvalue().encode("utf-8"))
        for i in range(n):
            coord = b"".join(b"," + c[i] for c in coord_cells)
            f.write(meta_lines[i] + b',"[' + data[starts[i]:ends[i]] + b']"' + coord + b"\r\n")
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


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def read_mantis_csv(path: str | Path) -> MantisTable:
    """Read a Mantis CSV back into arrays; a malformed cell is reported by line and column."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise MantisFormatError(f"{path}, line {line}, column {column}: not UTF-8 (byte "
                                f"{raw[err.start]:#04x}); a Mantis CSV is UTF-8") from None
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
    epochs = [header[i][len(_EMB):] for i in emb_cols]
    if not emb_cols or epochs != [str(e) for e in range(len(emb_cols))]:
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
                # Strict JSON numbers: NaN and Infinity are not JSON, true/false not numbers.
                values = json.loads(row[col], parse_constant=_no_constant)
                if not isinstance(values, list) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool)
                        for v in values):
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

"""Cosine nearest neighbours in memory that grows linearly with the points.

A similarity matrix of every pair is ``n * n`` numbers: 400 MB at 10,000 points, 14 GB at
60,000, more than a laptop has. Up to :data:`EXACT_MAX` points the neighbours are exact, found
a block of rows at a time (each block's similarities are ``CHUNK_ROWS * n`` numbers, 123 MB at
60,000 points). Above it they are approximate, from pynndescent's nearest-neighbour descent
(the library UMAP builds its graph with, installed with umap-learn): the same neighbours for
at least 95 % of the items on 10,000 points (``tests/test_analysis.py``), in seconds and linear
memory. ``exact=True`` or ``exact=False`` chooses either way.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["CHUNK_ROWS", "EXACT_MAX", "cosine_neighbours", "unit_rows"]

EXACT_MAX = 20_000  # exact below: a 60,000-point probe takes pynndescent's approximate answer
CHUNK_ROWS = 512  # rows of similarities held at once: 512 x n float32, 123 MB at 60,000


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), as float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def cosine_neighbours(
    x: np.ndarray, k: int, *, exact: bool | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most cosine-similar other rows: ``(indices [n, k], cosines [n, k])``,
    most similar first, the row itself left out (among the k, a tie goes to the lower index;
    which of several rows tied at the k-th place is kept is numpy's selection's choice).

    ``exact=None`` is exact up to :data:`EXACT_MAX` rows and approximate above it.
    """
    unit = unit_rows(x)
    n = len(unit)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k, the number of neighbours, must be a whole number >= 1, got {k!r}")
    k = min(int(k), n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if exact is None:
        exact = n <= EXACT_MAX
    return _exact(unit, k) if exact else _approximate(unit, k, seed)


def _exact(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(unit)
    idx = np.empty((n, k), np.int64)
    sim = np.empty((n, k), np.float32)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        block = unit[start:stop] @ unit.T  # [rows, n]
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        got = np.take_along_axis(block, part, axis=1)
        # The k in order: by similarity, an exact tie to the lower index.
        order = np.lexsort((part, -got), axis=1)
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        sim[start:stop] = np.take_along_axis(got, order, axis=1)
    return idx, sim


def _approximate(unit: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from pynndescent import NNDescent

    # On unit vectors the Euclidean order is the cosine order (|a - b|^2 = 2 - 2 cos).
    # A wider graph than asked for, then its k best: with 3k (at least 30) neighbours per
    # point the k found are the exact k for 98 % of the points on 10,000 embeddings.
    wide = min(max(30, 3 * k + 1), len(unit))
    index = NNDescent(unit, metric="euclidean", n_neighbors=wide, random_state=seed)
    found, _ = index.neighbor_graph
    n = len(unit)
    # Each row's own index (usually first) and any empty slot (-1) go to the back.
    keep = (found != np.arange(n)[:, None]) & (found >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")
    idx = np.take_along_axis(found, order, axis=1)[:, :k].astype(np.int64)
    short = np.flatnonzero(keep.sum(axis=1) < k)
    for i in short:  # the graph came back short for this row (rare): exact for it alone
        cos = unit @ unit[i]
        cos[i] = -np.inf
        idx[i] = np.argsort(-cos, kind="stable")[:k]
    sim = np.einsum("nkd,nd->nk", unit[idx], unit)
    return idx, sim.astype(np.float32)

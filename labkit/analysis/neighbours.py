"""Cosine nearest neighbours in memory that grows linearly with the points.

A similarity matrix of every pair is ``n * n`` numbers: 400 MB at 10,000 points, 14 GB at
60,000, more than a laptop has. Up to :data:`EXACT_MAX` points the neighbours are exact, found
a block of rows at a time (each block's similarities are :data:`BLOCK_NUMBERS` numbers, 256
MB, whatever ``n``). Above it they are approximate, from pynndescent's nearest-neighbour
descent (the library UMAP builds its graph with, installed with umap-learn): the same
neighbours for at least 95 % of the items on 10,000 points (``tests/test_label_errors.py``),
in linear memory. ``exact=True`` or ``exact=False`` chooses either way.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["BLOCK_NUMBERS", "EXACT_MAX", "cosine_neighbours", "unit_rows"]

# Exact up to here. Exact costs n * n products: 7 s at 60,000 points on 2 cores, 18 s at
# 100,000. Above, pynndescent is faster although every new process first spends about 20 s
# compiling it (numba cannot keep its functions on disk: they take the metric as an argument).
EXACT_MAX = 100_000
BLOCK_NUMBERS = 2**26  # similarities held at once: 256 MB of float32, 1,118 rows at 60,000


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
    # torch, not numpy: its top-k runs on every core, where numpy's argpartition runs on one
    # and took twice as long as the products themselves. The block is written into one
    # buffer: a fresh 256 MB array per block cost more in page faults than the product
    # (benchmarks/README.md, "The whole split").
    import torch

    n = len(unit)
    rows = min(max(BLOCK_NUMBERS // n, 1), n)
    table = torch.from_numpy(unit)
    idx = torch.empty((n, k), dtype=torch.int64)
    sim = torch.empty((n, k), dtype=torch.float32)
    buffer = torch.empty((rows, n), dtype=torch.float32)
    diagonal = torch.arange(rows)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = buffer[: stop - start]
        torch.mm(table[start:stop], table.T, out=block)  # [rows, n]
        here = diagonal[: stop - start]
        block[here, here + start] = -np.inf  # not itself
        torch.topk(block, k, dim=1, out=(sim[start:stop], idx[start:stop]))
    idx, sim = idx.numpy(), sim.numpy()
    # The k in order: by similarity, an exact tie to the lower index.
    order = np.lexsort((idx, -sim), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(sim, order, axis=1)


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

"""Projections of an embedding to a few dimensions: PCA (by the SVD), t-SNE and UMAP.

>>> xy = project(emb, "pca", n_components=2)               # doctest: +SKIP
>>> xyz = project(emb, "umap", n_components=3, seed=0)     # doctest: +SKIP

PCA keeps the geometry most faithfully: it is a rotation followed by dropping the axes of
least variance, so distances in the projection are never larger than in the embedding. t-SNE
and UMAP keep neighbourhoods instead, and stretch or shrink distances freely.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = [
    "METHODS",
    "SVDProjection",
    "nearest_neighbours",
    "numba_cache_dir",
    "check_points",
    "project",
    "trustworthiness",
]

METHODS = ("pca", "tsne", "umap")


class SVDProjection:
    """PCA computed with the SVD of the centred data, scikit-learn style: the one PCA of the
    kit (figures, trajectories, the Mantis CSV's coordinates).

    >>> p = SVDProjection(2).fit(x)          # doctest: +SKIP
    >>> p.transform(x).shape, p.explained_variance_ratio_   # doctest: +SKIP

    Each axis' sign follows scikit-learn's ``svd_flip`` (the largest loading of each
    component positive, as ``sklearn.decomposition.PCA`` does), so a refit never mirrors
    the picture and the kit's axes are scikit-learn's.
    """

    def __init__(self, n_components: int = 2):
        self.n_components = n_components

    def fit(self, x: np.ndarray) -> SVDProjection:
        x = np.asarray(x, dtype=np.float64)
        return self.fit_blocks([x], mean=x.mean(axis=0))

    def fit_blocks(self, blocks: Iterable[np.ndarray], *, mean: np.ndarray) -> SVDProjection:
        """The fit of the blocks' rows stacked, whose ``mean`` is given, holding one block at
        a time: a trajectory of 60,000 points x 11 epochs stacked is 680 MB of float64, and
        its centred copy and factorisation as much again each."""
        self.mean_ = np.asarray(mean, dtype=np.float64)
        stacked = None
        for block in blocks:
            centred = np.asarray(block, dtype=np.float64) - self.mean_
            stacked = centred if stacked is None else np.vstack([stacked, centred])
            if len(stacked) > stacked.shape[1]:
                # A tall matrix has the singular values and right vectors of its QR factor R
                # (d x d), without forming the n x d left vectors, which PCA never uses; and
                # the R of [A; B] is the R of [R_A; B], so the blocks are factored in turn.
                stacked = np.linalg.qr(stacked, mode="r")
        _, s, vt = np.linalg.svd(stacked, full_matrices=False)
        # scikit-learn's svd_flip(u_based_decision=False): each row's largest entry positive.
        vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
        k = min(self.n_components, len(s))
        self.components_ = vt[:k]
        var = s**2
        self.explained_variance_ratio_ = var[:k] / var.sum() if var.sum() > 0 else var[:k]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.components_.T

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)


# The fewest points each method lays out: t-SNE's perplexity (at least 5) must stay below
# the number of points, and UMAP's spectral start needs more points than its dimensions + 1.
SMALLEST = {"pca": 2, "tsne": 6, "umap": 4}


def check_points(method: str, n: int) -> None:
    """Raise :class:`ConfigError` for a method the kit lacks or one that cannot lay out ``n``
    points (said before training, not after)."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if n < SMALLEST[method]:
        raise ConfigError(
            f"{method} needs at least {SMALLEST[method]} points and the probe set has {n}; "
            f"use a larger probe set (--probe-size, probe_size=) or method 'pca'"
        )


def project(
    x: np.ndarray,
    method: str = "pca",
    *,
    n_components: int = 2,
    seed: int = 0,
    init: np.ndarray | None = None,
    cache: bool = True,
    **options,
) -> np.ndarray:
    """``x`` ``[n, d]`` to ``[n, n_components]`` with ``pca``, ``tsne`` or ``umap``.

    ``init`` starts t-SNE or UMAP from a given layout (used to keep epochs consistent).
    ``options`` go to the underlying estimator. A t-SNE or UMAP of exactly these points and
    settings computed before (in this ``LABKIT_HOME``, on this machine) is read from the run
    cache (:mod:`labkit.store`) instead of computed again; ``cache=False`` computes it.
    """
    x = np.asarray(x, dtype=np.float32)
    check_points(method, len(x))
    if method == "pca":  # an option PCA lacks is Python's TypeError, as for the others
        return SVDProjection(n_components, **options).fit_transform(x)
    compute = _tsne if method == "tsne" else _umap

    def layout() -> np.ndarray:
        return compute(x, n_components, seed, init, **options)

    if not cache:
        return layout()
    xy = _kept_or_computed(
        [x, None if init is None else np.asarray(init, dtype=np.float32)],
        {"method": method, "n_components": n_components, "seed": seed, "options": options},
        _LIBRARIES[method],
        (len(x), n_components),
        layout,
    )
    return xy.astype(np.float64)


def _kept_or_computed(arrays, settings: dict, libraries: list[str], shape: tuple, compute):
    """``compute()``, or what it returned for these arrays and settings before, read from
    the disk store's ``projections`` folder (an entry of another shape is computed again)."""
    from .. import store

    key = store.array_key(arrays, settings, code=PROJECTION_MODULES, libraries=libraries)
    kept = store.load_array("projections", key)
    if kept is not None and kept.shape == shape:
        return kept
    value = np.asarray(compute())
    store.store_array("projections", key, value)
    return value


# The kit's modules whose code decides a kept projection: a change to one computes it again.
PROJECTION_MODULES = ("analysis.reduce",)

# What computes each method: a new version of any of them computes it again.
_LIBRARIES = {
    "tsne": ["scikit-learn", "scipy"],
    "umap": ["umap-learn", "pynndescent", "numba", "scikit-learn", "scipy"],
}


def _tsne(x, n_components, seed, init, **options) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(options.pop("perplexity", 30.0), max(5.0, (len(x) - 1) / 3))
    tsne = TSNE(
        n_components=n_components,
        perplexity=perplexity,
        random_state=seed,
        init=init if init is not None else "pca",
        method="barnes_hut" if n_components <= 3 else "exact",
        **options,
    )
    return tsne.fit_transform(x).astype(np.float64)


# Up to this many points UMAP's neighbours are found exactly, by scikit-learn, instead of by
# pynndescent: as fast at this size, exact, and pynndescent's functions take the distance as
# a first-class function, which numba cannot cache on disk, so they would compile again in
# every new kernel (about 25 s). Probe sets are a few thousand points.
EXACT_NEIGHBOURS_UP_TO = 20_000


def nearest_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each point's ``k`` nearest neighbours by Euclidean distance, itself first:
    ``(indices [n, k], distances [n, k])``, the form umap-learn's ``precomputed_knn`` takes.

    A point is its own first neighbour even when it has exact duplicates.
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float32)
    k = min(k, len(x))
    n = len(x)
    if k <= 1:
        return np.arange(n)[:, None], np.zeros((n, 1), np.float32)
    # kneighbors() without a query leaves each point itself out; it goes in front.
    dist, idx = NearestNeighbors(n_neighbors=k - 1).fit(x).kneighbors()
    idx = np.hstack([np.arange(n)[:, None], idx])
    dist = np.hstack([np.zeros((n, 1)), dist]).astype(np.float32)
    return idx, dist


def numba_cache_dir() -> Path:
    """Where numba keeps the machine code it compiles for UMAP, so that a new kernel loads it
    instead of compiling again: ``$NUMBA_CACHE_DIR`` if set, else ``labkit/numba`` in the
    user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labkit" / "numba"


def _cache_folder() -> Path:
    """:func:`numba_cache_dir`, made; a temporary folder where it cannot be written."""
    folder = numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "labkit-numba"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _import_umap():
    """umap-learn, with numba's on-disk cache on for every function a kit fit reaches.

    umap-learn caches only some of its compiled functions (not the parallel ones: the
    fuzzy graph, the layout's epochs); the rest would compile again, seconds each, in every
    new kernel. Caching is switched on for them before their first compile, and numba is
    told a writable cache folder before it is imported.
    """
    folder = _cache_folder()
    if "numba" in sys.modules:  # numba reads the variable at import; later, its config
        import numba

        numba.config.CACHE_DIR = numba.config.CACHE_DIR or str(folder)
    else:
        os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))
    import umap
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils):
        for fn in vars(module).values():
            if (
                isinstance(fn, Dispatcher)
                and fn.__module__ == module.__name__
                and isinstance(fn._cache, NullCache)
                and not fn.signatures  # not compiled yet in this process
            ):
                fn.enable_caching()
    return umap


def _umap(x, n_components, seed, init, n_epochs=None, **options) -> np.ndarray:
    umap = _import_umap()

    options.setdefault("n_neighbors", min(15, len(x) - 1))
    euclidean = options.get("metric", "euclidean") == "euclidean"  # what they are found by
    if euclidean and len(x) <= EXACT_NEIGHBOURS_UP_TO and "precomputed_knn" not in options:
        options["precomputed_knn"] = nearest_neighbours(x, options["n_neighbors"])
    # Below 4096 points umap-learn would otherwise compute all distances itself and ignore
    # the neighbours given; above, its approximate search is ~5x faster than its exact one.
    options.setdefault("force_approximation_algorithm", True)
    if init is not None:
        init = np.asarray(init, dtype=np.float32)
        # Warm start: the layout is mostly right already, so fewer epochs suffice.
        n_epochs = n_epochs or 200
    with warnings.catch_warnings():
        # "n_jobs overridden by setting random_state": expected, we want reproducibility.
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*force_all_finite.*")
        # Given neighbours carry no search index, so umap cannot transform new points;
        # the kit never asks it to.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        model = umap.UMAP(
            n_components=n_components,
            random_state=seed,
            init=init if init is not None else "spectral",
            n_epochs=n_epochs,
            **options,
        )
        with _torch_threads_kept():
            return model.fit_transform(x).astype(np.float64)


@contextlib.contextmanager
def _torch_threads_kept():
    """Give torch back its thread count: numba's OpenMP pool shares the OpenMP runtime with
    torch, and umap-learn's fit sets it to every core, which would change how (and so what,
    in the last bits) a later training in this process computes."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def trustworthiness(
    x_high: np.ndarray, x_low: np.ndarray, *, n_neighbors: int = 10, cache: bool = True
) -> float:
    """How well the projection keeps neighbourhoods: 1 when no false neighbours appear.

    The score of exactly these points and this projection computed before is read from the
    run cache with the projections (a t-SNE read from there comes with its score: grading a
    class scores the same layouts for every submission, 0.2 s each); ``cache=False``
    computes it.
    """
    x_high = np.asarray(x_high, np.float64)
    x_low = np.asarray(x_low, np.float64)
    k = min(n_neighbors, (len(x_high) - 1) // 2)

    def compute() -> float:
        from sklearn.manifold import trustworthiness as tw

        return float(tw(x_high, x_low, n_neighbors=k))

    if not cache:
        return compute()
    settings = {"measure": "trustworthiness", "n_neighbors": k}
    return float(_kept_or_computed([x_high, x_low], settings, ["scikit-learn"], (), compute))

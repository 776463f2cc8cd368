"""Projections of an embedding to a few dimensions: PCA (by the SVD), t-SNE and UMAP.

>>> xy = project(emb, "pca", n_components=2)               # doctest: +SKIP
>>> xyz = project(emb, "umap", n_components=3, seed=0)     # doctest: +SKIP

PCA keeps the geometry most faithfully: it is a rotation followed by dropping the axes of
least variance, so distances in the projection are never larger than in the embedding. t-SNE
and UMAP keep neighbourhoods instead, and stretch or shrink distances freely.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import ConfigError

__all__ = ["REDUCERS", "SVDProjection", "project", "reduce", "trustworthiness"]

REDUCERS = ("pca", "tsne", "umap")


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
        from sklearn.utils.extmath import svd_flip

        x = np.asarray(x, dtype=np.float64)
        self.mean_ = x.mean(axis=0)
        u, s, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        _, vt = svd_flip(u, vt, u_based_decision=False)
        k = min(self.n_components, len(s))
        self.components_ = vt[:k]
        var = s**2
        self.explained_variance_ratio_ = var[:k] / var.sum() if var.sum() > 0 else var[:k]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.components_.T

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)


def project(
    x: np.ndarray,
    method: str = "pca",
    n_components: int = 2,
    seed: int = 0,
    init: np.ndarray | None = None,
    **options,
) -> np.ndarray:
    """``x`` ``[n, d]`` to ``[n, n_components]`` with ``pca``, ``tsne`` or ``umap``.

    ``init`` starts t-SNE or UMAP from a given layout (used to keep epochs consistent).
    ``options`` go to the underlying estimator.
    """
    x = np.asarray(x, dtype=np.float32)
    if method == "pca":
        return SVDProjection(n_components).fit_transform(x)
    if method == "tsne":
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
    if method == "umap":
        return _umap(x, n_components, seed, init, **options)
    raise ConfigError(f"unknown reducer {method!r}; choose one of {', '.join(REDUCERS)}")


def _umap(x, n_components, seed, init, n_epochs=None, **options) -> np.ndarray:
    import umap

    options.setdefault("n_neighbors", min(15, len(x) - 1))
    # Below 4096 points umap-learn computes exact neighbours, ~5x slower than its
    # approximate search at the same quality for embeddings this size.
    options.setdefault("force_approximation_algorithm", True)
    if init is not None:
        init = np.asarray(init, dtype=np.float32)
        # Warm start: the layout is mostly right already, so fewer epochs suffice.
        n_epochs = n_epochs or 200
    with warnings.catch_warnings():
        # "n_jobs overridden by setting random_state": expected, we want reproducibility.
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*force_all_finite.*")
        model = umap.UMAP(
            n_components=n_components,
            random_state=seed,
            init=init if init is not None else "spectral",
            n_epochs=n_epochs,
            **options,
        )
        return model.fit_transform(x).astype(np.float64)


def trustworthiness(x_high: np.ndarray, x_low: np.ndarray, n_neighbors: int = 10) -> float:
    """How well the projection keeps neighbourhoods: 1 when no false neighbours appear."""
    from sklearn.manifold import trustworthiness as tw

    return float(
        tw(
            np.asarray(x_high, np.float64),
            np.asarray(x_low, np.float64),
            n_neighbors=min(n_neighbors, (len(x_high) - 1) // 2),
        )
    )


def reduce(*args, **kwargs) -> np.ndarray:
    """Deprecated name of :func:`project` (``labkit.reduce.reduce`` repeated the module's name)."""
    warnings.warn(
        "labkit.reduce.reduce is deprecated: write labkit.reduce.project",
        DeprecationWarning,
        stacklevel=2,
    )
    return project(*args, **kwargs)

"""A synthetic data set: Gaussian blobs in a few dozen dimensions (scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .raw import Raw, stratified_split

__all__ = ["blobs"]


def blobs(
    data_dir: Path,
    download: bool,
    seed: int,
    *,
    n_samples: int = 3000,
    n_features: int = 32,
    centers: int = 5,
    cluster_std: float = 6.0,
) -> Raw:
    from sklearn.datasets import make_blobs

    # Wide clusters on purpose: an easy but not trivial task, so epochs visibly differ.
    x, y = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        random_state=seed,
    )
    x_tr, x_te, y_tr, y_te = stratified_split(x.astype(np.float32), y, 0.3, seed)
    return Raw(
        x_tr,
        y_tr,
        x_te,
        y_te,
        [f"blob {i}" for i in range(centers)],
        kind="vector",
        info={"source": "sklearn.datasets.make_blobs"},
    )

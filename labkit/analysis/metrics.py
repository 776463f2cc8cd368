"""Geometry of an embedding: neural collapse, cluster quality, probes, and CKA.

All functions take plain arrays (``features [n, d]``, ``labels [n]``) and return numbers;
:func:`geometry` runs them over every (layer, epoch) of a ``Snapshots``.

Neural collapse (Papyan, Han & Donoho 2020), with the normalisations used here. Write
``mu_c`` for the class means, ``mu_G`` for the global mean (the mean of the class means, so
class sizes don't tilt it), ``M`` the ``C x d`` matrix of centred means ``mu_c - mu_G``:

* NC1 = Tr(Sigma_W Sigma_B^+) / C with Sigma_W the within-class covariance (averaged over all
  points) and Sigma_B = M^T M / C. 0 when every point sits on its class mean.
* NC2: *equinorm* = std/mean of the norms ||mu_c - mu_G|| (0: all equal); *equiangularity* =
  std of the cosines between distinct centred means; *etf_deviation* = mean of
  |cos + 1/(C-1)|, 0 for a simplex equiangular tight frame.
* NC3 (self-duality) = || W/||W||_F - M/||M||_F ||_F for the classifier weights ``W``
  (``C x d``): 0 when the classifier's rows point along the centred class means.
* NC4 = share of points where the nearest class mean (Euclidean) gives the model's prediction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..snapshots import Snapshots

__all__ = [
    "cka_matrix",
    "geometry",
    "hsic",
    "knn_accuracy",
    "linear_cka",
    "linear_probe_accuracy",
    "neural_collapse",
    "silhouette",
]


def _class_means(h: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(y)
    means = np.stack([h[y == c].mean(axis=0) for c in classes])
    return classes, means


def neural_collapse(
    features: np.ndarray,
    labels: np.ndarray,
    head_weights: np.ndarray | None = None,
    predictions: np.ndarray | None = None,
) -> dict[str, float]:
    """NC1, NC2 (equinorm, equiangularity, etf_deviation), NC3 and NC4 (see module doc).

    ``head_weights`` (``[C, d]``) enables NC3 and ``predictions`` NC4.
    """
    h = np.asarray(features, np.float64)
    y = np.asarray(labels)
    classes, mu = _class_means(h, y)
    c = len(classes)
    mu_g = mu.mean(axis=0)
    m = mu - mu_g
    within = h - mu[np.searchsorted(classes, y)]
    # Sigma_B = M^T M / C has rank < C, so Sigma_B^+ = C M^+ M^+^T and
    # Tr(Sigma_W Sigma_B^+) / C = ||within @ M^+||_F^2 / n: no d x d matrix (conv layers are
    # thousands wide). rcond 1e-5 on M is the 1e-10 cut-off on Sigma_B's eigenvalues.
    nc1 = float(np.sum((within @ np.linalg.pinv(m, rcond=1e-5)) ** 2) / len(h))

    norms = np.linalg.norm(m, axis=1)
    equinorm = float(norms.std() / norms.mean()) if norms.mean() > 0 else 0.0
    unit = m / np.where(norms[:, None] == 0, 1, norms[:, None])
    cos = (unit @ unit.T)[~np.eye(c, dtype=bool)]
    out = {
        "nc1": nc1,
        "nc2_equinorm": equinorm,
        "nc2_equiangularity": float(cos.std()),
        "nc2_etf_deviation": float(np.abs(cos + 1.0 / (c - 1)).mean()) if c > 1 else 0.0,
        "nc2_mean_cosine": float(cos.mean()) if c > 1 else 0.0,
    }
    if head_weights is not None and np.shape(head_weights) == m.shape:
        w = np.asarray(head_weights, np.float64)
        out["nc3"] = float(np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m)))
    if predictions is not None:
        # ||h - mu||^2 without the [n, C, d] temporary (conv layers are thousands wide).
        d2 = (mu**2).sum(axis=1)[None, :] - 2 * h @ mu.T
        ncc = classes[d2.argmin(axis=1)]
        out["nc4_agreement"] = float((ncc == np.asarray(predictions)).mean())
    return out


def silhouette(
    features: np.ndarray, labels: np.ndarray, *, max_points: int = 2000, seed: int = 0
) -> float:
    """Mean silhouette (Euclidean) of the labels as clusters; in [-1, 1], higher is tighter."""
    from sklearn.metrics import silhouette_score

    h = np.asarray(features, np.float64)
    n_classes = len(np.unique(labels))
    if n_classes < 2 or len(h) < n_classes + 1:
        return float("nan")  # undefined: scikit-learn needs 2 <= classes < points
    size = min(max_points, len(h))
    return float(
        silhouette_score(h, labels, sample_size=size if size < len(h) else None, random_state=seed)
    )


def _halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified half split of the probe set: fit on one half, score on the other."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    a, b = train_test_split(idx, test_size=0.5, random_state=seed, stratify=stratify)
    return a, b


def knn_accuracy(features: np.ndarray, labels: np.ndarray, *, k: int = 10, seed: int = 0) -> float:
    """Accuracy of k-nearest-neighbour (cosine) on a held-out half of the probe set."""
    from sklearn.neighbors import KNeighborsClassifier

    a, b = _halves(labels, seed)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(a)), metric="cosine")
    clf.fit(features[a], labels[a])
    return float(clf.score(features[b], labels[b]))


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float:
    """Accuracy of a logistic-regression probe, fitted on one half of the probe set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _halves(labels, seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    probe.fit(features[a], labels[a])
    return float(probe.score(features[b], labels[b]))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same points.

    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred features: 1 when one is an
    orthogonal transform and isotropic scaling of the other.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    num = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else 0.0


def hsic(k: np.ndarray, ell: np.ndarray) -> float:
    """HSIC of two kernel matrices: tr(K H L H) / (n - 1)^2, with H the centring matrix."""
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ ell @ h) / (n - 1) ** 2)


def cka_matrix(reps: list[np.ndarray]) -> np.ndarray:
    """Linear CKA between every pair of representations (epochs or layers)."""
    n = len(reps)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = linear_cka(reps[i], reps[j])
    return out


def geometry(
    snaps: Snapshots,
    *,
    layers: list[str] | None = None,
    at_epochs: list[int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Metrics for every (layer, epoch): a pandas DataFrame, one row each.

    Columns: ``layer, epoch, nc1, nc2_*, nc3`` (penultimate layer only), ``nc4_agreement``,
    ``silhouette, knn_acc, linear_probe_acc`` and ``test_acc`` of that epoch.
    """
    import pandas as pd

    layers = snaps.layer_names if layers is None else list(layers)  # None: every layer
    at_epochs = list(range(snaps.epochs + 1)) if at_epochs is None else at_epochs
    missing: set[str] = set()

    def measure(name: str, fn, *args, **kwargs) -> float:
        # A probe set too small for a metric (a class with one point, fewer points than
        # classes + 1) makes that metric missing, not the whole table.
        try:
            value = fn(*args, **kwargs)
        except ValueError:
            value = float("nan")
        if value != value:
            missing.add(name)
        return value

    _, counts = np.unique(snaps.labels, return_counts=True)
    if counts.min() < 2:  # a class with one point has no held-out half and no spread
        missing.update({"knn_acc", "linear_probe_acc"})
    if counts.max() < 2:
        missing.add("nc1")
    rows = []
    for layer in layers:
        emb = snaps.layer(layer)
        for e in at_epochs:
            h = emb[e]
            head = (
                snaps.head_weights[e]
                if (snaps.head_weights is not None and layer == snaps.penultimate)
                else None
            )
            row = {
                "layer": layer,
                "epoch": e,
                **neural_collapse(h, snaps.labels, head, snaps.predictions[e]),
                "silhouette": measure("silhouette", silhouette, h, snaps.labels, seed=seed),
                "knn_acc": measure("knn_acc", knn_accuracy, h, snaps.labels, seed=seed),
                "linear_probe_acc": measure(
                    "linear_probe_acc", linear_probe_accuracy, h, snaps.labels, seed=seed
                ),
                "test_acc": snaps.history[e].get("test_acc") if e < len(snaps.history) else None,
            }
            row.update({name: float("nan") for name in missing if name in row})
            rows.append(row)
    if missing:
        import warnings

        warnings.warn(
            f"{snaps.n_probe} probe points in {len(counts)} classes are too few for "
            f"{', '.join(sorted(missing))}: reported as missing; a larger probe set "
            f"(--probe-size) gives them",
            stacklevel=2,
        )
    return pd.DataFrame(rows)

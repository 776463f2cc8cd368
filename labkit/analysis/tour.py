"""The Grand Tour: a smooth sequence of 2-D views of a higher-dimensional embedding.

After Li, Zhao & Scheidegger, "Visualizing Neural Networks with the Grand Tour" (Distill,
2020): the data are rotated in every plane (i, j) at once, each at its own angular speed
(Givens rotations), and we watch the first two coordinates. Every view is an orthogonal
projection of ``x``: it can bring points closer, never push them apart, so a gap seen in a
view is a gap in ``x``. Whether that says anything about the data depends on what ``x`` is:
a layer's activations (or a PCA of them) is the data seen linearly; a UMAP or t-SNE map is
not, and its tour shows the map's gaps and clusters, which the map may have made.

>>> frames = grand_tour(x15, n_frames=120)    # [120, n, 2]   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

__all__ = ["givens_step", "grand_tour"]


def givens_step(dim: int, *, step: float = 0.02, seed: int = 0) -> np.ndarray:
    """One small rotation: the product of a Givens rotation in every plane (i, j), i < j.

    Speeds are drawn once per plane (uniform in [0.5, 1.5] x ``step`` radians a frame) so the
    tour does not fall into a short cycle.
    """
    rng = np.random.default_rng(seed)
    rot = np.eye(dim)
    for i in range(dim):
        for j in range(i + 1, dim):
            theta = step * rng.uniform(0.5, 1.5)
            c, s = np.cos(theta), np.sin(theta)
            # rot @ G(i, j, theta) changes only columns i and j: O(dim) work, not O(dim^3),
            # so touring a raw layer of a few hundred units stays cheap
            col_i, col_j = rot[:, i].copy(), rot[:, j].copy()
            rot[:, i] = c * col_i + s * col_j
            rot[:, j] = c * col_j - s * col_i
    return rot


def grand_tour(
    x: np.ndarray, *, n_frames: int = 120, step: float = 0.02, seed: int = 0, normalise: bool = True
) -> np.ndarray:
    """``n_frames`` 2-D views ``[n_frames, n, 2]`` of ``x`` ``[n, dim]`` along a smooth tour.

    ``normalise`` centres the data and scales it to unit RMS radius first.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"the Grand Tour needs [n, dim >= 2] data, got shape {x.shape}")
    if normalise:
        x = x - x.mean(axis=0)
        radius = np.sqrt((x**2).sum(axis=1).mean())
        x = x / (radius or 1.0)
    step_rot = givens_step(x.shape[1], step=step, seed=seed)
    frames = np.empty((n_frames, len(x), 2))
    rot = np.eye(x.shape[1])
    for k in range(n_frames):
        frames[k] = x @ rot[:, :2]
        rot = rot @ step_rot
    return frames

"""Put projections of different epochs, layers or runs in one frame, so points don't jump.

Two layouts of the same points differ by an arbitrary rotation, reflection, scale and shift
(PCA signs flip, t-SNE and UMAP start anew). Orthogonal Procrustes finds the rotation that
best maps one onto the other after both are centred and scaled to unit size.

>>> traj = trajectory(snaps, method="umap")       # [epochs + 1, n, 2], one frame  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .reduce import SVDProjection, nearest_neighbours, project

if TYPE_CHECKING:
    from ..snapshots import Snapshots

__all__ = [
    "Procrustes",
    "align_runs",
    "align_sequence",
    "common_pca",
    "layer_trajectory",
    "neighbour_change",
    "procrustes",
    "trajectory",
]


@dataclass
class Procrustes:
    """The map ``y ≈ scale * (x - x_mean) @ rotation + y_mean`` found by :func:`procrustes`."""

    rotation: np.ndarray
    scale: float
    x_mean: np.ndarray
    y_mean: np.ndarray
    disparity: float  # squared residual of the unit-size shapes, 0 for a perfect fit

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(x, np.float64) - self.x_mean) @ self.rotation + self.y_mean


def procrustes(
    source: np.ndarray, target: np.ndarray, *, allow_reflection: bool = True
) -> Procrustes:
    """The rotation (and reflection), scale and shift that best maps ``source`` onto ``target``."""
    from scipy.linalg import orthogonal_procrustes

    x = np.asarray(source, np.float64)
    y = np.asarray(target, np.float64)
    if x.shape != y.shape:
        raise ConfigError(f"layouts must match point for point, got {x.shape} and {y.shape}")
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    nx, ny = np.linalg.norm(xc), np.linalg.norm(yc)
    if nx == 0 or ny == 0:
        return Procrustes(np.eye(x.shape[1]), 1.0, xm, ym, 0.0)
    r, s = orthogonal_procrustes(xc / nx, yc / ny)
    if not allow_reflection and np.linalg.det(r) < 0:
        u, _, vt = np.linalg.svd(xc.T @ yc)
        u[:, -1] *= -1
        r = u @ vt
        s = np.trace((xc / nx @ r).T @ (yc / ny))
    disparity = float(np.sum((xc / nx @ r - yc / ny) ** 2))
    return Procrustes(r, float(ny / nx * s), xm, ym, disparity)


def align_sequence(layouts: list[np.ndarray] | np.ndarray, *, reference: int = -1) -> np.ndarray:
    """Align each layout to its predecessor (a chain), then give every frame the size of
    ``reference``.

    Chaining keeps consecutive frames close (what an animation needs), so every frame keeps
    the orientation of the first one; each frame is then centred and scaled to the size of
    the reference (the last epoch by default), which keeps the axes of a grid comparable.
    """
    out = [np.asarray(layouts[0], np.float64)]
    for layout in layouts[1:]:
        fit = procrustes(layout, out[-1])
        out.append(fit.transform(layout))
    return same_size(np.stack(out), reference)


def same_size(frames: np.ndarray, reference: int = -1) -> np.ndarray:
    """Every frame ``[n, k]`` centred and scaled to the RMS radius of ``frames[reference]``."""
    out = np.asarray(frames, np.float64)
    ref = out[reference]
    size = np.linalg.norm(ref - ref.mean(0)) / np.sqrt(len(ref))
    centred = out - out.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=(1, 2), keepdims=True) / np.sqrt(out.shape[1])
    return centred / np.where(norms == 0, 1, norms) * size


# A warm-started UMAP step: a short optimisation whose learning rate is proportional to how
# much the neighbourhoods changed since the previous epoch. UMAP's stochastic updates keep
# moving points even in a finished layout; scaling the step by the change moves points
# where the embedding changed and leaves them alone where it did not. Measured in
# benchmarks/bench_projection.py against umap.AlignedUMAP.
STEADY_UMAP_EPOCHS = 30
STEADY_UMAP_RATE = 0.1  # learning rate per unit of neighbour change
STEADY_UMAP_MIN_RATE = 0.005


def _neighbour_sets(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's ``k`` nearest neighbours (itself left out): ``[n, k]`` indices."""
    return nearest_neighbours(x, k + 1)[0][:, 1:]


def _jaccard_change(a: np.ndarray, b: np.ndarray) -> float:
    k = a.shape[1]
    shared = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))  # [n]: neighbours in both
    return float(1 - np.mean(shared / (2 * k - shared)))


def neighbour_change(before: np.ndarray, after: np.ndarray, *, k: int = 15) -> float:
    """The share of each point's ``k`` nearest neighbours that differ between two embeddings
    of the same points (1 - mean Jaccard similarity): 0 when no neighbourhood changed."""
    k = min(k, len(before) - 1)
    return _jaccard_change(_neighbour_sets(before, k), _neighbour_sets(after, k))


def _layouts(
    embs: list[np.ndarray],
    method: str,
    n_components: int,
    seed: int,
    warm_start: bool,
    *,
    cache: bool = True,
    **options,
) -> list[np.ndarray]:
    layouts: list[np.ndarray] = []
    steady = warm_start and method == "umap"
    k = min(15, len(embs[0]) - 1)  # neighbours compared between epochs
    n_knn = min(max(k, options.get("n_neighbors", k)), len(embs[0]) - 1)  # UMAP's graph's
    sets = None
    for emb in embs:
        step = dict(options)
        if steady:
            # Each epoch's neighbours are found once: UMAP's graph is built from them (unless
            # another metric is asked for), and they are compared with the epoch before's.
            before, knn = sets, nearest_neighbours(emb, n_knn + 1)
            sets = knn[0][:, 1 : k + 1]
            if options.get("metric", "euclidean") == "euclidean":
                step["precomputed_knn"] = knn
        if not (warm_start and layouts and method in ("umap", "tsne")):
            layouts.append(
                project(emb, method, n_components=n_components, seed=seed, cache=cache, **step)
            )
            continue
        if method == "umap":
            rate = STEADY_UMAP_RATE * _jaccard_change(before, sets)
            step.setdefault("n_epochs", STEADY_UMAP_EPOCHS)
            step.setdefault("learning_rate", max(rate, STEADY_UMAP_MIN_RATE))
        layout = project(
            emb,
            method,
            n_components=n_components,
            seed=seed,
            init=layouts[-1],
            cache=cache,
            **step,
        )
        if method == "umap":
            # umap-learn stretches a given layout to [0, 10] on each axis before it
            # optimises; undo the stretch, or it alone would move points between epochs.
            lo, hi = layouts[-1].min(axis=0), layouts[-1].max(axis=0)
            layout = layout / 10 * np.where(hi > lo, hi - lo, 1) + lo
        layouts.append(layout)
    return layouts


def trajectory(
    snaps: Snapshots,
    *,
    layer: str | None = None,
    method: str = "pca",
    n_components: int = 2,
    seed: int = 0,
    at_epochs: list[int] | None = None,
    warm_start: bool = True,
    progress: bool = False,
    keep_scale: bool = False,
    cache: bool = True,
    **options,
) -> np.ndarray:
    """Aligned projections of ``layer`` at every epoch: ``[len(at_epochs), n, n_components]``.

    PCA: every epoch in one common basis (:func:`common_pca`), so a point moves only as much
    as the embedding changed. UMAP and t-SNE: each epoch starts from the previous epoch's
    layout (``warm_start``), then Procrustes puts all in one frame. A warm-started UMAP
    epoch is a short optimisation (30 epochs) with a learning rate proportional to
    :func:`neighbour_change` since the epoch before, so points move where neighbourhoods
    changed; ``n_epochs=`` or ``learning_rate=`` in ``options`` override it. Every frame is then
    scaled to the last one's size: the embedding's spread grows tens of times during
    training, and at true scale epoch 0 would be a dot. ``keep_scale=True`` keeps the PCA
    frames' true sizes (their growth) instead. t-SNE and UMAP layouts are kept in the run
    cache (:func:`labkit.reduce.project`); ``cache=False`` computes them.
    """
    emb = snaps.layer(layer)
    at_epochs = list(range(emb.shape[0])) if at_epochs is None else list(at_epochs)
    embs = [emb[e] for e in at_epochs]
    if method == "pca" and not options:
        frames = common_pca(embs, n_components=n_components)
        return frames if keep_scale else same_size(frames)
    if progress:
        from tqdm.auto import tqdm

        embs = tqdm(embs, desc=f"{method} per epoch", leave=False)
    layouts = _layouts(list(embs), method, n_components, seed, warm_start, cache=cache, **options)
    return align_sequence(layouts)


def common_pca(embeddings: list[np.ndarray] | np.ndarray, *, n_components: int = 2) -> np.ndarray:
    """Every epoch's embedding ``[n, d]`` projected on one set of axes: ``[T, n, k]``.

    Each epoch is centred and rotated (Orthogonal Procrustes, in all ``d`` dimensions, no
    scaling) onto the one before, which takes out the arbitrary rotations the network may
    make between epochs; then one PCA of all epochs stacked gives the axes. A per-epoch PCA
    changes its axes whenever two variances cross, and a 2-D rotation cannot undo that: the
    picture reconfigures although the embedding barely moved.
    """
    from scipy.linalg import orthogonal_procrustes

    # The rotations are kept, not the rotated copies: at 60,000 points x 11 epochs those
    # would be 680 MB of float64. The PCA is fitted while the rotations are found; each epoch
    # is rotated again for its projection.
    rotations: list[np.ndarray | None] = []

    def aligned_onto_the_one_before():
        previous = None
        for emb in embeddings:
            x = _centred(emb)
            rotation = None if previous is None else orthogonal_procrustes(x, previous)[0]
            rotations.append(rotation)
            previous = x if rotation is None else x @ rotation
            yield previous

    # Every epoch is centred, so the stacked epochs' mean is 0.
    mean = np.zeros(np.shape(embeddings[0])[1])
    axes = SVDProjection(n_components).fit_blocks(aligned_onto_the_one_before(), mean=mean)
    return np.stack(
        [
            axes.transform(_centred(emb) if rotation is None else _centred(emb) @ rotation)
            for emb, rotation in zip(embeddings, rotations, strict=True)
        ]
    )


def _centred(emb: np.ndarray) -> np.ndarray:
    x = np.asarray(emb, np.float64)
    return x - x.mean(axis=0)


def layer_trajectory(
    snaps: Snapshots,
    *,
    epoch: int = -1,
    method: str = "pca",
    n_components: int = 2,
    seed: int = 0,
    layers: list[str] | None = None,
    cache: bool = True,
    **options,
) -> np.ndarray:
    """Aligned projections of every captured layer at one epoch: ``[len(layers), n, k]``
    (``cache=False``: t-SNE and UMAP layouts computed, not read from the run cache)."""
    layers = snaps.layer_names if layers is None else list(layers)  # None: every layer
    embs = [snaps.layer(name)[epoch] for name in layers]
    # Layers differ in width, so no warm start across them: align afterwards only.
    return align_sequence(_layouts(embs, method, n_components, seed, False, cache=cache, **options))


def align_runs(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Bring another run's trajectory ``[T, n, k]`` into the frame of ``reference``.

    One rotation for the whole trajectory (fitted on all frames at once), so the other run's
    own epoch-to-epoch motion is kept, only its frame changes.
    """
    ref = np.asarray(reference, np.float64)
    oth = np.asarray(other, np.float64)
    if ref.shape[1:] != oth.shape[1:]:
        raise ConfigError(
            f"runs must share the probe set and dimension: {ref.shape} vs {oth.shape}"
        )
    t = min(len(ref), len(oth))
    fit = procrustes(oth[:t].reshape(-1, oth.shape[2]), ref[:t].reshape(-1, ref.shape[2]))
    return fit.transform(oth.reshape(-1, oth.shape[2])).reshape(oth.shape)


def mean_displacement(traj: np.ndarray) -> float:
    """Mean distance a point moves between consecutive frames, in units of the layout's RMS
    radius (so differently scaled layouts compare)."""
    traj = np.asarray(traj, np.float64)
    centred = traj - traj.mean(axis=1, keepdims=True)
    radius = np.sqrt((centred**2).sum(axis=2).mean(axis=1, keepdims=True))[..., None]
    unit = centred / np.where(radius == 0, 1, radius)
    return float(np.linalg.norm(np.diff(unit, axis=0), axis=2).mean())

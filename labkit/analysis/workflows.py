"""What practitioners do with embeddings: find disagreements, neighbours, and suspect labels.

>>> disagreement(snaps)                       # per epoch: model vs label   # doctest: +SKIP
>>> similar(snaps, "test #417", k=5)          # cosine nearest neighbours   # doctest: +SKIP
>>> label_error_candidates(snaps)             # neighbours and model both disagree with label
>>> confident_learning(snaps)                 # per-class thresholds on the probabilities
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..snapshots import Snapshots

__all__ = [
    "confident_learning",
    "disagreement",
    "error_clusters",
    "label_error_candidates",
    "similar",
]


def disagreement(snaps: Snapshots) -> pd.DataFrame:
    """Per epoch: how many probe points the model gets wrong, and the share (a DataFrame).

    ``snaps.correct(epoch)`` gives the mask itself, for colouring a plot.
    """
    import pandas as pd

    rows = []
    for e in range(snaps.epochs + 1):
        wrong = ~snaps.correct(e)
        rows.append({"epoch": e, "wrong": int(wrong.sum()), "share": float(wrong.mean())})
    return pd.DataFrame(rows)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def _index(snaps, query: int | str) -> int:
    if isinstance(query, str):
        if query not in snaps.titles:
            raise KeyError(f"no probe point titled {query!r}; titles look like {snaps.titles[0]!r}")
        return snaps.titles.index(query)
    return int(query)


def similar(
    snaps: Snapshots, query: int | str, *, k: int = 8, epoch: int = -1, layer: str | None = None
) -> pd.DataFrame:
    """The ``k`` cosine nearest neighbours of one probe point (by index or title).

    A DataFrame: ``index, title, label, prediction, cosine`` (the query itself excluded).
    """
    import pandas as pd

    i = _index(snaps, query)
    unit = _unit(snaps.layer(layer)[epoch])
    cos = unit @ unit[i]
    cos[i] = -np.inf
    order = np.argsort(-cos, kind="stable")[:k]
    return pd.DataFrame(
        {
            "index": order,
            "title": [snaps.titles[j] for j in order],
            "label": [snaps.class_names[snaps.labels[j]] for j in order],
            "prediction": [snaps.class_names[snaps.predictions[epoch][j]] for j in order],
            "cosine": cos[order],
        }
    )


def label_error_candidates(
    snaps: Snapshots,
    *,
    k: int = 10,
    epoch: int = -1,
    layer: str | None = None,
    min_neighbour_share: float = 0.6,
) -> pd.DataFrame:
    """Points whose label both the model and their neighbourhood contradict.

    A point is a candidate when the model predicts another class *and* at least
    ``min_neighbour_share`` of its ``k`` cosine neighbours carry that same other class. They
    are ranked by the model's confidence in its own answer. Candidates are not proof of a
    label error: look at them (titles, thumbnails) before relabelling anything.
    """
    import pandas as pd

    unit = _unit(snaps.layer(layer)[epoch])
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(unit) - 1)
    nbrs = np.argpartition(-sims, k, axis=1)[:, :k]
    nbr_labels = snaps.labels[nbrs]
    pred = snaps.predictions[epoch]
    share = (nbr_labels == pred[:, None]).mean(axis=1)
    cand = np.flatnonzero((pred != snaps.labels) & (share >= min_neighbour_share))
    conf = snaps.probabilities[epoch][cand, pred[cand]]
    order = cand[np.argsort(-conf, kind="stable")]
    return pd.DataFrame(
        {
            "index": order,
            "title": [snaps.titles[i] for i in order],
            "label": [snaps.class_names[snaps.labels[i]] for i in order],
            "prediction": [snaps.class_names[pred[i]] for i in order],
            "confidence": snaps.probabilities[epoch][order, pred[order]],
            "neighbours_agreeing_with_model": share[order],
        }
    )


def confident_learning(snaps: Snapshots, *, epoch: int = -1) -> pd.DataFrame:
    """Label-error candidates by confident learning (Northcutt et al., 2021), as cleanlab's
    ``find_label_issues(labels, pred_probs, filter_by="confident_learning")`` finds them.

    With ``p_j(x)`` the model's probability of class ``j`` for item ``x`` at ``epoch``:

    - each class gets a threshold, the model's mean confidence in it on its own items:
      ``t_j = mean of p_j(x) over the items x labelled j``;
    - an item is *confidently* of class ``j`` when ``p_j(x) >= t_j`` (when several classes
      reach their thresholds, the most probable of all classes decides; when none does, the
      item counts for no class);
    - an item labelled ``i`` is a candidate when it is confidently of another class
      ``j != i`` and the model does not predict ``i`` (a tie goes to the label).

    A per-class threshold lets a class the model is less sure of (a harder digit) still
    claim its items, where one global cut-off would favour the easy classes. Candidates are
    ranked by ``self_confidence``, ``p_label(x)``, lowest first (cleanlab's default order); the
    DataFrame has ``index, title, label, suggested`` (the class they are confidently of) and
    ``self_confidence``, and ``.attrs["thresholds"]`` holds ``t_j`` in class order. As cleanlab
    says, the probabilities should be out of sample: the test split's are.
    """
    import pandas as pd

    probs = np.asarray(snaps.probabilities[epoch])
    labels = np.asarray(snaps.labels)
    n, c = probs.shape
    # A class with no item gets a threshold no probability reaches (cleanlab's 2), and none
    # is below 2e-6, so that the 1e-6 tolerance cannot make every item reach it.
    thresholds = np.clip(
        [np.mean(probs[:, j][labels == j]) if np.any(labels == j) else 2.0 for j in range(c)],
        2e-6,
        None,
    )
    above = probs >= thresholds - 1e-6  # a float tolerance, as cleanlab's
    n_above = above.sum(axis=1)
    suggested = np.where(n_above > 1, probs.argmax(axis=1), above.argmax(axis=1))
    off_diagonal = (n_above > 0) & (suggested != labels)
    # ... but not where the model's own prediction is the label (ties go to the label).
    nudged = probs.copy()
    nudged[np.arange(n), labels] += 1e-6
    cand = np.flatnonzero(off_diagonal & (nudged.argmax(axis=1) != labels))
    self_confidence = probs[cand, labels[cand]]
    order = cand[np.argsort(self_confidence, kind="stable")]
    df = pd.DataFrame(
        {
            "index": order,
            "title": [snaps.titles[i] for i in order],
            "label": [snaps.class_names[labels[i]] for i in order],
            "suggested": [snaps.class_names[suggested[i]] for i in order],
            "self_confidence": probs[order, labels[order]],
        }
    )
    df.attrs["thresholds"] = [float(t) for t in thresholds]
    return df


def error_clusters(
    snaps: Snapshots,
    *,
    n_clusters: int | None = None,
    epoch: int = -1,
    layer: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Group the misclassified points by where they sit in the embedding (k-means, cosine).

    Each cluster is a failure pattern: a DataFrame with ``cluster, size, main_confusion``
    (the most common label -> prediction pair) and ``examples`` (a few titles). The cluster of
    every error is in ``.attrs["assignment"]`` (``{probe index: cluster}``).
    """
    import pandas as pd
    from sklearn.cluster import KMeans

    wrong = np.flatnonzero(~snaps.correct(epoch))
    if len(wrong) == 0:
        return pd.DataFrame(columns=["cluster", "size", "main_confusion", "examples"])
    n_clusters = n_clusters or max(1, min(8, len(wrong) // 5))
    n_clusters = min(n_clusters, len(wrong))
    unit = _unit(snaps.layer(layer)[epoch][wrong])
    assign = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(unit)
    rows = []
    pred = snaps.predictions[epoch]
    for c in range(n_clusters):
        members = wrong[assign == c]
        pairs = [(snaps.class_names[snaps.labels[i]], snaps.class_names[pred[i]]) for i in members]
        # The most common (label, prediction) pair; a tie goes to the pair seen first, so
        # the name is the same on every run (a set's order is not).
        lab, pr = max(dict.fromkeys(pairs), key=pairs.count)
        rows.append(
            {
                "cluster": c,
                "size": len(members),
                "main_confusion": f"{lab} -> {pr}",
                "examples": [snaps.titles[i] for i in members[:5]],
            }
        )
    df = pd.DataFrame(rows).sort_values("size", ascending=False, kind="stable")
    df.attrs["assignment"] = {int(i): int(c) for i, c in zip(wrong, assign, strict=True)}
    return df.reset_index(drop=True)

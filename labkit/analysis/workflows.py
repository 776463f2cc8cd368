"""What practitioners do with embeddings: find disagreements, neighbours, and suspect labels.

>>> disagreement(snaps)                       # per epoch: model vs label   # doctest: +SKIP
>>> similar(snaps, "test #417", k=5)          # cosine nearest neighbours   # doctest: +SKIP
>>> label_error_candidates(snaps)             # neighbours and model both disagree with label
>>> confident_learning(snaps)                 # per-class thresholds on the probabilities
>>> label_error_ranking(snaps, method="aum")  # every item, most suspect first
>>> label_error_table(snaps)                  # which ranking finds the flips first, when
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, LabkitError
from .neighbours import cosine_neighbours

if TYPE_CHECKING:
    import pandas as pd

    from ..snapshots import Snapshots

__all__ = [
    "RANKINGS",
    "cartography",
    "confident_learning",
    "disagreement",
    "error_clusters",
    "label_error_candidates",
    "label_error_ranking",
    "label_error_table",
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

    nbrs, _ = cosine_neighbours(snaps.layer(layer)[epoch], k)  # linear memory: see neighbours
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


# -- a ranking of every item ------------------------------------------------------------------

# The rankings of label_error_ranking, each a score of how suspect an item's label is:
RANKINGS = {
    "self_confidence": "1 - p_label: the model's probability of the given label, lowest first",
    "margin": "max over other classes of p_j, minus p_label (cleanlab's normalized margin, "
    "negated)",
    "neighbours": "the share of the item's k cosine neighbours labelled otherwise "
    "(ties: lower p_label first)",
    "confident_learning": "the items confident learning flags first, then the rest, "
    "each by self-confidence",
    "aum": "minus the area under the margin: p_label - max other p_j, averaged over epochs 1..E "
    "(Pleiss et al. 2020)",
    "cartography": "1 - the mean over epochs 1..E of p_label (Swayamdipta et al. 2020); "
    "ties: the less variable first",
}


def _epoch(snaps: Snapshots, epoch: int) -> int:
    """``epoch`` as a whole number from 0 to ``snaps.epochs`` (a negative one counts back)."""
    e = epoch + snaps.epochs + 1 if epoch < 0 else epoch
    if not 0 <= e <= snaps.epochs:
        raise ConfigError(f"epoch {epoch} is not recorded: the snapshots hold 0..{snaps.epochs}")
    return e


def _others(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest probability among the classes other than each item's label, and its
    class."""
    masked = np.array(probs, np.float64)
    masked[np.arange(len(labels)), labels] = -np.inf
    best = masked.argmax(axis=1)
    return masked[np.arange(len(labels)), best], best


def _over_epochs(snaps: Snapshots, e: int) -> np.ndarray:
    """The probabilities of epochs 1..e, ``[e, n, c]``: the training-dynamics scores need a
    trained epoch."""
    if e < 1:
        raise ConfigError(
            "the training-dynamics rankings (aum, cartography) average epochs 1..E, and "
            "epoch 0 is before any training; give epoch >= 1"
        )
    return np.asarray(snaps.probabilities[1 : e + 1], np.float64)


def cartography(snaps: Snapshots, *, epoch: int = -1) -> pd.DataFrame:
    """Dataset Cartography (Swayamdipta et al. 2020) from the recorded epochs 1..``epoch``:
    each item's ``confidence`` (its mean probability of its label), ``variability`` (the
    standard deviation of that probability) and ``correctness`` (the share of epochs it was
    predicted as labelled), with ``flipped`` where the truth is known. Items low in both
    confidence and variability are "hard to learn": the suspects of a label error."""
    import pandas as pd

    e = _epoch(snaps, epoch)
    probs = _over_epochs(snaps, e)
    labels = np.asarray(snaps.labels)
    p_label = probs[:, np.arange(len(labels)), labels]  # [e, n]
    correct = np.asarray(snaps.predictions[1 : e + 1]) == labels[None, :]
    table = pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "title": list(snaps.titles),
            "label": [snaps.class_names[y] for y in labels],
            "confidence": p_label.mean(axis=0),
            "variability": p_label.std(axis=0),
            "correctness": correct.mean(axis=0),
        }
    )
    if snaps.flipped is not None:
        table["flipped"] = np.asarray(snaps.flipped, bool)
    table.attrs["epochs"] = (1, e)
    return table


def label_error_ranking(
    snaps: Snapshots,
    *,
    method: str = "margin",
    epoch: int = -1,
    k: int = 10,
    layer: str | None = None,
    exact: bool | None = None,
) -> pd.DataFrame:
    """Every probe item, most suspect label first: ``rank, index, title, label, suggested``
    (the class the evidence points to) and ``score`` (higher is more suspect).

    ``method`` is one of :data:`RANKINGS`. The probability rankings read ``epoch``; ``aum``
    and ``cartography`` read every epoch from 1 to ``epoch`` (the one thing a recorded run
    has that a single model does not); ``neighbours`` reads the ``k`` cosine neighbours in
    ``layer`` at ``epoch`` (exact or approximate: :func:`labkit.analysis.neighbours.
    cosine_neighbours`). Ties go to the lower index. A ranking is a list to look at, best
    suspects first, not a verdict.
    """
    import pandas as pd

    if method not in RANKINGS:
        raise ConfigError(f"unknown ranking {method!r}; choose one of {', '.join(RANKINGS)}")
    e = _epoch(snaps, epoch)
    labels = np.asarray(snaps.labels)
    n = len(labels)
    probs = np.asarray(snaps.probabilities[e], np.float64)
    p_label = probs[np.arange(n), labels]
    other_p, suggested = _others(probs, labels)
    if method == "self_confidence":
        score, keys = 1 - p_label, ()
    elif method == "margin":
        score, keys = other_p - p_label, ()
    elif method == "neighbours":
        nbrs, _ = cosine_neighbours(snaps.layer(layer)[e], k, exact=exact)
        nbr_labels = labels[nbrs]
        score = (nbr_labels != labels[:, None]).mean(axis=1) if nbrs.shape[1] else np.zeros(n)
        keys = (p_label,)  # ties: the model less sure of the label first
        c = len(snaps.class_names)
        counts = np.zeros((n, c), np.int64)
        np.add.at(counts, (np.repeat(np.arange(n), nbrs.shape[1]), nbr_labels.ravel()), 1)
        counts[np.arange(n), labels] = -1
        voted = counts.max(axis=1) > 0
        suggested = np.where(voted, counts.argmax(axis=1), suggested)
    elif method == "confident_learning":
        flagged = confident_learning(snaps, epoch=e)
        is_flagged = np.zeros(n, bool)
        is_flagged[flagged["index"].to_numpy()] = True
        score, keys = is_flagged + (1 - p_label), ()
        names = {name: j for j, name in enumerate(snaps.class_names)}
        cl = np.array([names[s] for s in flagged["suggested"]], np.int64)
        suggested[flagged["index"].to_numpy()] = cl
    else:  # the training dynamics: every epoch from the first to e
        dyn = _over_epochs(snaps, e)
        mean = dyn.mean(axis=0)
        _, suggested = _others(mean, labels)
        p_all = dyn[:, np.arange(n), labels]
        if method == "aum":
            margins = [p_all[t] - _others(dyn[t], labels)[0] for t in range(len(dyn))]
            score, keys = -np.mean(margins, axis=0), ()
        else:
            score, keys = 1 - p_all.mean(axis=0), (p_all.std(axis=0),)
    order = np.lexsort((np.arange(n), *reversed(keys), -score))
    table = pd.DataFrame(
        {
            "rank": np.arange(n),
            "index": order,
            "title": [snaps.titles[i] for i in order],
            "label": [snaps.class_names[labels[i]] for i in order],
            "suggested": [snaps.class_names[suggested[i]] for i in order],
            "score": score[order],
        }
    )
    table.attrs.update(method=method, epoch=e)
    return table


def label_error_table(
    snaps: Snapshots,
    *,
    methods: list[str] | None = None,
    epochs: list[int] | None = None,
    k: int | None = None,
    neighbours: int = 10,
) -> pd.DataFrame:
    """Precision and recall at ``k`` of each ranking against the labels the kit flipped
    (``label_noise``), at each epoch: which method finds the flips earliest, and when.

    ``k`` defaults to the number of flips (then precision and recall are equal); ``methods``
    to every ranking (the training-dynamics ones from epoch 1); ``epochs`` to every recorded
    one. Columns: ``method, epoch, k, found, precision, recall``.
    """
    import pandas as pd

    if snaps.flipped is None:
        raise LabkitError(
            "the snapshots do not know which labels are wrong: only a run with label_noise "
            "(load_dataset(..., label_noise=0.1), --label-noise) records them"
        )
    flipped = np.asarray(snaps.flipped, bool)
    k = int(flipped.sum()) if k is None else k
    rows = []
    for method in methods or list(RANKINGS):
        for e in epochs if epochs is not None else range(snaps.epochs + 1):
            if method in ("aum", "cartography") and _epoch(snaps, e) == 0:
                continue
            top = label_error_ranking(snaps, method=method, epoch=e, k=neighbours)["index"]
            found = int(flipped[top.to_numpy()[:k]].sum())
            rows.append(
                {
                    "method": method,
                    "epoch": _epoch(snaps, e),
                    "k": k,
                    "found": found,
                    "precision": found / k if k else float("nan"),
                    "recall": found / flipped.sum() if flipped.any() else float("nan"),
                }
            )
    return pd.DataFrame(rows)

"""Label errors ranked for every item, and neighbours in linear memory (the kit's rankings
checked by hand, against cleanlab, on digits with flipped labels, and at 60,000 points)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import labkit
from labkit.analysis import neighbours, workflows


def _dynamics(labels, probs_by_epoch, embeddings=None, flipped=None) -> labkit.Snapshots:
    """Snapshots of ``probs_by_epoch`` ``[epochs + 1, n, c]`` (epoch 0 first)."""
    probs = np.asarray(probs_by_epoch, np.float32)
    n = probs.shape[1]
    emb = np.zeros((len(probs), n, 2), np.float32) if embeddings is None else embeddings
    return labkit.Snapshots(
        embeddings={"embed": emb},
        labels=np.asarray(labels),
        predictions=probs.argmax(2),
        probabilities=probs,
        titles=[f"item {i}" for i in range(n)],
        class_names=["a", "b", "c"][: probs.shape[2]],
        flipped=flipped,
    )


# Four items of classes a, b, c over epochs 0..2; item 1's label (a) is suspect.
LABELS = [0, 0, 1, 2]
PROBS = [
    [[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4]],  # epoch 0
    [[0.6, 0.2, 0.2], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]],  # epoch 1
    [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.4, 0.6]],  # epoch 2
]


def test_each_ranking_orders_every_item_as_computed_by_hand():
    snaps = _dynamics(LABELS, PROBS)
    rank = lambda method, **kw: workflows.label_error_ranking(snaps, method=method, **kw)  # noqa: E731
    # Last epoch: p_label = 0.9, 0.2, 0.8, 0.6; the best other class 0.1 (b), 0.7 (b),
    # 0.1 (a), 0.4 (b).
    sc = rank("self_confidence")
    assert sc["index"].tolist() == [1, 3, 2, 0] and len(sc) == 4
    np.testing.assert_allclose(sc["score"], [0.8, 0.4, 0.2, 0.1], atol=1e-6)
    assert sc["suggested"].tolist() == ["b", "b", "a", "b"] and sc["rank"].tolist() == [0, 1, 2, 3]
    margin = rank("margin")  # 0.1-0.9, 0.7-0.2, 0.1-0.8, 0.4-0.6
    assert margin["index"].tolist() == [1, 3, 2, 0]
    np.testing.assert_allclose(margin["score"], [0.5, -0.2, -0.7, -0.8], atol=1e-6)
    # AUM over epochs 1 and 2: margins (0.4, 0.8), (0.1, -0.5), (0.5, 0.7), (0.7, 0.2).
    aum = rank("aum")
    assert aum["index"].tolist() == [1, 3, 0, 2]  # 0 and 2 tie at 0.6: the lower index first
    np.testing.assert_allclose(aum["score"], [0.2, -0.45, -0.6, -0.6], atol=1e-6)
    # Cartography: confidence (0.75, 0.35, 0.75, 0.7), variability (0.15, 0.15, 0.05, 0.1);
    # items 0 and 2 tie on confidence: the less variable (2) first.
    carto = rank("cartography")
    assert carto["index"].tolist() == [1, 3, 2, 0]
    table = workflows.cartography(snaps)
    np.testing.assert_allclose(table["confidence"], [0.75, 0.35, 0.75, 0.7], atol=1e-6)
    np.testing.assert_allclose(table["variability"], [0.15, 0.15, 0.05, 0.1], atol=1e-6)
    np.testing.assert_allclose(table["correctness"], [1.0, 0.5, 1.0, 1.0])
    # Epoch 1 alone: AUM is the margin of epoch 1.
    np.testing.assert_allclose(
        rank("aum", epoch=1).sort_values("index")["score"], [-0.4, -0.1, -0.5, -0.7], atol=1e-6
    )
    with pytest.raises(labkit.ConfigError, match="epoch 0 is before any training"):
        rank("aum", epoch=0)
    with pytest.raises(labkit.ConfigError, match="unknown ranking 'aum2'; choose one of"):
        rank("aum2")


def test_the_neighbour_ranking_counts_neighbours_labelled_otherwise():
    """Two tight groups; item 2 sits in group b but is labelled a: all its neighbours say b."""
    emb = np.array([[1, 0], [0.99, 0.1], [0.05, 1], [0, 1], [0.1, 0.99]], np.float32)
    labels = [0, 0, 0, 1, 1]
    probs = np.full((1, 5, 2), 0.5, np.float32)
    probs[0, 2] = [0.45, 0.55]
    snaps = _dynamics(labels, probs, embeddings=emb[None])
    ranked = workflows.label_error_ranking(snaps, method="neighbours", k=2)
    # Neighbours (k = 2): item 2 -> 3, 4 (both b): 1.0. Items 0, 1 -> each other and 4 (b);
    # item 3 -> 2 (a), 4; item 4 -> 3, 2 (a): 0.5 each, tied, then by p_label (0.5), index.
    assert ranked["index"].tolist() == [2, 0, 1, 3, 4]
    assert ranked["suggested"].tolist()[0] == "b"
    np.testing.assert_allclose(ranked["score"], [1, 0.5, 0.5, 0.5, 0.5])


def test_the_probability_orderings_are_cleanlabs(digits_run):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    _, snaps = digits_run
    rng = np.random.default_rng(1)
    labels = snaps.labels.copy()
    labels[rng.choice(len(labels), 45, replace=False)] = rng.integers(0, 10, 45)
    noisy = labkit.Snapshots(**{**vars(snaps), "labels": labels})
    for e in (1, -1):
        probs = np.asarray(snaps.probabilities[e], np.float32)
        for ours, theirs in (
            ("self_confidence", "self_confidence"),
            ("margin", "normalized_margin"),
        ):
            quality = get_label_quality_scores(labels, probs, method=theirs)
            expected = np.lexsort((np.arange(len(labels)), quality))
            got = workflows.label_error_ranking(noisy, method=ours, epoch=e)["index"]
            assert got.tolist() == expected.tolist(), (ours, e)
        flagged = find_label_issues(
            labels,
            probs,
            filter_by="confident_learning",
            return_indices_ranked_by="self_confidence",
        )
        got = workflows.label_error_ranking(noisy, method="confident_learning", epoch=e)
        conf = probs[np.arange(len(labels)), labels]
        head = got["index"].to_numpy()[: len(flagged)]
        assert sorted(head) == sorted(flagged) and list(conf[head]) == list(conf[flagged])
        assert len(got) == len(labels) and sorted(got["index"]) == list(range(len(labels)))


@pytest.fixture(scope="module")
def noisy_digits():
    data = labkit.load_dataset("digits", label_noise=0.1)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    return labkit.train(model, data, epochs=10, progress=False)


def test_on_flipped_digits_the_table_shows_which_ranking_finds_the_flips(noisy_digits, capsys):
    snaps = noisy_digits
    flips = int(snaps.flipped.sum())
    assert flips == 45
    table = workflows.label_error_table(snaps, k=2 * flips)
    with capsys.disabled():
        print(
            "\n"
            + table.pivot(index="method", columns="epoch", values="recall").round(2).to_string()
        )
    assert set(table["method"]) == set(workflows.RANKINGS)
    last = table[table["epoch"] == snaps.epochs].set_index("method")
    best = last["recall"].max()
    assert best > 0.8  # most flips within the first 2 x flips items
    assert (last["found"] / flips == last["recall"]).all() and (last["k"] == 90).all()
    # Training dynamics need trained epochs: none at epoch 0, every other method there.
    at0 = table[table["epoch"] == 0]
    assert set(at0["method"]) == set(workflows.RANKINGS) - {"aum", "cartography"}
    # The data map: one dot per item, the flips ringed.
    fig = labkit.plots.cartography(snaps)
    dots, rings = fig.axes[0].collections[:2]
    assert len(dots.get_offsets()) == snaps.n_probe and len(rings.get_offsets()) == flips
    assert "epochs 1..10" in fig.axes[0].get_title()
    with pytest.raises(labkit.LabkitError, match="only a run with label_noise"):
        workflows.label_error_table(labkit.Snapshots(**{**vars(snaps), "flipped": None}))


def test_chunked_neighbours_are_the_exact_ones_and_the_approximate_agree():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 64))
    x = (centres[rng.integers(0, 10, 10_000)] + 0.8 * rng.normal(size=(10_000, 64))).astype(
        np.float32
    )
    exact, cos = neighbours.cosine_neighbours(x, 10, exact=True)
    assert neighbours.BLOCK_NUMBERS // len(x) < len(x)  # more than one block of rows
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.arange(0, len(x), 7)  # from every block: a full similarity matrix for them
    full = unit[rows] @ unit.T
    full[np.arange(len(rows)), rows] = -np.inf
    assert np.array_equal(exact[rows], np.argsort(-full, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(cos[rows], np.sort(full, axis=1)[:, ::-1][:, :10], atol=1e-5)
    approx, _ = neighbours.cosine_neighbours(x, 10, exact=False)
    same = (np.sort(approx, axis=1) == np.sort(exact, axis=1)).all(axis=1).mean()
    assert same >= 0.95, same
    assert neighbours.EXACT_MAX >= 60_000  # the whole training split: exact, in seconds


MEMORY = """
import resource, sys
import numpy as np
import labkit
from labkit.analysis import workflows
n, c, epochs = 60_000, 10, 3
rng = np.random.default_rng(0)
labels = rng.integers(0, c, n)
centres = rng.normal(size=(c, 128)).astype(np.float32)
noise = [rng.normal(size=(n, 128)).astype(np.float32) for _ in range(epochs + 1)]
emb = np.stack([centres[labels] + z for z in noise])
del noise
probs = rng.dirichlet(np.ones(c), size=(epochs + 1, n)).astype(np.float32)
snaps = labkit.Snapshots(embeddings={"embed": emb}, labels=labels, predictions=probs.argmax(2),
    probabilities=probs, titles=[f"#{i}" for i in range(n)], class_names=[str(j) for j in range(c)])
del emb, probs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for method in workflows.RANKINGS:
    ranked = workflows.label_error_ranking(snaps, method=method)
    assert len(ranked) == n
workflows.label_error_candidates(snaps)
workflows.similar(snaps, 0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


@pytest.mark.slow
def test_every_ranking_of_60000_points_stays_within_two_gigabytes():
    """Peak resident memory above the snapshots' own: a full similarity matrix alone would be
    14 GB."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY], capture_output=True, text=True, timeout=600, check=True
    )
    grown_mb = float(out.stdout.split()[-1])
    assert grown_mb < 2048, grown_mb


def test_the_whole_split_is_the_probe_for_both_splits(tmp_path, capsys):
    train = labkit.load_dataset("digits", probe_size="all", probe_split="train", label_noise=0.1)
    assert train.probe_index.tolist() == list(range(len(train.y_train)))
    assert int(train.flipped.sum()) == round(0.1 * len(train.y_train))  # the flips it trains on
    test = labkit.load_dataset("digits", probe_size="all")
    assert len(test.probe_index) == len(test.y_test) == 450
    with pytest.raises(labkit.DataError, match="'all' \\(the whole split\\) or None, got 'every'"):
        labkit.load_dataset("digits", probe_size="every")
    from labkit import cli

    out = tmp_path / "whole"
    args = ["run", "--probe-size", "all", "--probe-split", "train", "--epochs", "1"]
    assert cli.main([*args, "--no-figures", "--no-progress", "--out", str(out)]) == 0
    snaps = labkit.Snapshots.load(out)
    assert snaps.n_probe == len(train.y_train)
    ranked = workflows.label_error_ranking(snaps, method="aum")
    assert sorted(ranked["index"]) == list(range(snaps.n_probe))

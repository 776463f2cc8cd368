"""The labs' hand-written exercises agree with the kit they are checked against.

Each exercise's model solution is taken from its lab source (the functions its solution cell
defines), so what is tested is exactly what the solution notebooks hold and the student
notebooks ask for.
"""

from __future__ import annotations

import ast
import copy
import json
import sys
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import labkit
from labkit import align, metrics, workflows
from labkit.analysis.reduce import project

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import authoring  # noqa: E402


def solution(stem: str, cell_id: str) -> dict:
    """The imports, functions and classes a source's exercise cell defines, as a namespace."""
    nb = authoring.read_source(stem)
    cell = next(c for c in nb.cells if c.metadata["id"] == cell_id)
    assert "exercise" in cell.metadata, f"{stem}: cell {cell_id} is not an exercise"
    tree = ast.parse(cell.source)
    kinds = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    keep = [n for n in tree.body if isinstance(n, kinds)]
    assert any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in keep), (
        f"{cell_id} defines no function or class"
    )
    namespace = {
        "np": np,
        "pd": pd,
        "torch": torch,
        "labkit": labkit,
        "align": align,
        "metrics": metrics,
        "workflows": workflows,
    }
    exec(compile(ast.Module(keep, type_ignores=[]), f"{stem}:{cell_id}", "exec"), namespace)
    return namespace


def visible_test(stem: str, cell_id: str) -> str:
    """The part of a lab's test cell that a student sees (before its hidden tests)."""
    nb = authoring.read_source(stem)
    cell = next(c for c in nb.cells if c.metadata["id"] == cell_id)
    assert "test" in cell.metadata, f"{stem}: cell {cell_id} is not a test cell"
    return cell.source.split("### BEGIN HIDDEN TESTS")[0]


def passes(stem: str, cell_id: str, namespace: dict) -> None:
    """Run the visible part of a lab's test cell in ``namespace``; an AssertionError fails."""
    exec(compile(visible_test(stem, cell_id), f"{stem}:{cell_id}", "exec"), dict(namespace))


def refusal(stem: str, cell_id: str, namespace: dict) -> str:
    """What a lab's visible test says to a wrong answer: the message of the AssertionError it
    raises when run in ``namespace`` (the lab's variables, with the wrong answer in them)."""
    try:
        exec(compile(visible_test(stem, cell_id), f"{stem}:{cell_id}", "exec"), dict(namespace))
    except AssertionError as err:
        return str(err)
    raise AssertionError(f"{stem}:{cell_id} passed a wrong answer")


# --- Lab 1: the forward hook and the projector files ------------------------------------


def test_the_hand_written_hook_captures_what_labkit_capture_does(digits):
    capture_by_hand = solution("01_projector_mnist", "hook")["capture_by_hand"]
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes, seed=0)
    layer = labkit.penultimate_layer(model)
    x = digits.x_probe[:64]
    mine = capture_by_hand(model, layer, x)
    with labkit.capture(model, [layer]) as acts, torch.no_grad():
        model.eval()
        model(x)
    assert mine.shape == acts[layer].shape == (64, 64)
    assert not mine.requires_grad
    assert torch.equal(mine, acts[layer])
    module = dict(model.named_modules())[layer]
    assert len(module._forward_hooks) == 0
    with pytest.raises(RuntimeError):  # a forward pass that fails leaves no hook behind
        capture_by_hand(model, layer, torch.zeros(2, 3, 5, 5))
    assert len(module._forward_hooks) == 0


def _served(folder: Path, port: int) -> dict:
    """What the projector's HTTP API serves of a folder's last embedding (run ".")."""
    server = labkit.start_tensorboard(folder, port=port)
    try:

        def get(path, **params):
            return server.get(f"{path}?{urllib.parse.urlencode({'run': '.', **params})}")

        info = json.loads(get("/data/plugin/projector/info"))
        last = info["embeddings"][-1]
        name = last["tensorName"]
        tensor = np.frombuffer(get("/data/plugin/projector/tensor", name=name), np.float32)
        meta = get("/data/plugin/projector/metadata", name=name).decode().splitlines()
        return {
            "names": [e["tensorName"] for e in info["embeddings"]],
            "shape": last["tensorShape"],
            "tensor": tensor.reshape(last["tensorShape"]),
            "metadata": meta,
        }
    finally:
        server.stop()


def test_hand_written_projector_files_load_in_tensorboard_like_the_kits(digits_run, tmp_path):
    write_projector_by_hand = solution("01_projector_mnist", "projector")["write_projector_by_hand"]
    _, snaps = digits_run
    vectors = snaps.layer()[-1]
    titles = list(snaps.titles)
    titles[0] = "a\ttab and a\nnewline"
    write_projector_by_hand(
        tmp_path / "hand", vectors, list(snaps.label_names), titles, "by_hand/last_epoch"
    )
    labkit.write_projector(snaps, tmp_path / "kit")
    hand, kit = _served(tmp_path / "hand", 6126), _served(tmp_path / "kit", 6127)
    assert hand["names"] == ["by_hand/last_epoch"]
    assert hand["shape"] == kit["shape"] == list(vectors.shape)
    np.testing.assert_allclose(hand["tensor"], vectors, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hand["tensor"], kit["tensor"], rtol=1e-6, atol=1e-6)
    assert (
        hand["metadata"][0].split("\t")[:2]
        == kit["metadata"][0].split("\t")[:2]
        == ["label", "title"]
    )
    assert len(hand["metadata"]) == len(kit["metadata"]) == len(vectors) + 1
    assert hand["metadata"][1].split("\t") == [snaps.label_names[0], "a tab and a newline"]
    for h, k in zip(hand["metadata"][2:], kit["metadata"][2:], strict=True):
        assert h.split("\t") == k.split("\t")[:2]  # the kit adds prediction, correct, ...


# --- Lab 2: TF-IDF words and the kNN vote ------------------------------------------------


def test_top_words_and_knn_accuracy_by_hand():
    ns = solution("02_wikipedia_topics", "top-words")
    x = np.array(
        [[0.9, 0.1, 0.0, 0.0], [0.7, 0.3, 0.0, 0.1], [0.0, 0.2, 0.8, 0.4], [0.1, 0.0, 0.6, 0.9]]
    )
    y = np.array([0, 0, 1, 1])
    words = ns["top_words"](x, y, ["goal", "team", "star", "orbit"], ["sport", "space"], k=2)
    assert words == {"sport": ["goal", "team"], "space": ["star", "orbit"]}

    knn_accuracy = solution("02_wikipedia_topics", "knn")["knn_accuracy"]
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 12))
    xs = np.vstack([c + 0.9 * rng.normal(size=(30, 12)) for c in centres])
    ys = np.repeat(np.arange(3), 30)
    loo = cross_val_score(
        KNeighborsClassifier(5, metric="cosine", algorithm="brute"), xs, ys, cv=LeaveOneOut()
    ).mean()
    assert knn_accuracy(xs, ys, k=5) == pytest.approx(loo, abs=0.02)  # ties may differ
    assert knn_accuracy(np.eye(4)[[0, 0, 1, 1]] + 1e-3, np.array([0, 0, 1, 1]), k=1) == 1.0


def test_the_knn_check_accepts_any_fixed_tie_rule():
    """A vote whose ties go to the nearest neighbour's topic is as valid as the smallest
    topic's: the whole knn-check cell, hidden tests too, passes both."""
    right = solution("02_wikipedia_topics", "knn")["knn_accuracy"]

    def nearest_wins_ties(x, y, k=5):
        x = np.asarray(x, dtype=np.float64)
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -np.inf)
        near = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        pred = []
        for votes in y[near]:
            counts = np.bincount(votes)
            best = np.flatnonzero(counts == counts.max())
            pred.append(next(v for v in votes if v in best))  # the nearest of the tied topics
        return float((np.array(pred) == y).mean())

    rng = np.random.default_rng(0)
    xs = np.vstack([c + 0.9 * rng.normal(size=(30, 12)) for c in rng.normal(size=(3, 12))])
    ys = np.repeat(np.arange(3), 30)
    epochs = np.stack([rng.normal(size=xs.shape), xs])
    data = SimpleNamespace(x_probe=torch.tensor(xs))
    snaps = SimpleNamespace(labels=ys, layer=lambda name=None: epochs)
    nb = authoring.read_source("02_wikipedia_topics")
    cell = next(c for c in nb.cells if c.metadata["id"] == "knn-check").source
    for knn_accuracy in (right, nearest_wins_ties):
        ns = {
            "np": np,
            "data": data,
            "snaps": snaps,
            "knn_accuracy": knn_accuracy,
            "knn_tfidf": knn_accuracy(xs, ys),
            "knn_embedding": knn_accuracy(epochs[-1], ys),
        }
        exec(compile(cell, "knn-check", "exec"), ns)


def test_top_words_check_refuses_the_mean_of_each_articles_terms():
    # axis=1 averages every article over its terms: k distinct words still come out, all of
    # them real terms, so only a case with a known answer tells the slip apart.
    def top_words_slipped(x, y, terms, class_names, k=10):
        return {
            name: [terms[j] for j in np.argsort(-x[y == c].mean(axis=1), kind="stable")[:k]]
            for c, name in enumerate(class_names)
        }

    top_words = solution("02_wikipedia_topics", "top-words")["top_words"]
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 40)), np.repeat(np.arange(3), 20)
    terms, names = [f"word{j}" for j in range(40)], ["P", "Q", "R"]
    lab = {"np": np, "pd": pd, "data": SimpleNamespace(class_names=names), "TERMS": terms}
    passes(
        "02_wikipedia_topics",
        "top-words-check",
        {**lab, "top_words": top_words, "words": top_words(x, y, terms, names)},
    )
    slipped = {
        **lab,
        "top_words": top_words_slipped,
        "words": top_words_slipped(x, y, terms, names),
    }
    message = refusal("02_wikipedia_topics", "top-words-check", slipped)
    assert "x[y == c].mean(axis=0)" in message and "axis=1 would average each article" in message


# --- Lab 4: an SVD projection and NC1 ----------------------------------------------------


def test_svd_projection_and_nc1_by_hand_match_the_kit(deep_run):
    _, snaps = deep_run
    svd_projection = solution("04_layers_neural_collapse", "svd")["svd_projection"]
    nc1_by_hand = solution("04_layers_neural_collapse", "nc1")["nc1_by_hand"]
    for name in snaps.layer_names:
        x = snaps.layer(name)[-1]
        np.testing.assert_allclose(
            svd_projection(np.asarray(x, np.float64)),
            project(np.asarray(x, np.float64), "pca"),
            atol=1e-6,
        )
        for epoch in (0, -1):
            h = snaps.layer(name)[epoch]
            assert nc1_by_hand(h, snaps.labels) == pytest.approx(
                metrics.neural_collapse(h, snaps.labels)["nc1"], rel=1e-9, abs=1e-12
            )


def test_the_nc1_check_sees_the_slips_that_only_unbalanced_classes_show(deep_run):
    _, snaps = deep_run
    right = solution("04_layers_neural_collapse", "nc1")["nc1_by_hand"]

    def nc1_with(h, y, *, grand_mean_of_points=False, weighted=False):
        h, y = np.asarray(h, np.float64), np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        means = np.stack([h[y == c].mean(axis=0) for c in classes])
        grand = h.mean(axis=0) if grand_mean_of_points else means.mean(axis=0)
        between = means - grand
        within = h - means[np.searchsorted(classes, y)]
        sigma_w = within.T @ within / len(h)
        w = counts / counts.sum() if weighted else np.full(len(classes), 1 / len(classes))
        sigma_b = (between * w[:, None]).T @ between
        return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / len(classes))

    lab = {"np": np, "snaps": snaps, "metrics": metrics}
    for wrong, words in (
        (lambda h, y: nc1_with(h, y, grand_mean_of_points=True), "not of all n points"),
        (lambda h, y: nc1_with(h, y, weighted=True), "each counted once, not weighted"),
    ):
        said = refusal("04_layers_neural_collapse", "nc1-check", {**lab, "nc1_by_hand": wrong})
        assert words in said, said
    passes("04_layers_neural_collapse", "nc1-check", {**lab, "nc1_by_hand": right})
    passes("04_layers_neural_collapse", "nc1-check", {**lab, "nc1_by_hand": nc1_with})


def test_the_svd_layers_check_looks_at_what_each_panel_shows(deep_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, snaps = deep_run
    svd_projection = solution("04_layers_neural_collapse", "svd")["svd_projection"]

    def draw(epoch=-1, colour=True, order=None, cmap="tab10"):
        names = order or snaps.layer_names
        fig, axes = plt.subplots(1, len(names), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            xy = svd_projection(snaps.layer(name)[epoch])
            c = snaps.labels if colour else None
            ax.scatter(xy[:, 0], xy[:, 1], c=c, cmap=cmap if colour else None, vmin=0, vmax=9)
            ax.set_title(name)
        return fig

    lab = {"np": np, "snaps": snaps, "svd_projection": svd_projection}
    stem, cell = "04_layers_neural_collapse", "svd-layers-check"
    try:
        assert "shows epoch 0" in refusal(stem, cell, {**lab, "fig": draw(epoch=0)})
        assert "not coloured by the labels" in refusal(
            stem, cell, {**lab, "fig": draw(colour=False)}
        )
        backwards = list(reversed(snaps.layer_names))
        assert "in the order of snaps.layer_names" in refusal(
            stem, cell, {**lab, "fig": draw(order=backwards)}
        )
        assert "cmap='tab10'" in refusal(stem, cell, {**lab, "fig": draw(cmap="viridis")})
        passes(stem, cell, {**lab, "fig": draw()})
    finally:
        plt.close("all")


def _probe_lab(snaps, probe_accuracy, *, epoch=-1, target=0.95, pick=None) -> dict:
    """Lab 4's probe exercise answered with ``probe_accuracy``, as the student's cell ends."""
    scores = pd.Series(
        {n: probe_accuracy(snaps.layer(n)[epoch], snaps.labels) for n in snaps.layer_names}
    )
    reached = scores.index[scores >= target]
    shallowest = pick if pick is not None else (reached[0] if len(reached) else None)
    return {
        "np": np,
        "pd": pd,
        "snaps": snaps,
        "PROBE_TARGET": target,
        "probe_accuracy": probe_accuracy,
        "probe_scores": scores,
        "shallowest": shallowest,
    }


def _whole_probe_cell(ns: dict) -> None:
    nb = authoring.read_source("04_layers_neural_collapse")
    cell = next(c for c in nb.cells if c.metadata["id"] == "probe-check")
    exec(compile(cell.source, "probe-check", "exec"), dict(ns))


def test_any_held_out_linear_probe_gets_full_marks_and_the_layer_follows_from_it(deep_run):
    from sklearn.svm import LinearSVC

    _, snaps = deep_run
    solution_probe = solution("04_layers_neural_collapse", "probe")["probe_accuracy"]

    def nearest_class_mean(features, labels):  # fitted on one half, scored on the other
        rng = np.random.default_rng(0)
        order = rng.permutation(len(labels))
        fit, held = order[: len(order) // 2], order[len(order) // 2 :]
        classes = np.unique(labels)
        means = np.stack([features[fit][labels[fit] == c].mean(0) for c in classes])
        dist = ((features[held][:, None] - means[None]) ** 2).sum(-1)
        return float((classes[dist.argmin(1)] == labels[held]).mean())

    def linear_svm(features, labels):
        from sklearn.model_selection import cross_val_score

        return float(
            cross_val_score(LinearSVC(C=0.1, max_iter=5000), features, labels, cv=3).mean()
        )

    for probe in (solution_probe, metrics.linear_probe_accuracy, nearest_class_mean, linear_svm):
        ns = _probe_lab(snaps, probe)
        _whole_probe_cell(ns)
    # Different probes may name different layers; each is graded on its own numbers.
    picked = {
        p.__name__: _probe_lab(snaps, p)["shallowest"] for p in (solution_probe, nearest_class_mean)
    }
    assert all(name in snaps.layer_names for name in picked.values())


def test_the_probe_check_names_a_probe_scored_on_its_own_points_and_a_wrong_pick(deep_run):
    from sklearn.linear_model import LogisticRegression

    _, snaps = deep_run
    right = solution("04_layers_neural_collapse", "probe")["probe_accuracy"]
    stem, cell = "04_layers_neural_collapse", "probe-check"

    def on_its_own_points(features, labels):  # memory, not ease
        probe = LogisticRegression(max_iter=2000).fit(features, labels)
        return float(probe.score(features, labels))

    said = refusal(stem, cell, _probe_lab(snaps, on_its_own_points))
    assert "scored on the points it was fitted on" in said
    said = refusal(stem, cell, _probe_lab(snaps, right, pick="head"))
    assert "by your own scores the first layer" in said
    ns = _probe_lab(snaps, right, epoch=0)
    assert "each layer's last epoch" in refusal(stem, cell, ns)
    ns = _probe_lab(snaps, right)
    ns["probe_scores"] = ns["probe_scores"].iloc[::-1]
    assert "in the order" in refusal(stem, cell, ns)

    def unseeded(features, labels):  # a new split on every call
        from sklearn.model_selection import train_test_split

        a, b = train_test_split(np.arange(len(labels)), test_size=0.5, stratify=labels)
        fit = LogisticRegression(max_iter=2000).fit(features[a], labels[a])
        return float(fit.score(features[b], labels[b]))

    def in_order_half(features, labels):  # the second half holds classes the fit never saw
        half = len(labels) // 2
        classes = np.unique(labels[:half])
        means = np.stack([features[:half][labels[:half] == c].mean(0) for c in classes])
        dist = ((features[half:, None] - means[None]) ** 2).sum(-1)
        return float((classes[dist.argmin(1)] == labels[half:]).mean())

    unseeded_said = refusal(stem, cell, {**_probe_lab(snaps, right), "probe_accuracy": unseeded})
    assert "fix the random_state" in unseeded_said or "classes the fit never saw" in unseeded_said
    said = refusal(stem, cell, _probe_lab(snaps, in_order_half))
    assert "classes the fit never saw; shuffle it" in said


def _geometry_table(silhouettes: dict[str, list[float]]) -> pd.DataFrame:
    """A table shaped like metrics.geometry's: one row per layer and epoch."""
    return pd.DataFrame(
        [
            {"layer": layer, "epoch": e, "nc1": 1.0 / (e + 1), "silhouette": v, "knn_acc": 0.9}
            for layer, values in silhouettes.items()
            for e, v in enumerate(values)
        ]
    )


def test_depth_check_refuses_the_nan_that_diff_starts_with_and_other_epochs():
    # The silhouette rises at every step at the last epoch: a .diff() kept with its leading
    # NaN says False, and the visible test says why.
    table = _geometry_table({"input": [0.3, 0.2], "hidden1": [0.1, 0.4], "hidden2": [0.2, 0.6]})
    lab = {
        "np": np,
        "pd": pd,
        "table": table,
        "snaps": SimpleNamespace(layer_names=["input", "hidden1", "hidden2"], epochs=1),
    }
    last = table[table.epoch == 1].set_index("layer")[["nc1", "silhouette", "knn_acc"]]
    passes(
        "04_layers_neural_collapse", "depth-check", {**lab, "last": last, "better_with_depth": True}
    )
    nan_slip = bool((last["silhouette"].diff() > 0).all())
    assert nan_slip is False
    message = refusal(
        "04_layers_neural_collapse",
        "depth-check",
        {**lab, "last": last, "better_with_depth": nan_slip},
    )
    assert "NaN" in message and ".dropna()" in message and "[0.2, 0.2]" in message
    first = table[table.epoch == 0].set_index("layer")[["nc1", "silhouette", "knn_acc"]]
    message = refusal(
        "04_layers_neural_collapse",
        "depth-check",
        {**lab, "last": first, "better_with_depth": False},
    )
    assert "not the last epoch's values" in message and "table.epoch == 1" in message


# --- Lab 5: Orthogonal Procrustes and linear CKA -----------------------------------------


def test_procrustes_and_cka_by_hand_match_the_kit():
    procrustes_by_hand = solution("05_grand_tour_alignment", "procrustes")["procrustes_by_hand"]
    cka = solution("05_grand_tour_alignment", "cka")["linear_cka_by_hand"]
    rng = np.random.default_rng(1)
    for d in (2, 15):
        a, b = rng.normal(size=(200, d)), rng.normal(size=(200, d))
        np.testing.assert_allclose(
            procrustes_by_hand(a, b), align.procrustes(a, b).transform(a), atol=1e-9
        )
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        copy = 3.0 * a @ q + 5.0
        np.testing.assert_allclose(procrustes_by_hand(a, copy), copy, atol=1e-9)
        assert cka(a, b) == pytest.approx(metrics.linear_cka(a, b), abs=1e-9)
        assert cka(a, copy) == pytest.approx(1.0, abs=1e-9)


def test_two_models_check_refuses_a_map_per_epoch_the_wrong_direction_and_a_partial_fit():
    procrustes_by_hand = solution("05_grand_tour_alignment", "procrustes")["procrustes_by_hand"]
    cka = solution("05_grand_tour_alignment", "cka")["linear_cka_by_hand"]
    rng = np.random.default_rng(4)
    traj_cnn = np.cumsum(rng.normal(size=(4, 40, 2)), axis=0)  # points that move over epochs
    traj_mlp = traj_cnn @ np.array([[0.0, -1.0], [1.0, 0.0]]) * 2 + rng.normal(size=(4, 40, 2))
    emb_cnn, emb_mlp = rng.normal(size=(4, 40, 6)), rng.normal(size=(4, 40, 5))
    lab = {
        "np": np,
        "traj_cnn": traj_cnn,
        "traj_mlp": traj_mlp,
        "linear_cka_by_hand": cka,
        "snaps": SimpleNamespace(layer=lambda name=None: emb_cnn),
        "snaps_mlp": SimpleNamespace(layer=lambda name=None: emb_mlp),
        "cka": cka(emb_cnn[-1], emb_mlp[-1]),
    }

    def stacked(source, target):
        return procrustes_by_hand(source.reshape(-1, 2), target.reshape(-1, 2)).reshape(
            source.shape
        )

    right = stacked(traj_mlp, traj_cnn)
    np.testing.assert_allclose(right, align.align_runs(traj_cnn, traj_mlp), atol=1e-9)
    passes("05_grand_tour_alignment", "two-models-check", {**lab, "mlp_in_cnn_frame": right})
    per_epoch = np.stack(
        [procrustes_by_hand(m, c) for m, c in zip(traj_mlp, traj_cnn, strict=True)]
    )
    backwards = stacked(traj_cnn, traj_mlp)  # the first model moved into the MLP's frame
    for wrong in (per_epoch, backwards):
        message = refusal(
            "05_grand_tour_alignment", "two-models-check", {**lab, "mlp_in_cnn_frame": wrong}
        )
        assert "not traj_mlp moved by one map" in message and "not one map per epoch" in message
    # One map, but fitted on the last epoch only: not the best for the whole trajectory.
    fit = align.procrustes(traj_mlp[-1], traj_cnn[-1])
    last_only = fit.transform(traj_mlp.reshape(-1, 2)).reshape(traj_mlp.shape)
    message = refusal(
        "05_grand_tour_alignment", "two-models-check", {**lab, "mlp_in_cnn_frame": last_only}
    )
    assert "on every epoch's points at once" in message
    message = refusal(
        "05_grand_tour_alignment",
        "two-models-check",
        {**lab, "mlp_in_cnn_frame": right, "cka": cka(emb_cnn[0], emb_mlp[0])},
    )
    assert "last-epoch embeddings" in message


# --- Lab 6: cosine similarity search and neighbour agreement -----------------------------


def test_similarity_search_and_agreement_by_hand(digits_run):
    _, snaps = digits_run
    ns = solution("06_working_with_embeddings", "search")
    emb = snaps.layer()[-1]
    for query in (0, 17, len(emb) - 1):
        mine = ns["cosine_neighbours"](emb, query, k=8)
        assert list(mine) == list(workflows.similar(snaps, query, k=8)["index"])
    agreement = solution("06_working_with_embeddings", "agreement")["neighbour_agreement"]
    shares = agreement(emb, snaps.labels, k=8)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    nearest = np.argsort(-cos, axis=1, kind="stable")[:, :8]
    np.testing.assert_allclose(shares, (snaps.labels[nearest] == snaps.labels[:, None]).mean(1))


# --- Lab 1: standardisation, the CNN and the training loop written by hand --------------


@pytest.fixture(scope="module")
def raw_digits():
    return labkit.load_dataset("digits", normalise=False)


def test_hand_standardisation_is_the_kits_and_wrong_statistics_are_named(digits, raw_digits):
    standardise = solution("01_projector_mnist", "standardise")["standardise"]
    x_train, x_test = standardise(raw_digits.x_train, raw_digits.x_test)
    torch.testing.assert_close(x_train, digits.x_train, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_test, digits.x_test, atol=1e-5, rtol=1e-5)
    namespace = {"torch": torch, "raw": raw_digits}

    def both_splits(a, b):  # statistics of the training and test images together
        x = torch.cat([a, b])
        m, s = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True) + 1e-6
        return (a - m) / s, (b - m) / s

    def own_statistics(a, b):  # each split with its own mean and std
        return standardise(a, a)[0], standardise(b, b)[0]

    def per_pixel(a, b):  # one mean and std per pixel
        m, s = a.mean(dim=0, keepdim=True), a.std(dim=0, keepdim=True) + 1e-6
        return (a - m) / s, (b - m) / s

    def said(wrong) -> str:
        return refusal(
            "01_projector_mnist", "standardise-check", {**namespace, "standardise": wrong}
        )

    assert "compute them once, from x_train" in said(both_splits)
    assert "apply the same two numbers to x_test" in said(own_statistics)
    assert "one mean and one std per channel" in said(per_pixel)


def _cnn_namespace(digits, cls) -> dict:
    return {"torch": torch, "nn": torch.nn, "labkit": labkit, "data": digits, "SmallCNN": cls}


def test_the_hand_written_cnn_and_its_plausible_mistakes(digits):
    SmallCNN = solution("01_projector_mnist", "cnn")["SmallCNN"]
    net = SmallCNN(digits.input_shape, digits.n_classes)
    assert labkit.layer_names(net)[:3] == ["block1", "block1.0", "block1.1"]
    assert labkit.penultimate_layer(net) == "embed"
    with labkit.capture(net, ["embed"]) as acts, torch.no_grad():
        assert net.eval()(digits.x_probe[:5]).shape == (5, 10)
    assert acts["embed"].shape == (5, 64)
    nn = torch.nn

    class FlattenedForMnist(SmallCNN):  # the Linear sized for 28x28 images, whatever the data
        def __init__(self, input_shape, n_classes):
            super().__init__(input_shape, n_classes)
            self.embed[1] = nn.Linear(16 * 7 * 7, 64)

    class NoReluInEmbed(SmallCNN):
        def __init__(self, input_shape, n_classes):
            super().__init__(input_shape, n_classes)
            self.embed = self.embed[:2]

    class PoolsOnce(SmallCNN):  # block2 without its pooling, the Linear sized to match
        def __init__(self, input_shape, n_classes):
            super().__init__(input_shape, n_classes)
            _, h, w = input_shape
            self.block2 = self.block2[:3]
            self.embed[1] = nn.Linear(16 * (h // 2) * (w // 2), 64)

    said = refusal("01_projector_mnist", "cnn-check", _cnn_namespace(digits, FlattenedForMnist))
    assert "embed's Linear takes 16 * (height // 4) * (width // 4) numbers" in said
    said = refusal("01_projector_mnist", "cnn-check", _cnn_namespace(digits, NoReluInEmbed))
    assert "end embed with nn.ReLU()" in said
    said = refusal("01_projector_mnist", "cnn-check", _cnn_namespace(digits, PoolsOnce))
    assert "block2's output has shape" in said and "nn.MaxPool2d(2) at the end" in said


def test_the_detach_answer_quotes_what_the_demonstration_prints_on_mnist_and_cifar10(capsys):
    """Lab 1's (and Lab 3's) answer on .detach() quotes the demonstration's graph and bytes
    for 256 images of MNIST's and CIFAR-10's shapes, and what 2000 probe images at 11
    epochs would hold: those bytes x 2000/256 x 11. The sizes depend on the shapes alone."""
    import re

    nb = authoring.read_source("01_projector_mnist")
    cells = {c.metadata["id"]: c.source for c in nb.cells}
    answer = " ".join(cells["a-detach"].split())
    SmallCNN = solution("01_projector_mnist", "cnn")["SmallCNN"]
    for shape, name in (((1, 28, 28), "MNIST"), ((3, 32, 32), "CIFAR-10")):
        data = SimpleNamespace(x_probe=torch.randn(256, *shape))
        net = SmallCNN(shape, 10)
        exec(cells["detach-demo"], {"torch": torch, "net": net, "data": data, "layer": "embed"})
        printed = capsys.readouterr().out
        nodes, mib = re.search(
            r"output: .*graph: (\d+) nodes, ([\d.]+) MiB saved", printed
        ).groups()
        assert f"autograd graph ({nodes} nodes)" in answer
        gib = float(mib) * 2000 / 256 * 11 / 1024
        if name == "MNIST":
            assert f"about {float(mib):.0f} MiB on MNIST" in answer, (mib, answer)
            assert f"about {gib:.1f} GiB on MNIST" in answer, (gib, answer)
            per_epoch = float(mib) * 2000 / 256  # one more recording of the probe
            assert f"about {round(per_epoch, -2):.0f} MiB more with every epoch" in answer
        else:
            assert f"about {float(mib):.0f} MiB on CIFAR-10" in answer, (mib, answer)
            assert f"({gib:.1f} GiB on CIFAR-10)" in answer, (gib, answer)
        assert "the embedding itself: 0.06 MiB" in printed and "the 0.06 MiB" in answer


def test_the_views_check_accepts_any_neighbourhood_score_and_names_a_backwards_one(digits_run):
    _, snaps = digits_run
    last = snaps.layer()[-1]
    views = {"pca": project(last, "pca")}
    nb = authoring.read_source("01_projector_mnist")
    cell = next(c for c in nb.cells if c.metadata["id"] == "methods-check").source
    ns = solution("01_projector_mnist", "methods")

    def knn_overlap(x, view, k=10):  # the share of each point's k neighbours kept
        from sklearn.neighbors import NearestNeighbors

        def near(a):
            return NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a)[1][:, 1:]

        a, b = near(np.asarray(x, np.float64)), near(np.asarray(view, np.float64))
        return float(np.mean([len(set(r) & set(q)) / k for r, q in zip(a, b, strict=True)]))

    def lost(x, view):  # higher when more is lost
        return 1.0 - knn_overlap(x, view)

    for score, words in (
        (ns["neighbourhood_score"], None),
        (knn_overlap, None),
        (lost, "a view identical to the data should score 1"),
    ):
        lab = {
            "np": np,
            "labkit": labkit,
            "last": last,
            "views": views,
            "METHODS": ["pca"],
            "neighbourhood_score": score,
            "scores": {"pca": score(last, views["pca"])},
        }
        if words is None:
            exec(compile(cell, "methods-check", "exec"), lab)
        else:
            assert words in refusal("01_projector_mnist", "methods-check", lab)


def _train_by_hand():
    """Lab 1's model loop, with the model hook it calls (the notebook defines both)."""
    ns = solution("01_projector_mnist", "loop")
    ns["capture_by_hand"] = solution("01_projector_mnist", "hook")["capture_by_hand"]
    return ns["train_by_hand"]


def _hand_run(digits, train_by_hand, epochs: int):
    ns = solution("01_projector_mnist", "cnn")
    torch.manual_seed(0)
    net = ns["SmallCNN"](digits.input_shape, digits.n_classes)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    emb, history = train_by_hand(net, digits, epochs=epochs, lr=1e-3, seed=0)
    return ns["SmallCNN"], initial, emb, history, net


def test_the_hand_written_loop_starts_where_the_kit_does_and_learns_as_well(digits):
    SmallCNN, initial, emb, history, _ = _hand_run(digits, _train_by_hand(), epochs=8)
    start = SmallCNN(digits.input_shape, digits.n_classes)
    start.load_state_dict(initial)
    kit = labkit.train(start, digits, epochs=8, layers=["embed"], seed=0, progress=False)
    assert emb.shape == kit.layer("embed").shape == (9, 450, 64)
    # Epoch 0 is the same untrained network, recorded the same way.
    np.testing.assert_allclose(emb[0].numpy(), kit.layer("embed")[0], rtol=1e-5, atol=1e-5)
    # After 8 epochs both are trained; the hand loop (no schedule, AdamW's default weight
    # decay, fp32) ends within 5 points of the kit's test accuracy on digits.
    mine, theirs = history[-1]["test_acc"], kit.history[-1]["test_acc"]
    assert theirs > 0.9 and abs(mine - theirs) < 0.05, (mine, theirs)
    assert [row["epoch"] for row in history] == list(range(1, 9))


def test_a_loop_that_skips_epoch_0_is_told_to_record_it(digits):
    right = _train_by_hand()

    def no_epoch_0(net, data, epochs, lr, seed, batch_size=128):
        emb, history = right(net, data, epochs, lr, seed, batch_size)
        return emb[1:], history

    def no_step(net, data, epochs, lr, seed, batch_size=128):  # forgets optimizer.step()
        return right(net, data, epochs, 1e-12, seed, batch_size)

    def on_the_probe(net, data, epochs, lr, seed, batch_size=128):  # accuracy of the probe
        emb, history = right(net, data, epochs, lr, seed, batch_size)
        net.eval()
        with torch.no_grad():
            right_ones = (net(data.x_probe).argmax(1) == data.y_probe).float().mean().item()
        return emb, [*history[:-1], {**history[-1], "test_acc": right_ones}]

    # On digits the default probe is the whole test split: a smaller one tells them apart.
    sampled = labkit.load_dataset("digits", probe_size=200)
    for data, wrong, words in (
        (digits, no_epoch_0, "one snapshot of the whole probe set before training"),
        (digits, no_step, "each batch needs zero_grad(), backward() and step()"),
        (sampled, on_the_probe, "measure it on all of data.x_test and data.y_test"),
    ):
        assert words in refusal("01_projector_mnist", "loop-check", _loop_namespace(data, wrong))


def _loop_with(*edits: tuple[str, str]):
    """Lab 1's model loop with its source edited: each ``(old, new)`` replaced once."""
    nb = authoring.read_source("01_projector_mnist")
    source = next(c for c in nb.cells if c.metadata["id"] == "loop").source
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new, 1)
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    ns = {"torch": torch, "np": np}
    exec(compile(ast.Module(keep, type_ignores=[]), "loop-with-a-slip", "exec"), ns)
    ns["capture_by_hand"] = solution("01_projector_mnist", "hook")["capture_by_hand"]
    return ns["train_by_hand"]


def _loop_namespace(data, train_by_hand) -> dict:
    """The loop-check's variables after ``train_by_hand`` trained a SmallCNN on ``data``."""
    SmallCNN, initial, emb, history, net = _hand_run(data, train_by_hand, epochs=2)
    return {
        **_cnn_namespace(data, SmallCNN),
        "train_by_hand": train_by_hand,
        "hand_data": data,
        "hand_emb": emb,
        "hand_history": history,
        "initial": initial,
        "net": net,
        "HAND_EPOCHS": 2,
        "SEED": 0,
        "LR": 1e-3,
        "np": np,
    }


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("        net.train()\n", "", "call net.train() at the start of every epoch"),
        (
            '"train_loss": sum(losses) / len(losses)',
            '"train_loss": sum(losses)',
            "is the sum of its",
        ),
        (
            '"train_loss": sum(losses) / len(losses)',
            '"train_loss": losses[-1]',
            "is its last batch's loss",
        ),
        (
            "losses.append(loss.item())",
            "losses.append(loss.item() * 0.5)",
            "append loss.item() after every batch and report the mean",
        ),
    ],
    ids=["no-train-mode", "sum", "last-batch", "other"],
)
def test_the_loop_check_sees_the_mode_and_the_loss_a_loop_reports(digits, old, new, words):
    said = refusal(
        "01_projector_mnist", "loop-check", _loop_namespace(digits, _loop_with((old, new)))
    )
    assert words in said, said


def test_the_loop_check_passes_the_model_loop_and_a_loss_weighted_by_batch_size(digits):
    passes("01_projector_mnist", "loop-check", _loop_namespace(digits, _train_by_hand()))
    # A mean weighted by batch size (the last batch is smaller) is as right.
    weighted = _loop_with(
        ("        losses = []\n", "        losses, sizes = [], []\n"),
        (
            "losses.append(loss.item())",
            "losses.append(loss.item())\n            sizes.append(len(batch))",
        ),
        (
            '"train_loss": sum(losses) / len(losses)',
            '"train_loss": sum(v * n for v, n in zip(losses, sizes)) / sum(sizes)',
        ),
    )
    passes("01_projector_mnist", "loop-check", _loop_namespace(digits, weighted))


def test_the_hook_check_sees_a_hook_that_keeps_the_graph(digits):
    def no_detach(model, layer_name, x):
        module = dict(model.named_modules())[layer_name]
        stored = {}
        handle = module.register_forward_hook(lambda m, i, out: stored.update(out=out))
        try:
            model.eval()
            with torch.no_grad():
                model(x)
        finally:
            handle.remove()
        return stored["out"]

    def no_finally(model, layer_name, x):  # removes the hook, unless the pass raises
        module = dict(model.named_modules())[layer_name]
        stored = {}
        handle = module.register_forward_hook(lambda m, i, out: stored.update(out=out.detach()))
        model.eval()
        with torch.no_grad():
            model(x)
        handle.remove()
        return stored["out"]

    ns = {"torch": torch, "labkit": labkit, "data": digits, "SEED": 0}
    said = refusal("01_projector_mnist", "hook-check", {**ns, "capture_by_hand": no_detach})
    assert "store output.detach(), not output" in said
    said = refusal("01_projector_mnist", "hook-check", {**ns, "capture_by_hand": no_finally})
    assert "remove the handle in a finally block" in said
    right = solution("01_projector_mnist", "hook")["capture_by_hand"]
    passes("01_projector_mnist", "hook-check", {**ns, "capture_by_hand": right})


def test_the_standardise_check_sees_a_division_by_a_zero_std(raw_digits):
    def no_epsilon(a, b):
        m, s = a.mean(dim=(0, 2, 3), keepdim=True), a.std(dim=(0, 2, 3), keepdim=True)
        return (a - m) / s, (b - m) / s

    said = refusal(
        "01_projector_mnist",
        "standardise-check",
        {"torch": torch, "raw": raw_digits, "standardise": no_epsilon},
    )
    assert "add 1e-6 to the standard deviation" in said


# --- Lab 5: classes the network never saw ------------------------------------------------


@pytest.mark.slow
def test_lab5s_unseen_classes_answer_quotes_its_default_run():
    """Lab 5's train and unseen-classes cells, run with the lab's defaults in this process,
    give the k-NN accuracies its model answer quotes."""
    import re

    nb = authoring.read_source("05_grand_tour_alignment")
    cells = {c.metadata["id"]: c.source for c in nb.cells}
    ns = {**authoring.source_params(nb), "np": np, "pd": pd, "labkit": labkit}
    ns.update(metrics=metrics, align=align, display=lambda *_: None)
    ns["DATA_DIR"] = labkit.home(ns["DATA_DIR"])
    train = cells["train"].replace("lr=LR, seed=SEED)", "lr=LR, seed=SEED, progress=False)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the numbers quoted are a one-thread run's (threads change bits)
    try:
        exec(train, ns)
        exec(cells["unseen"], ns)
    finally:
        torch.set_num_threads(threads)
    table = ns["unseen_table"].round(2)
    unseen, seen = table.columns
    pixels, untrained, half, full = table.index
    quoted = [float(x) for x in re.findall(r"\b[01]\.\d\d\b", cells["a-unseen"])]
    assert quoted == [
        table.loc[half, unseen],
        table.loc[untrained, unseen],
        table.loc[pixels, unseen],
        table.loc[half, seen],
        table.loc[untrained, seen],
        table.loc[full, unseen],
    ]


def _lab5_cells(*ids: str) -> dict:
    """Lab 5's cells ``ids`` run in this process on its defaults, one torch thread (the numbers
    its answers quote are a one-thread run's: the thread count changes the last bits)."""
    nb = authoring.read_source("05_grand_tour_alignment")
    cells = {c.metadata["id"]: c.source for c in nb.cells}
    ns = {**authoring.source_params(nb), "np": np, "pd": pd, "labkit": labkit}
    ns.update(metrics=metrics, align=align, display=lambda *_: None)
    ns["DATA_DIR"] = labkit.home(ns["DATA_DIR"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cell in ids:
            exec(
                cells[cell].replace("precision=PRECISION)", "precision=PRECISION, progress=False)"),
                ns,
            )
    finally:
        torch.set_num_threads(threads)
    ns["answers"] = {k: " ".join(v.split()) for k, v in cells.items()}
    return ns


@pytest.mark.slow
def test_lab5s_baseline_for_cka_answer_quotes_its_default_run():
    ns = _lab5_cells("train", "train-mlp", "cka", "cka-seeds")
    runs = ns["seeds_cka"].runs
    same_first, same_mlp, across = runs.columns
    summary = ns["seeds_cka"].summary.round(3)
    both0 = ns["linear_cka_by_hand"](ns["snaps"].layer()[-1], ns["snaps_mlp"].layer()[-1])
    answer = ns["answers"]["a-cka-seeds"]
    said = [
        f"between {runs[same_first].min():.3f} and {runs[same_first].max():.3f} for the CNN",
        f"between {runs[same_mlp].min():.3f} and {runs[same_mlp].max():.3f} for the MLP",
        f"scores {summary.loc[across, 'min']:.3f} to {summary.loc[across, 'max']:.3f} "
        f"({both0:.3f} for both models of seed 0)",
    ]
    for phrase in said:
        assert phrase in answer, f"a-cka-seeds should say {phrase!r}:\n{answer}"
    # "about 0.005 for the CNN, 0.02 for the MLP":
    assert round(summary.loc[same_first, "std"], 3) == 0.005
    assert round(summary.loc[same_mlp, "std"], 2) == 0.02
    # "below both baselines, by about 0.03 against the CNN's (the lower one) and 0.05 against
    # the MLP's"; "ceilings of 0.90 and 0.92":
    gap_first = summary.loc[same_first, "mean"] - summary.loc[across, "mean"]
    gap_mlp = summary.loc[same_mlp, "mean"] - summary.loc[across, "mean"]
    assert round(gap_first, 2) == 0.03 and round(gap_mlp, 2) == 0.05
    assert summary.loc[same_first, "mean"] < summary.loc[same_mlp, "mean"]
    assert (round(summary.loc[same_first, "mean"], 2), round(summary.loc[same_mlp, "mean"], 2)) == (
        0.9,
        0.92,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_search_check_names_what_a_wrong_search_did(digits_run):
    _, snaps = digits_run
    ns = solution("06_working_with_embeddings", "search")
    emb = snaps.layer()[-1]
    lab = {"np": np, "snaps": snaps, "workflows": workflows, "emb": emb}
    fig = ns["draw_neighbours"](snaps.thumbnails, snaps.label_names, 0, np.arange(1, 9))
    cos = _unit(emb.astype(np.float64)) @ _unit(emb.astype(np.float64))[0]
    with_itself = np.argsort(-cos, kind="stable")[:8]  # the query is its own best match
    message = refusal(
        "06_working_with_embeddings", "search-check", {**lab, "by_hand": with_itself, "fig": fig}
    )
    assert "point 0 is among its own neighbours" in message and "-np.inf" in message
    message = refusal(
        "06_working_with_embeddings",
        "search-check",
        {**lab, "by_hand": np.sort(cos)[::-1][1:9], "fig": fig},  # the cosines, not indices
    )
    assert "not integer indices" in message

    def euclidean(emb, query, k=8):  # the nearest by distance, not by angle
        d = np.linalg.norm(np.asarray(emb, np.float64) - emb[query], axis=1)
        d[query] = np.inf
        return np.argsort(d, kind="stable")[:k]

    wrong = euclidean(emb, 0)
    message = refusal(
        "06_working_with_embeddings", "search-check", {**lab, "by_hand": wrong, "fig": fig}
    )
    assert "sort the cosines from largest to smallest" in message

    # Ties in another order are as right: the last index first among equal cosines.
    def ties_last_first(emb, query, k=8):
        x = _unit(np.asarray(emb, np.float64))
        cos = x @ x[query]
        cos[query] = -np.inf
        return np.lexsort((-np.arange(len(cos)), -cos))[:k]

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    nb = authoring.read_source("06_working_with_embeddings")
    cell = next(c for c in nb.cells if c.metadata["id"] == "search-check").source
    by_hand = ties_last_first(emb, 0)
    drawn = ns["draw_neighbours"](snaps.thumbnails, snaps.label_names, 0, by_hand)
    exec(
        compile(cell, "search-check", "exec"),
        {
            **lab,
            "by_hand": by_hand,
            "fig": drawn,
            "Figure": Figure,
            "plt": plt,
            "cosine_neighbours": ties_last_first,
            "draw_neighbours": ns["draw_neighbours"],
        },
    )
    plt.close("all")


def test_the_most_confident_mistake_is_the_one_the_model_is_surest_of(digits_run):
    """A wrong prediction that is not the surest one is refused, with what to do."""
    _, snaps = digits_run
    wrong = np.flatnonzero(~snaps.correct(-1))
    confidence = snaps.probabilities[-1][wrong].max(axis=1)
    first = int(wrong[0])
    assert confidence[0] < confidence.max()  # the first mistake is not the surest here
    predicted = snaps.class_names[snaps.predictions[-1][first]]
    nbrs = workflows.similar(snaps, first, k=8)
    lab = {"np": np, "snaps": snaps, "workflows": workflows, "nbrs": nbrs}
    message = refusal(
        "06_working_with_embeddings",
        "mistake-check",
        {**lab, "query": first, "predicted": predicted, "share_predicted": 0.5},
    )
    assert "surer of another mistake" in message and "wrong points only" in message
    surest = int(wrong[confidence.argmax()])
    message = refusal(
        "06_working_with_embeddings",
        "mistake-check",
        {
            **lab,
            "query": int(confidence.argmax()),  # a position among the wrong ones, not a probe index
            "predicted": predicted,
            "share_predicted": 0.5,
        },
    )
    if not snaps.correct(-1)[int(confidence.argmax())]:
        assert "surer of another mistake" in message
    else:
        assert "the model gets point query right" in message
    ok = {
        **lab,
        "query": surest,
        "predicted": snaps.class_names[snaps.predictions[-1][surest]],
        "nbrs": workflows.similar(snaps, surest, k=8),
        "share_predicted": 0.5,
    }
    exec(visible_test("06_working_with_embeddings", "mistake-check"), ok)  # the right one passes


def test_the_agreement_and_precision_checks_name_the_slip(digits_run):
    _, snaps = digits_run
    ns = solution("06_working_with_embeddings", "agreement")
    emb = snaps.layer()[-1]

    def counting_itself(emb, labels, k=8):  # forgot to take the point out of its neighbours
        cos = _unit(np.asarray(emb, np.float64)) @ _unit(np.asarray(emb, np.float64)).T
        nearest = np.argsort(-cos, axis=1, kind="stable")[:, :k]
        return (labels[nearest] == labels[:, None]).mean(axis=1)

    agreement = counting_itself(emb, snaps.labels)
    lab = {"np": np, "snaps": snaps, "neighbour_agreement": counting_itself}
    message = refusal(
        "06_working_with_embeddings",
        "agreement-check",
        {**lab, "agreement": agreement, "suspects": np.argsort(agreement, kind="stable")[:10]},
    )
    assert "counted among its own neighbours" in message
    good = ns["neighbour_agreement"](emb, snaps.labels)
    message = refusal(
        "06_working_with_embeddings",
        "agreement-check",
        {
            **lab,
            "neighbour_agreement": ns["neighbour_agreement"],
            "agreement": good,
            "suspects": np.argsort(-good, kind="stable")[:10],  # the highest, not the lowest
        },
    )
    assert "10 smallest agreements" in message

    def euclidean(emb, labels, k=8):  # the nearest by distance, not by angle
        x = np.asarray(emb, np.float64)
        dist = np.linalg.norm(x[:, None] - x[None], axis=2)
        np.fill_diagonal(dist, np.inf)
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return (labels[nearest] == labels[:, None]).mean(axis=1)

    by_distance = euclidean(emb, snaps.labels)
    message = refusal(
        "06_working_with_embeddings",
        "agreement-check",
        {
            **lab,
            "neighbour_agreement": euclidean,
            "agreement": by_distance,
            "suspects": np.argsort(by_distance, kind="stable")[:10],
        },
    )
    assert "found by Euclidean distance? Normalise the rows" in message
    passes(
        "06_working_with_embeddings",
        "agreement-check",
        {
            **lab,
            "neighbour_agreement": ns["neighbour_agreement"],
            "agreement": good,
            "suspects": np.argsort(good, kind="stable")[:10],
        },
    )

    flipped = np.zeros(snaps.n_probe, bool)
    flipped[::10] = True

    def recall_over_k(ranked, flipped, k):  # recall divided by k instead of by the flips
        top = np.asarray(ranked)[:k]
        hits = flipped[top].sum()
        return float(hits / len(top)), float(hits / k)

    snaps_flipped = copy.copy(snaps)
    snaps_flipped.flipped = flipped
    cands = pd.DataFrame({"index": np.arange(0, snaps.n_probe, 5)})
    n = int(flipped.sum())
    message = refusal(
        "06_working_with_embeddings",
        "precision-recall-check",
        {
            "np": np,
            "snaps": snaps_flipped,
            "candidates": cands,
            "precision_recall_at_k": recall_over_k,
            "n_flipped": n,
            "precision": recall_over_k(cands["index"], flipped, n)[0],
            "recall": recall_over_k(cands["index"], flipped, n)[1],
        },
    )
    assert "divide by flipped.sum(), not by k" in message


def test_mining_by_hand_ranks_the_pool_by_cosine_to_the_centroid():
    from sklearn.metrics.pairwise import cosine_similarity

    mine = solution("06_working_with_embeddings", "mine")["mine"]
    rng = np.random.default_rng(5)
    pool, query = rng.normal(size=(300, 16)), rng.normal(size=(5, 16)) * [[1], [3], [5], [7], [9]]
    centroid = _unit(query).mean(axis=0, keepdims=True)
    expected = np.argsort(-cosine_similarity(pool, centroid)[:, 0], kind="stable")[:25]
    got = mine(pool, query, 25)
    assert np.issubdtype(got.dtype, np.integer) and got.tolist() == expected.tolist()
    assert mine(pool.astype(np.float32), query.astype(np.float32), 25).tolist() == expected.tolist()


def _mine_lab(wrong_mine) -> dict:
    """The mine-check's variables for a pool of 120 items, with ``wrong_mine`` as the answer."""
    rng = np.random.default_rng(6)
    pool, query = rng.normal(size=(120, 8)), rng.normal(size=(3, 8))
    return {
        "np": np,
        "mine": wrong_mine,
        "mined": np.asarray(wrong_mine(pool, query, 10)),
        "MINE_K": 10,
        "data": type("Pool", (), {"n_pool": 120})(),
    }


def test_the_mine_check_names_what_a_wrong_search_did():
    def euclidean(pool, query, k):
        return np.argsort(np.linalg.norm(pool - query.mean(0), axis=1), kind="stable")[:k]

    def nearest_to_each(pool, query, k):
        best = (_unit(pool) @ _unit(query).T).max(axis=1)  # each item's best query match
        return np.argsort(-best, kind="stable")[:k]

    def cosines(pool, query, k):
        return np.sort(_unit(pool) @ _unit(query).mean(0))[::-1][:k]

    def least_similar_first(pool, query, k):
        return np.argsort(_unit(pool) @ _unit(query).mean(0), kind="stable")[:k]

    stem, cell = "06_working_with_embeddings", "mine-check"
    message = refusal(stem, cell, _mine_lab(euclidean))
    assert "Euclidean distance; rank by the cosine instead" in message
    message = refusal(stem, cell, _mine_lab(nearest_to_each))
    assert "nearest to each query item" in message and "centroid" in message
    assert "not integer indices" in refusal(stem, cell, _mine_lab(cosines))
    assert "from largest to smallest" in refusal(stem, cell, _mine_lab(least_similar_first))

    def pool_not_normalised(pool, query, k):
        return np.argsort(-(pool @ _unit(query).mean(0)), kind="stable")[:k]

    def query_not_normalised(pool, query, k):
        return np.argsort(-(_unit(pool) @ query.mean(0)), kind="stable")[:k]

    assert "normalise the pool rows" in refusal(stem, cell, _mine_lab(pool_not_normalised))
    assert "every query item counts the same" in refusal(
        stem, cell, _mine_lab(query_not_normalised)
    )
    right = solution(stem, "mine")["mine"]
    exec(visible_test(stem, cell), _mine_lab(right))  # the model solution passes


# --- Lab 6: the labelling budget, spent by a strategy of the student's choice -------------


def _challenge_lab() -> dict:
    """Lab 6's variables around the spending challenge, on a small scale: digits with a pool,
    a 2-epoch MLP as the retraining, 3 seeds, 2 random draws and a budget of 12."""
    data = labkit.load_dataset("digits", label_noise=0.1, pool=0.7)
    truth = labkit.load_dataset("digits", pool=0.7).y_probe.numpy()
    budget, seeds, draws = 12, 3, 2
    rng = np.random.default_rng(0)
    pool_emb, emb = rng.normal(size=(data.n_pool, 6)), rng.normal(size=(len(truth), 6))
    pool_prob = rng.dirichlet(np.ones(data.n_classes), size=data.n_pool)
    is_a = truth == 8

    def retrain(more, seed=0):
        model = labkit.build_model("mlp", more.input_shape, more.n_classes, seed=seed)
        return labkit.train(model, more, epochs=2, seed=seed, progress=False)

    def score(run):
        last = run.predictions[-1]
        return {"pattern": int(np.sum(last[is_a] == 8)), "overall": float(np.mean(last == truth))}

    def random_data(draw):
        control = labkit.Annotator(data, budget=budget)
        control.reveal(np.random.default_rng([0, draw]).choice(data.n_pool, budget, replace=False))
        return control.labelled_data()

    def random_control(seed):
        scores = pd.DataFrame([score(retrain(random_data(d), seed)) for d in range(draws)])
        return {
            "random: pattern": scores["pattern"].mean(),
            "random: overall": scores["overall"].mean(),
        }

    spread = labkit.repeat(random_control, seeds=range(seeds), progress=False)
    lab = {
        "np": np,
        "pd": pd,
        "labkit": labkit,
        "data": data,
        "MINE_K": budget,
        "SEEDS": seeds,
        "pool_emb": pool_emb,
        "pool_prob": pool_prob,
        "emb": emb,
        "query_index": np.array([3, 5]),
        "retrain": retrain,
        "score": score,
        "random_control": random_control,
        "spread": spread,
    }
    ns = solution("06_working_with_embeddings", "spend")
    ns["mine"] = solution("06_working_with_embeddings", "mine")["mine"]
    ns.update(lab)
    return ns


def _challenge(ns: dict, spend, measure=None, seeds=None, wrap=None) -> dict:
    """The challenge cell's ending, as the student's cell runs it, with these parts."""
    ns = dict(ns)
    ns["spend"] = spend
    your_annotator = labkit.Annotator(ns["data"], budget=ns["MINE_K"])
    spend(your_annotator)
    ns["your_annotator"] = your_annotator

    def yours_vs_random(seed):
        got = score_of(seed)
        return {
            "yours: pattern": got["pattern"],
            "yours: overall": got["overall"],
            **ns["random_control"](seed),
        }

    def score_of(seed):
        return ns["score"](ns["retrain"](your_annotator.labelled_data(), seed))

    challenge = labkit.repeat(
        measure or yours_vs_random,
        seeds=range(ns["SEEDS"]) if seeds is None else seeds,
        progress=False,
    )
    ns["challenge"] = wrap(challenge) if wrap else challenge
    return ns


def _full_marks(ns: dict) -> None:
    """The whole spend-check cell, hidden tests too, as nbgrader's autograde runs it."""
    nb = authoring.read_source("06_working_with_embeddings")
    cell = next(c for c in nb.cells if c.metadata["id"] == "spend-check")
    exec(compile(cell.source, "spend-check", "exec"), dict(ns))


def test_any_strategy_that_keeps_the_budget_and_the_protocol_gets_full_marks(tmp_path, monkeypatch):
    monkeypatch.setenv(labkit.store.CACHE_VAR, str(tmp_path / "cache"))
    ns = _challenge_lab()

    def margin(annotator):  # uncertainty sampling alone
        top2 = np.sort(ns["pool_prob"], axis=1)[:, -2:]
        annotator.reveal(np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[: annotator.budget])

    def in_rounds(annotator):  # half, look at what came back, then the rest near the 8s found
        first = np.arange(0, annotator.budget // 2)
        labels = annotator.reveal(first)
        eights = first[labels == 8] if np.any(labels == 8) else first
        near = ns["mine"](ns["pool_emb"], ns["pool_emb"][eights], annotator.budget)
        annotator.reveal(near[~np.isin(near, annotator.revealed)][: annotator.left])

    def fewer(annotator):  # a strategy may keep some of the budget
        annotator.reveal([0, 1, 2])

    for strategy in (ns["spend"], margin, in_rounds, fewer):
        _full_marks(_challenge(ns, strategy))
    # The model solution's own yours_vs_random, in the lab's namespace, gives the same table.
    lab = _challenge(ns, ns["spend"])
    lab["yours_vs_random"].__globals__.update(lab)
    again = labkit.repeat(lab["yours_vs_random"], seeds=range(ns["SEEDS"]), progress=False)
    assert again.runs.equals(lab["challenge"].runs)


def test_the_spend_check_names_a_broken_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv(labkit.store.CACHE_VAR, str(tmp_path / "cache"))
    ns = _challenge_lab()
    stem, cell = "06_working_with_embeddings", "spend-check"
    spend = ns["spend"]

    def nothing(annotator):
        pass

    assert "spent between 1 and 12 labels" in refusal(stem, cell, _challenge(ns, nothing))
    # Other seeds than the control's.
    message = refusal(stem, cell, _challenge(ns, spend, seeds=[5, 6, 7]))
    assert "the same seeds, seeds=range(SEEDS)" in message
    # The seed repeat passes in is ignored: every row trained with seed 0.
    lab = _challenge(ns, spend)
    your = lab["your_annotator"]

    def seed_ignored(seed):
        got = ns["score"](ns["retrain"](your.labelled_data(), 0))
        return {
            "yours: pattern": got["pattern"],
            "yours: overall": got["overall"],
            **ns["random_control"](seed),
        }

    message = refusal(stem, cell, _challenge(ns, spend, measure=seed_ignored))
    assert "train with the seed repeat passes in" in message

    # A random control of its own (another draw), not the one the comparison shares.
    def own_control(seed):
        got = ns["score"](ns["retrain"](your.labelled_data(), seed))
        other = labkit.Annotator(ns["data"], budget=12)
        other.reveal(np.arange(100, 112))
        mine = ns["score"](ns["retrain"](other.labelled_data(), seed))
        return {
            "yours: pattern": got["pattern"],
            "yours: overall": got["overall"],
            "random: pattern": mine["pattern"],
            "random: overall": mine["overall"],
        }

    message = refusal(stem, cell, _challenge(ns, spend, measure=own_control))
    assert "not the random control of `spread`" in message and "random_control(seed)" in message

    # No random arm at all, or the table instead of the repeat.
    def no_control(seed):
        got = ns["score"](ns["retrain"](your.labelled_data(), seed))
        return {"yours: pattern": got["pattern"], "yours: overall": got["overall"]}

    message = refusal(stem, cell, _challenge(ns, spend, measure=no_control))
    assert "'random: overall'" in message and "random_control(seed)" in message
    message = refusal(stem, cell, _challenge(ns, spend, wrap=lambda r: r.summary))
    assert "challenge is a DataFrame" in message and "labkit.repeat(yours_vs_random" in message
    # Over the budget, the annotator refuses before anything is labelled.
    with pytest.raises(labkit.BudgetExceeded, match="the budget is 12 labels and 0 are spent"):
        _challenge(ns, lambda a: a.reveal(np.arange(13)))


# --- Lab 6: groups inside one class -------------------------------------------------------


def test_subclusters_groups_one_class_and_refuses_the_plausible_slips():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    subclusters = solution("06_working_with_embeddings", "subclusters")["subclusters"]
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    emb = [
        np.concatenate([c + rng.normal(size=(30, 2)) for c in centres]) + 0.1 * e for e in (0, 1)
    ]
    emb[0] = rng.permutation(emb[0])  # epoch 0: the same points, in another arrangement
    labels = np.repeat([8, 8, 3], 30)
    labels[85:] = 8  # five of the third blob carry the label 8 as well
    snaps = SimpleNamespace(layer=lambda name=None: np.stack(emb), labels=labels)
    lab = {"np": np, "snaps": snaps, "SUB_CLASS": 8, "SUB_K": 3}

    def run(fn):
        return {
            **lab,
            "subclusters": fn,
            "groups_0": fn(emb[0], labels, 8, 3),
            "groups_last": fn(emb[1], labels, 8, 3),
        }

    right = run(subclusters)
    passes("06_working_with_embeddings", "subclusters-check", right)
    g = right["groups_last"]
    assert np.array_equal(g >= 0, labels == 8) and set(g[g >= 0]) == {0, 1, 2}
    members = labels == 8
    reference = KMeans(3, n_init=10, random_state=0).fit_predict(emb[1][members])
    assert adjusted_rand_score(g[members], reference) == 1.0

    def everyone(e, y, cls, k):  # clusters every point, not the class
        return KMeans(k, n_init=10, random_state=0).fit_predict(e)

    def members_only(e, y, cls, k):  # returns the members' groups alone
        return KMeans(k, n_init=10, random_state=0).fit_predict(e[y == cls])

    def numbered_from_1(e, y, cls, k):
        out = subclusters(e, y, cls, k)
        return np.where(out >= 0, out + 1, -1)

    def on_the_labels(e, y, cls, k):  # k-means on the labels, not the embedding
        out = np.full(len(y), -1)
        out[y == cls] = np.arange((y == cls).sum()) % k
        return out

    said = {
        everyone: "a row of another class gets -1",
        members_only: "return one group per row",
        numbered_from_1: "the groups 0 to k - 1",
        on_the_labels: "cluster the embeddings themselves",
    }
    for wrong, fix in said.items():
        assert fix in refusal("06_working_with_embeddings", "subclusters-check", run(wrong))
    # Both groupings from the last epoch: told to use epoch 0 for the first.
    same = {**right, "groups_0": right["groups_last"]}
    assert "snaps.layer()[0]" in refusal("06_working_with_embeddings", "subclusters-check", same)

    # Another method, another valid answer: the whole cell, hidden tests too, passes.
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.mixture import GaussianMixture

    def agglomerative(e, y, cls, k):
        out = np.full(len(y), -1)
        out[y == cls] = AgglomerativeClustering(n_clusters=k).fit_predict(e[y == cls])
        return out

    def mixture(e, y, cls, k):
        out = np.full(len(y), -1)
        gm = GaussianMixture(n_components=k, random_state=0).fit(e[y == cls])
        out[y == cls] = gm.predict(e[y == cls])
        return out

    nb = authoring.read_source("06_working_with_embeddings")
    cell = next(c for c in nb.cells if c.metadata["id"] == "subclusters-check").source
    for method in (subclusters, agglomerative, mixture):
        exec(compile(cell, "subclusters-check", "exec"), {**run(method), "KMeans": KMeans})

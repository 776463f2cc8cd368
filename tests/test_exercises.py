"""The labs' hand-written exercises agree with the kit they are checked against.

Each exercise's model solution is taken from its lab source (the functions its solution cell
defines), so what is tested is exactly what the solution notebooks hold and the student
notebooks ask for.
"""

from __future__ import annotations

import ast
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
from labkit.reduce import project

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import generate_notebooks  # noqa: E402


def solution(stem: str, cell_id: str) -> dict:
    """The imports and functions a source's exercise cell defines, as a namespace."""
    nb = generate_notebooks.read_source(stem)
    cell = next(c for c in nb.cells if c.metadata["id"] == cell_id)
    assert "exercise" in cell.metadata, f"{stem}: cell {cell_id} is not an exercise"
    tree = ast.parse(cell.source)
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    assert any(isinstance(n, ast.FunctionDef) for n in keep), f"{cell_id} defines no function"
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
    nb = generate_notebooks.read_source(stem)
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

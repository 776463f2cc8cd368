"""The in-notebook explorer: its state from Python, and what a browser shows of it.

The browser test runs a real JupyterLab server on loopback with jupyter-server-proxy, opens a
notebook in headless Chromium (the Debian package: nothing is downloaded), runs it, and reads
back from the page what the plot drew, before and after moving the epoch control; the same
notebook's TensorBoard cell is shown through the proxy, as on a remote Jupyter.
"""

from __future__ import annotations

import io
import json
import os
import time

import nbformat
import numpy as np
import pytest

import labkit
from labkit import align, workflows
from labkit.view.explorer import RIGHT_WRONG, _class_colours

from .browser import browser_page, chromium_path, read_projector
from .jupyterlab import jupyter_lab


@pytest.fixture(scope="module")
def run(digits_run):
    _, snaps = digits_run
    return snaps, align.trajectory(snaps, method="pca")


def _xy(ex) -> np.ndarray:
    return np.asarray(ex.scatter.widget.points)[:, :2].copy()


def test_explorer_starts_at_the_last_epoch_and_moves_points_between_epochs(run):
    snaps, traj = run
    ex = labkit.explore(snaps, traj)
    data = ex._repr_mimebundle_()  # not on Colab: the box's own bundle, no extra metadata
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    assert ex.epoch == snaps.epochs and ex.slider.value == snaps.epochs
    assert ex.slider.max == snaps.epochs and len(ex.data) == snaps.n_probe
    last = _xy(ex)
    assert last.shape == (snaps.n_probe, 2)
    ex.slider.value = 0  # what moving the control does
    first = _xy(ex)
    assert ex.epoch == 0 and not np.allclose(first, last)
    assert ex.scatter.widget.transition_points  # the browser animates the move
    # One fixed scale for all epochs: the widget's coordinates are an affine map of traj.
    for e, xy in ((0, first), (snaps.epochs, last)):
        fit = np.polyfit(traj[e][:, 0], xy[:, 0], 1)
        assert np.allclose(np.polyval(fit, traj[e][:, 0]), xy[:, 0], atol=1e-5)
    assert "before any update" in ex.status.value
    assert f"test accuracy {snaps.history[0]['test_acc']:.1%}" in ex.status.value
    ex.set_epoch(-1)
    assert ex.epoch == snaps.epochs and np.allclose(_xy(ex), last)


def test_colour_by_label_prediction_and_correctness(run):
    snaps, traj = run
    ex = labkit.explore(snaps, traj, colour="prediction")
    names = snaps.class_names
    col = ex.data[f"prediction_{snaps.epochs}"]
    assert list(col) == [names[p] for p in snaps.predictions[-1]]
    assert list(col.cat.categories) == names  # one colour per class, whatever is predicted
    ex.colouring.value = "correct"
    wrong = ex.data[f"correct_{snaps.epochs}"] == "wrong"
    assert np.array_equal(wrong.to_numpy(), ~snaps.correct(-1))
    assert ex.scatter.color()["by"] == f"correct_{snaps.epochs}"
    grey, red = ([int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in RIGHT_WRONG.values())
    assert np.allclose(np.asarray(ex.scatter.widget.color)[:, :3], [grey, red])
    with pytest.raises(ValueError, match="colour must be one of"):
        ex.set_colour("loss")


def test_selection_lists_neighbours_in_the_full_embedding(run):
    snaps, traj = run
    ex = labkit.explore(snaps, traj, k=5)
    assert "nearest neighbours in the full 64-dimensional embedding" in ex.panel.value
    ex.scatter.widget.selection = np.array([7], dtype=np.uint32)  # a click in the browser
    expected = workflows.similar(snaps, 7, k=5)
    table = ex.neighbours([7])
    assert list(table["index"]) == list(expected["index"])
    assert np.allclose(table["cosine"], expected["cosine"])
    for title in expected["title"]:
        assert f">{title}</td>" in ex.panel.value
    assert "data:image/png;base64," in ex.panel.value  # thumbnails of image data
    # A lasso: neighbours of the selection's mean direction, the selection itself excluded.
    lasso = np.flatnonzero(snaps.labels == 3)[:6]
    table = ex.neighbours(lasso)
    assert not set(table["index"]) & set(lasso)
    unit = snaps.layer()[-1] / np.linalg.norm(snaps.layer()[-1], axis=1, keepdims=True)
    centre = unit[lasso].mean(0)
    cos = unit @ (centre / np.linalg.norm(centre))
    cos[lasso] = -np.inf
    assert list(table["index"]) == list(np.argsort(-cos, kind="stable")[:5])
    ex.scatter.widget.selection = np.array([], dtype=np.uint32)
    assert "Click a point" in ex.panel.value


def test_tooltip_shows_the_thumbnail_or_the_snippet(run):
    from PIL import Image

    snaps, traj = run
    ex = labkit.explore(snaps, traj)
    assert ex.scatter.widget.tooltip_preview == "preview"
    assert ex.scatter.widget.tooltip_preview_type == "image"
    uri = ex.data["preview"][0]
    img = Image.open(io.BytesIO(__import__("base64").b64decode(uri.split(",", 1)[1])))
    assert img.size == (64, 64)  # 8x8 digits enlarged, pixel for pixel
    text = labkit.Snapshots(
        **{
            **snaps.__dict__,
            "thumbnails": None,
            "snippets": [f"snippet {i}" for i in range(snaps.n_probe)],
        }
    )
    ex = labkit.explore(text, traj)
    assert ex.scatter.widget.tooltip_preview_type == "text"
    assert ex.data["preview"][3] == "snippet 3"


def test_a_wrong_trajectory_is_one_clear_sentence(run):
    snaps, traj = run
    with pytest.raises(
        ValueError,
        match=r"traj should be \[5, 450, 2\], one 2-D layout per "
        r"epoch 0..4 .* got \[5, 10, 2\]",
    ):
        labkit.explore(snaps, traj[:, :10])
    with pytest.raises(ValueError, match=r"got \[3, 450, 2\]"):
        labkit.explore(snaps, traj[:3])
    with pytest.raises(ValueError, match=r"epoch must be in 0..4, got 7"):
        labkit.explore(snaps, traj).set_epoch(7)


def test_on_colab_the_custom_widget_manager_is_switched_on(run, standin_colab):
    snaps, traj = run
    ex = labkit.explore(snaps, traj)
    assert standin_colab.output.calls == [("enable_custom_widget_manager",)]
    data, metadata = ex._repr_mimebundle_()  # what Colab is sent for the whole explorer
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    assert "custom_widget_manager" in json.dumps(metadata)


# -- in a real browser ------------------------------------------------------------------------


def _colour_counts(png: bytes, colours: list[str], tol: int = 40) -> list[int]:
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int32)
    counts = []
    for c in colours:
        target = np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)])
        counts.append(int((np.abs(rgb - target).sum(axis=2) < tol).sum()))
    return counts


def _screenshot_when(element, ready, timeout: float = 30.0) -> bytes:
    """A screenshot of ``element`` once ``ready(screenshot)`` holds (WebGL draws a moment
    after the page says it is there), or the last one taken when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        shot = element.screenshot()
        if ready(shot) or time.monotonic() > deadline:
            return shot
        time.sleep(0.2)


def _changed(before: bytes, after: bytes) -> float:
    """The share of pixels that differ clearly between two screenshots."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(before)).convert("RGB"), np.int32)
    b = np.asarray(Image.open(io.BytesIO(after)).convert("RGB"), np.int32)
    return float((np.abs(a - b).sum(axis=2) > 60).mean())


@pytest.mark.slow
@pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it)",
)
def test_explorer_and_proxied_tensorboard_in_jupyterlab(digits_run, tmp_path):
    _, snaps = digits_run
    snaps.save(tmp_path / "work" / "snapshots")
    labkit.write_projector(snaps, tmp_path / "work" / "tensorboard", at_epochs=[0, snaps.epochs])
    tb_port = labkit.view.find_free_port(6420)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import labkit\nsnaps = labkit.Snapshots.load('snapshots')\n"
            "ex = labkit.explore(snaps)\nex"
        ),
        nbformat.v4.new_code_cell(f"tb = labkit.open_tensorboard('tensorboard', port={tb_port})"),
    ]
    nbformat.write(nb, tmp_path / "work" / "explore.ipynb")
    (tmp_path / "state").mkdir()
    palette = _class_colours(len(snaps.class_names))

    try:
        with (
            jupyter_lab(tmp_path / "work", tmp_path / "state") as lab,
            browser_page(1400, 1100) as page,
        ):
            page.goto(lab.lab_url("explore.ipynb"))
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.isReady",
                timeout=120_000,
            )
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # The plot: a WebGL canvas with the probe's points in their classes' colours.
            canvas = page.locator(".jp-OutputArea-output canvas").first
            canvas.wait_for(state="visible", timeout=180_000)
            page.wait_for_selector(f"text=after epoch {snaps.epochs}", timeout=60_000)
            before = _screenshot_when(
                canvas, lambda shot: all(n > 0 for n in _colour_counts(shot, palette))
            )
            counts = _colour_counts(before, palette)
            assert all(n > 0 for n in counts), f"classes missing from the plot: {counts}"

            # Move the epoch control to 0 (type into the slider's readout, as a person can).
            readout = page.locator(".widget-hslider .widget-readout").first
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("0")
            page.keyboard.press("Enter")
            page.wait_for_selector("text=before any update", timeout=60_000)
            after = _screenshot_when(canvas, lambda shot: _changed(before, shot) > 0.005)
            assert all(n > 0 for n in _colour_counts(after, palette))
            changed = _changed(before, after)
            assert changed > 0.005, f"moving the epoch control changed {changed:.2%} of pixels"

            # TensorBoard inline through jupyter-server-proxy: the iframe's address is the
            # proxied path, which the browser and a plain HTTP client can both fetch.
            proxied = f"/proxy/{tb_port}/"
            page.wait_for_selector(f'iframe[src="{proxied}#projector"]', timeout=120_000)
            status, body = lab.get(proxied + "data/plugins_listing")
            assert status == 200 and json.loads(body)["projector"]["enabled"]
            status, body = lab.get(proxied + "data/plugin/projector/runs")
            assert status == 200 and json.loads(body) == ["."]
            status, body = lab.get(proxied)
            assert status == 200 and b"<title>TensorBoard</title>" in body
            state = read_projector(page, lab.base + proxied + "#projector")
            assert state["tensors_found"] == 2 and state["points"] == snaps.n_probe
    finally:
        labkit.view.stop_all(everyone=True)

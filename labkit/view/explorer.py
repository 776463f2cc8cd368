"""An embedding explorer inside the notebook: no server, no tunnel, any Jupyter front end.

The probe set's aligned 2-D trajectory as an interactive scatter plot, with an epoch control
(points glide from one epoch to the next), colour by label, prediction or right/wrong, a
tooltip with each point's title (and its thumbnail or snippet), and a selection panel that
lists the nearest neighbours in the full-dimensional embedding.

>>> labkit.explore(snaps)                        # doctest: +SKIP

Built on jupyter-scatter (an anywidget: JupyterLab, Notebook 7, VS Code and Colab, WebGL for
thousands of points, animated transitions when positions change); the controls are plain
ipywidgets. TensorBoard's projector stays the labs' main view: this is the view that works
wherever the notebook does.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from ..snapshots import Snapshots

__all__ = ["Explorer", "explore"]

COLOURINGS = ("label", "prediction", "correct")
RIGHT_WRONG = {"right": "#c7c7c7", "wrong": "#d62728"}
_PAD = " style='padding:1px 10px 1px 0;text-align:left'"


def _hex(rgba) -> str:
    r, g, b = (int(round(c * 255)) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _class_colours(n: int) -> list[str]:
    # The palette of the kit's static figures, so a class has one colour everywhere.
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [_hex(cmap(i % cmap.N)) for i in range(n)]


def _thumbnail_uri(image: np.ndarray, size: int = 64) -> str:
    """A PNG data URI, enlarged without smoothing (8x8 digits stay crisp)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, np.uint8))
    scale = max(1, size // max(img.size))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def _frame(snaps: Snapshots, traj: np.ndarray, epoch: int):
    """The table the scatter plot draws (positions at ``epoch``, the label, each epoch's
    prediction and whether it is right), and the tooltip's preview settings: thumbnails for
    images, snippets for text."""
    import pandas as pd

    names = snaps.class_names
    frame = {
        "x": traj[epoch, :, 0],
        "y": traj[epoch, :, 1],
        "title": list(snaps.titles),
        "label": pd.Categorical([names[i] for i in snaps.labels], categories=names),
    }
    for e in range(snaps.epochs + 1):
        pred = snaps.predictions[e]
        frame[f"prediction_{e}"] = pd.Categorical([names[i] for i in pred], categories=names)
        frame[f"correct_{e}"] = pd.Categorical(
            np.where(pred == snaps.labels, "right", "wrong"), categories=list(RIGHT_WRONG)
        )
    preview: dict = {}
    if snaps.thumbnails is not None:
        frame["preview"] = [_thumbnail_uri(t) for t in snaps.thumbnails]
        preview = {
            "tooltip_preview": "preview",
            "tooltip_preview_type": "image",
            "tooltip_preview_image_background_color": "black",
        }
    elif snaps.snippets:
        frame["preview"] = list(snaps.snippets)
        preview = {
            "tooltip_preview": "preview",
            "tooltip_preview_type": "text",
            "tooltip_preview_text_lines": 4,
        }
    return pd.DataFrame(frame), preview


def _fixed_scale(traj: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """One scale for every epoch: points move in a fixed frame, and growth stays visible."""
    lo, hi = traj.reshape(-1, 2).min(axis=0), traj.reshape(-1, 2).max(axis=0)
    pad = 0.05 * np.where(hi - lo == 0, 1, hi - lo)
    return ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))


class Explorer:
    """The widget :func:`explore` returns; display it, or drive it from code.

    ``set_epoch(e)``, ``set_colour("prediction")`` and ``select([i, ...])`` do what the
    controls do; ``neighbours([i, ...])`` is the table the selection panel shows.
    """

    def __init__(
        self,
        snaps: Snapshots,
        traj: np.ndarray,
        *,
        layer: str | None = None,
        k: int = 8,
        height: int = 480,
        colour: str = "label",
    ) -> None:
        import jscatter

        traj = np.asarray(traj, np.float64)
        shape = (snaps.epochs + 1, snaps.n_probe, 2)
        if traj.shape != shape:
            raise ConfigError(
                f"traj should be {list(shape)}, one 2-D layout per epoch 0.."
                f"{snaps.epochs} (what labkit.align.trajectory(snaps) returns), "
                f"got {list(traj.shape)}"
            )
        if colour not in COLOURINGS:
            raise ConfigError(f"colour must be one of {COLOURINGS}, got {colour!r}")
        self.snaps, self.traj, self.k = snaps, traj, k
        self.layer = layer or snaps.penultimate
        self._emb = snaps.layer(self.layer)
        self._colour = colour
        self._epoch = snaps.epochs

        self.data, preview = _frame(snaps, traj, self._epoch)
        self._palette = _class_colours(len(snaps.class_names))

        self._scale = _fixed_scale(traj)
        self.scatter = jscatter.Scatter(
            data=self.data,
            x="x",
            y="y",
            x_scale=self._scale[0],
            y_scale=self._scale[1],
            color_by="label",
            color_map=self._palette,
            legend=True,
            axes=False,
            size=6 if snaps.n_probe <= 1000 else 4,
            height=height,
            tooltip=True,
            tooltip_properties=["title", "label", "color"],
            transition_points=True,
            transition_points_duration=700,
            **preview,
        )

        self.widget = self._controls(colour)
        self._paint()

    def _controls(self, colour: str):
        """The epoch slider and its play button, the colouring, the plot and the selection
        panel, wired to the methods below."""
        import ipywidgets as widgets

        last = self.snaps.epochs
        self.slider = widgets.IntSlider(
            value=last, min=0, max=last, description="epoch", continuous_update=False
        )
        self.play = widgets.Play(
            value=last, min=0, max=last, interval=1200, description="play the epochs"
        )
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.colouring = widgets.ToggleButtons(
            options=list(COLOURINGS), value=colour, description="colour by"
        )
        self.status = widgets.HTML()
        self.panel = widgets.HTML(self._hint())
        self.slider.observe(lambda change: self.set_epoch(change["new"]), names="value")
        self.colouring.observe(lambda change: self.set_colour(change["new"]), names="value")
        self.scatter.widget.observe(self._on_selection, names="selection")
        return widgets.VBox(
            [
                widgets.HBox([self.play, self.slider, self.status]),
                self.colouring,
                self.scatter.show(),
                self.panel,
            ]
        )

    # -- what the controls do ----------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> Explorer:
        """Move every point to its place at ``epoch`` (animated in the browser)."""
        if not -self.snaps.epochs - 1 <= epoch <= self.snaps.epochs:
            raise ConfigError(f"epoch must be in 0..{self.snaps.epochs}, got {epoch}")
        epoch = range(self.snaps.epochs + 1)[epoch]  # negative indices count from the end
        if epoch == self._epoch:
            return self
        self._epoch = epoch
        if self.slider.value != epoch:
            self.slider.value = epoch  # calls back here, where nothing is left to do
        self.scatter.xy(
            x=self.traj[epoch, :, 0],
            y=self.traj[epoch, :, 1],
            x_scale=self._scale[0],
            y_scale=self._scale[1],
            animate=True,
        )
        self._paint()
        return self

    def set_colour(self, colour: str) -> Explorer:
        """Colour by ``"label"``, ``"prediction"`` (at the current epoch) or ``"correct"``."""
        if colour not in COLOURINGS:
            raise ConfigError(f"colour must be one of {COLOURINGS}, got {colour!r}")
        self._colour = colour
        if self.colouring.value != colour:
            self.colouring.value = colour
        self._paint()
        return self

    def select(self, indices) -> Explorer:
        """Select probe points (what a click or a lasso does); the panel lists neighbours."""
        self.scatter.selection(list(indices))
        self._show_neighbours(np.asarray(list(indices), np.int64))
        return self

    def neighbours(self, indices) -> pd.DataFrame:
        """The ``k`` nearest probe points to the selection, by cosine similarity in the full
        embedding at the current epoch (to the selection's mean direction if several)."""
        import pandas as pd

        idx = np.atleast_1d(np.asarray(indices, np.int64))
        unit = _unit(self._emb[self._epoch])
        query = unit[idx].mean(axis=0)
        cos = unit @ (query / (np.linalg.norm(query) or 1.0))
        cos[idx] = -np.inf
        order = np.argsort(-cos, kind="stable")[: self.k]
        pred = self.snaps.predictions[self._epoch]
        names = self.snaps.class_names
        return pd.DataFrame(
            {
                "index": order,
                "title": [self.snaps.titles[j] for j in order],
                "label": [names[self.snaps.labels[j]] for j in order],
                "prediction": [names[pred[j]] for j in order],
                "cosine": cos[order],
            }
        )

    # -- drawing -------------------------------------------------------------------------------
    def _paint(self) -> None:
        e = self._epoch
        if self._colour == "label":
            self.scatter.color(by="label", map=self._palette)
        elif self._colour == "prediction":
            self.scatter.color(by=f"prediction_{e}", map=self._palette)
        else:
            self.scatter.color(by=f"correct_{e}", map=list(RIGHT_WRONG.values()))
        history = self.snaps.history[e] if e < len(self.snaps.history) else {}
        acc = history.get("test_acc")
        wrong = int((~self.snaps.correct(e)).sum())
        note = "before any update" if e == 0 else f"after epoch {e}"
        acc_text = f", test accuracy {acc:.1%}" if acc is not None else ""
        self.status.value = (
            f"<span style='padding-left:1em'>{note}{acc_text}; "
            f"{wrong} of {self.snaps.n_probe} probe points wrong</span>"
        )

    def _hint(self) -> str:
        dim = self._emb.shape[2]
        return (
            f"<i>Hover a point for its title. Click a point (shift-drag to lasso several): "
            f"its {self.k} nearest neighbours in the full {dim}-dimensional embedding "
            f"appear here.</i>"
        )

    def _on_selection(self, change) -> None:
        selected = change["new"]
        if selected is None or len(selected) == 0:
            self.panel.value = self._hint()
            return
        self._show_neighbours(np.asarray(selected, np.int64))

    def _show_neighbours(self, idx: np.ndarray) -> None:
        table = self.neighbours(idx)
        titles = ", ".join(html.escape(self.snaps.titles[i]) for i in idx[:5])
        more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
        rows = []
        for row in table.itertuples():
            thumb = ""
            if "preview" in self.data and self.snaps.thumbnails is not None:
                thumb = (
                    f"<img src='{self.data['preview'].iloc[row.index]}' width='28' "
                    f"height='28' style='image-rendering:pixelated'>"
                )
            mark = "" if row.label == row.prediction else " style='color:#d62728'"
            cells = [
                thumb,
                html.escape(row.title),
                html.escape(row.label),
                html.escape(row.prediction),
                f"{row.cosine:.3f}",
            ]
            rows.append(f"<tr{mark}>" + "".join(f"<td{_PAD}>{c}</td>" for c in cells) + "</tr>")
        head = "".join(
            f"<th{_PAD}>{h}</th>" for h in ("", "title", "label", "prediction", "cosine")
        )
        self.panel.value = (
            f"<b>Nearest to {titles}{more}</b> (epoch {self._epoch}, cosine similarity in "
            f"the full embedding; red: the model's prediction is wrong)"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        )

    # -- display -------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        data = self.widget._repr_mimebundle_(**kwargs)
        # On Colab, anywidget marks its output for Colab's custom widget manager; the box
        # that holds the plot is what gets displayed, so it carries the same mark.
        inner = self.scatter.widget._repr_mimebundle_(**kwargs)
        if isinstance(inner, tuple) and inner[1]:
            return data, inner[1]
        return data


def explore(
    snaps: Snapshots,
    traj: np.ndarray | None = None,
    *,
    layer: str | None = None,
    method: str = "pca",
    k: int = 8,
    colour: str = "label",
    height: int = 480,
    seed: int = 0,
) -> Explorer:
    """An interactive view of the probe set's embedding, epoch by epoch, in the notebook.

    ``traj`` is an aligned trajectory (``labkit.align.trajectory``); without one, it is
    computed here with ``method`` ("pca", "tsne" or "umap"). Neighbours are found in the full
    embedding of ``layer`` (default: the penultimate layer).
    """
    if traj is None:
        from ..analysis.align import trajectory

        traj = trajectory(snaps, layer=layer, method=method, seed=seed)
    # On Colab, third-party widgets need Colab's custom widget manager: anywidget (under
    # jupyter-scatter) switches it on when the plot is made.
    return Explorer(snaps, traj, layer=layer, k=k, height=height, colour=colour)

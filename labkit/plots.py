"""Figures: epoch and layer grids, metric curves, CKA heat maps, animations, interactive HTML.

Every function returns its figure and, given ``path``, also saves it (atomically; in a
notebook with the inline backend it then shows the saved PNG, drawn once); the two
animations return their GIF as an image a notebook plays. Sizes are fixed (``figsize`` x
``dpi``), so a saved PNG is exactly the size you asked for.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._io import atomic_write
from .errors import ConfigError
from .paths import in_ipython

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    from IPython.display import Image as IPythonImage
    from matplotlib.figure import Figure

    from .snapshots import Snapshots

__all__ = [
    "agreement",
    "animate",
    "cartography",
    "cka_heatmap",
    "compare",
    "epoch_grid",
    "groups",
    "interactive",
    "layer_grid",
    "metric_curves",
    "neighbours",
    "tour_animation",
]

DPI = 100


def _plt():
    # pyplot with whatever backend the user chose (inline, widget, a window, or Agg where
    # there is no display): the kit never switches it.
    import matplotlib.pyplot as plt

    return plt


def _colours(n: int):
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _class_legend(fig, names: list[str], colours, ncol: int, fontsize: int) -> None:
    """One coloured dot per class under the panels: what the colours mean."""
    plt = _plt()
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=colours[i], label=name)
        for i, name in enumerate(names)
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(ncol, len(handles)),
        fontsize=fontsize,
        frameon=False,
    )


def _save(fig, path: str | Path | None, **kw):
    """Save ``fig`` to ``path`` (when given) and, in a notebook with the inline backend,
    show the PNG just drawn: the inline backend would otherwise draw the figure again
    when the cell ends, twice (once to fit its bounding box), half a second for an epoch
    grid. The figure is then closed to pyplot, so that it is not shown twice; it can still
    be saved again."""
    if path is None:
        return fig
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    drawn = io.BytesIO()
    fig.savefig(drawn, format=fmt, dpi=DPI, **kw)
    with atomic_write(path, "wb") as f:
        f.write(drawn.getvalue())
    if fmt == "png" and _inline_backend():
        from IPython.display import Image, display

        display(Image(drawn.getvalue(), format="png"))
        _plt().close(fig)
    return fig


def _inline_backend() -> bool:
    """Whether figures are shown by Jupyter's inline backend (not a window, not ipympl)."""
    import matplotlib

    return "inline" in matplotlib.get_backend() and in_ipython()


def _limits(points: np.ndarray, pad: float = 0.05):
    lo, hi = points.reshape(-1, 2).min(axis=0), points.reshape(-1, 2).max(axis=0)
    span = np.where(hi - lo == 0, 1, hi - lo)
    return (lo[0] - pad * span[0], hi[0] + pad * span[0]), (
        lo[1] - pad * span[1],
        hi[1] + pad * span[1],
    )


def _grid(
    frames: np.ndarray,
    titles: list[str],
    snaps,
    path,
    suptitle: str,
    ncols: int | None,
    size: float = 2.6,
):
    plt = _plt()
    n = len(frames)
    ncols = ncols or min(n, 6)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * size, nrows * size + 0.6),
        squeeze=False,
        layout="constrained",
    )
    xlim, ylim = _limits(frames)
    colours = _colours(len(snaps.class_names))
    point_colours = [colours[c] for c in snaps.labels]
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        ax.scatter(frames[k][:, 0], frames[k][:, 1], c=point_colours, s=4, linewidths=0)
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        ax.set_title(titles[k], fontsize=9)
    _class_legend(fig, snaps.class_names, colours, ncol=10, fontsize=8)
    fig.suptitle(suptitle, fontsize=11)
    return _save(fig, path)


def epoch_grid(
    traj: np.ndarray,
    snaps: Snapshots,
    *,
    at_epochs: list[int] | None = None,
    path: str | Path | None = None,
    ncols: int | None = None,
    method: str = "",
    layer: str | None = None,
) -> Figure:
    """One panel per epoch of an aligned trajectory ``[T, n, 2]``, shared axes, colour = class."""
    at_epochs = list(range(len(traj))) if at_epochs is None else list(at_epochs)
    titles = []
    for e in at_epochs:
        acc = snaps.history[e].get("test_acc") if e < len(snaps.history) else None
        titles.append(f"epoch {e}" + (f" · acc {acc:.0%}" if acc is not None else ""))
    layer = layer or snaps.penultimate
    return _grid(
        np.asarray(traj)[: len(at_epochs)],
        titles,
        snaps,
        path,
        f"{layer}: {method} projection per epoch, aligned".strip(),
        ncols,
    )


def layer_grid(
    traj: np.ndarray,
    snaps: Snapshots,
    *,
    layers: list[str] | None = None,
    epoch: int = -1,
    path: str | Path | None = None,
    ncols: int | None = None,
    method: str = "",
) -> Figure:
    """One panel per layer at one epoch (``traj`` from :func:`labkit.align.layer_trajectory`)."""
    layers = snaps.layer_names if layers is None else list(layers)  # None: every layer
    e = epoch if epoch >= 0 else snaps.epochs + 1 + epoch
    return _grid(
        np.asarray(traj),
        list(layers),
        snaps,
        path,
        f"epoch {e}: {method} projection per layer, aligned".strip(),
        ncols,
    )


def metric_curves(
    table: pd.DataFrame, snaps: Snapshots | None = None, *, path: str | Path | None = None
) -> Figure:
    """Accuracy, NC1 (log scale), silhouette and probe accuracies over epochs, a line per layer.

    ``table`` is :func:`labkit.metrics.geometry`'s DataFrame.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
    layers = list(dict.fromkeys(table["layer"]))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(1, len(layers))))
    if snaps is not None:
        h = snaps.history
        axes[0].plot([r["epoch"] for r in h], [r["test_acc"] for r in h], "k-o", ms=3, label="test")
        tr = [(r["epoch"], r["train_acc"]) for r in h if r.get("train_acc") is not None]
        if tr:
            axes[0].plot(*zip(*tr, strict=True), "k--", label="train")
    for colour, layer in zip(colours, layers, strict=True):
        part = table[table["layer"] == layer]
        nc1 = axes[1].semilogy if (part["nc1"] > 0).any() else axes[1].plot  # NaN: missing
        nc1(part["epoch"], part["nc1"], "-o", ms=3, color=colour, label=layer)
        axes[2].plot(part["epoch"], part["silhouette"], "-o", ms=3, color=colour, label=layer)
        axes[3].plot(part["epoch"], part["knn_acc"], "-o", ms=3, color=colour, label=f"{layer} kNN")
        axes[3].plot(
            part["epoch"], part["linear_probe_acc"], ":", color=colour, label=f"{layer} linear"
        )
    titles = [
        "accuracy",
        "NC1 = Tr(Σ_W Σ_B⁺)/C (lower: collapsed)",
        "silhouette",
        "probe accuracy (held-out half)",
    ]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    axes[3].legend(fontsize=6, ncol=2)
    return _save(fig, path)


def cka_heatmap(
    matrix: np.ndarray,
    labels: list[str],
    *,
    path: str | Path | None = None,
    title: str = "linear CKA",
) -> Figure:
    """A symmetric similarity matrix with its values written in the cells."""
    plt = _plt()
    n = len(labels)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side), layout="constrained")
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if matrix[i, j] < 0.6 else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def _gif(
    frames: np.ndarray | list[np.ndarray],
    titles: list[str],
    snaps,
    path,
    fps: int,
    size: float = 5.0,
    panels: list[str] | None = None,
) -> IPythonImage:
    """Draw ``frames`` ([k, n, 2]) as a GIF, saved to ``path`` if given; returned as an image
    that plays where a notebook shows it. With ``panels`` (their titles), ``frames`` holds one
    [k, n, 2] array per panel, drawn side by side, each in its own axes, frame by frame.

    The axes and the legend are drawn once; each frame then draws only its points and its
    title over them (blitting). matplotlib's animation writers redraw the whole figure, legend
    layout included, for every frame: four times the work for the same picture.
    """
    from IPython.display import Image as IPythonImage
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    stacks = [np.asarray(f) for f in frames] if panels else [np.asarray(frames)]
    # A figure of its own, outside pyplot: drawn by Agg whatever backend the user chose.
    fig = Figure(figsize=(size * len(stacks), size + 0.6), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(stacks), squeeze=False)[0]
    colours = _colours(len(snaps.class_names))
    point_colours = [colours[c] for c in snaps.labels]
    scats = []
    for ax, stack in zip(axes, stacks, strict=True):
        scats.append(ax.scatter(stack[0][:, 0], stack[0][:, 1], s=6, linewidths=0, c=point_colours))
        xlim, ylim = _limits(stack)
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        ax.set_xticks([])
        ax.set_yticks([])
    # The classes' colours, named: an animation is read by the classes it moves.
    _class_legend(fig, snaps.class_names, colours, ncol=5 * len(stacks), fontsize=7)
    if panels:  # each panel keeps its name; the frame's title goes above them all
        for ax, name in zip(axes, panels, strict=True):
            ax.set_title(name, fontsize=10)
        title = fig.suptitle(max(titles, key=len), fontsize=10)
    else:
        title = axes[0].set_title(max(titles, key=len), fontsize=10)
    canvas.draw()  # lays the figure out around the longest title ...
    fig.set_layout_engine("none")  # ... once: later frames change text, not places
    for artist in (*scats, title):
        artist.set_animated(True)
    canvas.draw()
    still = canvas.copy_from_bbox(fig.bbox)
    images = []
    for k, text in enumerate(titles):
        canvas.restore_region(still)
        for ax, scat, stack in zip(axes, scats, stacks, strict=True):
            scat.set_offsets(stack[k])
            ax.draw_artist(scat)
        title.set_text(text)
        fig.draw_artist(title)
        images.append(Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()))
        images[-1] = images[-1].copy()  # the canvas' buffer is reused by the next frame
    gif = io.BytesIO()
    # Equal frames in a row become one longer frame (Pillow merges them).
    images[0].save(
        gif, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
    )
    if path is not None:
        with atomic_write(Path(path), "wb") as f:
            f.write(gif.getvalue())
    return IPythonImage(data=gif.getvalue(), format="gif")


def animate(
    traj: np.ndarray,
    snaps: Snapshots,
    *,
    path: str | Path | None = None,
    fps: int = 10,
    steps: int = 6,
) -> IPythonImage:
    """A GIF of the aligned epochs, with ``steps`` interpolated frames between two epochs."""
    frames, titles = _epoch_frames(traj, steps, hold=fps)
    return _gif(frames, titles, snaps, path, fps)


def _epoch_frames(traj: np.ndarray, steps: int, hold: int) -> tuple[np.ndarray, list[str]]:
    """The frames [k, n, 2] and titles of :func:`animate`: ``steps`` per epoch, straight
    lines between epochs, the last epoch held ``hold`` frames more."""
    traj = np.asarray(traj, np.float64)
    frames, titles = [], []
    for e in range(len(traj) - 1):
        for s in range(steps):
            t = s / steps
            frames.append((1 - t) * traj[e] + t * traj[e + 1])
            titles.append(f"epoch {e + t:.1f}" if s else f"epoch {e}")
    frames.append(traj[-1])
    titles.append(f"epoch {len(traj) - 1}")
    # Hold the last frame a moment so the final picture can be read.
    frames += [traj[-1]] * hold
    titles += titles[-1:] * hold
    return np.stack(frames), titles


def tour_animation(
    frames: np.ndarray | dict[str, np.ndarray],
    snaps: Snapshots,
    *,
    path: str | Path | None = None,
    fps: int = 15,
) -> IPythonImage:
    """A GIF of Grand Tour frames ``[k, n, 2]``; or of several tours of the same points side
    by side, ``{title: [k, n, 2]}``, view ``k`` of each shown together."""
    if isinstance(frames, dict):
        stacks = [np.asarray(f) for f in frames.values()]
        if len({f.shape[:2] for f in stacks}) != 1:
            raise ConfigError(
                "tours shown side by side need the same number of views of the same points; "
                f"got {', '.join(str(f.shape) for f in stacks)}"
            )
        n_views, panels = len(stacks[0]), list(frames)
    else:
        stacks, n_views, panels = np.asarray(frames), len(frames), None
    titles = [f"Grand Tour, view {k}" for k in range(n_views)]
    return _gif(stacks, titles, snaps, path, fps, panels=panels)


def interactive(
    traj: np.ndarray, snaps: Snapshots, *, path: str | Path | None = None, title: str = ""
) -> go.Figure:
    """An interactive scatter with an epoch slider and hover titles (plotly).

    Shown inline in Jupyter; with ``path`` also saved as a standalone HTML file that works
    offline (plotly.js is embedded).
    """
    import plotly.graph_objects as go

    traj = np.asarray(traj, np.float64)
    frames = [
        go.Frame(data=_epoch_traces(traj, snaps, e), name=f"epoch {e}") for e in range(len(traj))
    ]
    xlim, ylim = _limits(traj)
    fig = go.Figure(data=_epoch_traces(traj, snaps, 0), frames=frames)
    fig.update_layout(
        title=title or f"{snaps.penultimate}: aligned projection per epoch",
        xaxis={"range": list(xlim), "showticklabels": False},
        yaxis={"range": list(ylim), "showticklabels": False, "scaleanchor": "x"},
        **_epoch_controls(len(traj)),
        width=760,
        height=700,
        template="plotly_white",
    )
    if path is not None:
        with atomic_write(path, "w") as f:
            f.write(fig.to_html(include_plotlyjs=True, full_html=True))
    return fig


def _epoch_traces(traj: np.ndarray, snaps: Snapshots, e: int) -> list:
    """Epoch ``e``'s points, one trace per class (so the legend toggles a class), each point's
    hover text its title, label and that epoch's prediction."""
    import plotly.graph_objects as go

    colours = [
        f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"
        for r, g, b, _ in _colours(len(snaps.class_names))
    ]
    pred = snaps.predictions[min(e, snaps.epochs)]
    out = []
    for c, name in enumerate(snaps.class_names):
        idx = np.flatnonzero(snaps.labels == c)
        hover = [
            f"{snaps.titles[i]}<br>label: {name}<br>prediction: {snaps.class_names[pred[i]]}"
            for i in idx
        ]
        out.append(
            go.Scattergl(
                x=traj[e][idx, 0],
                y=traj[e][idx, 1],
                mode="markers",
                name=name,
                text=hover,
                hoverinfo="text",
                marker={"size": 5, "color": colours[c]},
            )
        )
    return out


def _epoch_controls(n_frames: int) -> dict:
    """The layout's epoch slider and play button over ``n_frames`` frames."""
    steps = [
        {
            "method": "animate",
            "label": str(e),
            "args": [
                [f"epoch {e}"],
                {"mode": "immediate", "frame": {"duration": 0}, "transition": {"duration": 0}},
            ],
        }
        for e in range(n_frames)
    ]
    play = {
        "label": "▶",
        "method": "animate",
        "args": [None, {"frame": {"duration": 500}, "fromcurrent": True}],
    }
    return {
        "sliders": [{"steps": steps, "currentvalue": {"prefix": "epoch "}, "active": 0}],
        "updatemenus": [{"type": "buttons", "showactive": False, "buttons": [play]}],
    }


def neighbours(table: pd.DataFrame, snaps: Snapshots, *, path: str | Path | None = None) -> Figure:
    """Thumbnails (image data) or titles of a :func:`labkit.workflows.similar` result (the
    table first and ``snaps`` second, as in every other plot)."""
    plt = _plt()
    idx = list(table["index"])
    n = len(idx)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.2), squeeze=False, layout="constrained")
    for ax, i, cos in zip(axes[0], idx, table["cosine"], strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        if snaps.thumbnails is not None:
            ax.imshow(snaps.thumbnails[i], cmap="gray" if snaps.thumbnails.ndim == 3 else None)
        else:
            ax.text(0.5, 0.5, snaps.titles[i][:60], ha="center", va="center", wrap=True, fontsize=7)
        ax.set_title(f"{snaps.class_names[snaps.labels[i]]}\ncos {cos:.2f}", fontsize=8)
    return _save(fig, path)


def groups(
    groups: np.ndarray,
    snaps: Snapshots,
    *,
    per_group: int = 8,
    mark: np.ndarray | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One row per group: the first ``per_group`` members' thumbnails (image data) or titles,
    each captioned with its probe title.

    ``groups`` holds a group number per probe point, ``-1`` for points in no group (as
    a sub-cluster search inside one class returns them); ``mark`` is a boolean mask over
    the probe whose members get a red caption (say ``snaps.flipped``).
    """
    groups = np.asarray(groups)
    if groups.shape != (snaps.n_probe,):
        raise ValueError(
            f"groups should hold one group number per probe point, shape ({snaps.n_probe},); "
            f"got shape {groups.shape}"
        )
    ids = [int(g) for g in np.unique(groups) if g >= 0]
    if not ids:
        raise ValueError("no point is in a group: every entry of groups is -1")
    plt = _plt()
    fig, axes = plt.subplots(
        len(ids),
        per_group,
        figsize=(1.1 * per_group, 1.35 * len(ids) + (0.3 if title else 0)),
        squeeze=False,
        layout="constrained",
    )
    for row, g in zip(axes, ids, strict=True):
        members = np.flatnonzero(groups == g)
        for j, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(j < len(members))
            if j == 0:
                ax.set_ylabel(f"group {g}\n({len(members)})", fontsize=8)
            if j >= len(members):
                continue
            i = members[j]
            if snaps.thumbnails is not None:
                grey = snaps.thumbnails.ndim == 3
                ax.imshow(snaps.thumbnails[i], cmap="gray" if grey else None)
            else:
                ax.text(
                    0.5, 0.5, snaps.titles[i][:40], ha="center", va="center", wrap=True, fontsize=6
                )
            marked = mark is not None and bool(mark[i])
            ax.set_title(snaps.titles[i][:14], fontsize=7, color="red" if marked else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def compare(
    views: dict[str, np.ndarray],
    snaps: Snapshots,
    *,
    scores: dict[str, float] | None = None,
    score_name: str = "trustworthiness",
    path: str | Path | None = None,
    size: float = 4.0,
) -> Figure:
    """Several 2-D views of the same points side by side (e.g. PCA, t-SNE, UMAP); each
    title shows the view's entry of ``scores``, named ``score_name``."""
    plt = _plt()
    n = len(views)
    fig, axes = plt.subplots(
        1, n, figsize=(n * size, size + 0.5), squeeze=False, layout="constrained"
    )
    colours = _colours(len(snaps.class_names))
    point_colours = [colours[c] for c in snaps.labels]
    for ax, (name, xy) in zip(axes[0], views.items(), strict=True):
        ax.scatter(xy[:, 0], xy[:, 1], c=point_colours, s=4, linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        score = f" · {score_name} {scores[name]:.3f}" if scores and name in scores else ""
        ax.set_title(f"{name}{score}", fontsize=10)
    _class_legend(fig, snaps.class_names, colours, ncol=10, fontsize=8)
    return _save(fig, path)


def agreement(
    xy: np.ndarray,
    snaps: Snapshots,
    *,
    epoch: int = -1,
    path: str | Path | None = None,
    size: float = 6.0,
) -> Figure:
    """A 2-D view coloured by class, with the points the model gets wrong ringed in black."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    colours = _colours(len(snaps.class_names))
    ax.scatter(xy[:, 0], xy[:, 1], c=[colours[c] for c in snaps.labels], s=6, linewidths=0)
    wrong = ~snaps.correct(epoch)
    ax.scatter(
        xy[wrong, 0],
        xy[wrong, 1],
        s=40,
        facecolors="none",
        edgecolors="black",
        linewidths=0.8,
        label=f"model disagrees with label ({wrong.sum()})",
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    e = epoch if epoch >= 0 else snaps.epochs + 1 + epoch
    ax.set_title(f"epoch {e}: where the model and the labels disagree", fontsize=10)
    return _save(fig, path)


def cartography(
    snaps: Snapshots, *, epoch: int = -1, path: str | Path | None = None, size: float = 6.0
) -> Figure:
    """The data map of Dataset Cartography (Swayamdipta et al. 2020): each item's mean
    confidence in its label over epochs 1..``epoch`` against its variability, coloured by
    how often the model predicted the label. The "hard to learn" corner (low confidence, low
    variability) holds the suspects; items whose label the kit flipped are ringed."""
    from .analysis.workflows import cartography as data_map

    table = data_map(snaps, epoch=epoch)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    dots = ax.scatter(
        table["variability"],
        table["confidence"],
        c=table["correctness"],
        cmap="RdYlGn",
        vmin=0,
        vmax=1,
        s=8,
        linewidths=0,
    )
    fig.colorbar(dots, ax=ax, shrink=0.8, label="correctness (share of epochs predicted right)")
    if "flipped" in table:
        f = table[table["flipped"]]
        ax.scatter(
            f["variability"],
            f["confidence"],
            s=40,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label=f"label flipped by the kit ({len(f)})",
        )
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("variability (std of the label's probability over epochs)")
    ax.set_ylabel("confidence (mean probability of the label)")
    first, last = table.attrs["epochs"]
    ax.set_title(f"data map, epochs {first}..{last}: hard to learn at the bottom left", fontsize=10)
    return _save(fig, path)

"""One whole run: load, build, train with capture, and write the run folder.

``python -m labkit run`` is a thin wrapper around :func:`run`; the notebooks call the same
steps one by one. The run folder layout::

    runs/NAME/
      snapshots/     Snapshots.save (load with Snapshots.load)
      mantis.csv     the Mantis CSV of the penultimate layer
      tensorboard/   projector logs for every (layer, epoch) + loss/accuracy scalars
      figures/       epoch grid, metric curves, CKA, animation (GIF), interactive HTML
      summary.json   per-epoch loss, accuracy and geometry metrics, and what was run
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from . import runfolder
from ._io import write_json
from .data import LabData, load_dataset
from .errors import ConfigError
from .export.mantis import write_mantis_csv
from .export.projector import write_projector
from .models import build_model, default_model
from .snapshots import Snapshots
from .training.loop import train

__all__ = ["RunResult", "run", "write_summary"]


@dataclass
class RunResult:
    folder: Path
    snapshots: Snapshots
    data: LabData
    model: nn.Module
    files: dict[str, Path]


def write_summary(folder: Path, snaps: Snapshots, extra: dict | None = None) -> Path:
    """``summary.json``: what was run and the per-epoch history (plus ``extra`` sections)."""
    final = snaps.history[-1] if snaps.history else {}
    summary = {
        "dataset": snaps.meta.get("dataset"),
        "model": snaps.meta.get("model"),
        "epochs": snaps.epochs,
        "layers": snaps.layer_names,
        "n_probe": snaps.n_probe,
        "class_names": snaps.class_names,
        "final": {k: final.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
        "history": snaps.history,
        "meta": snaps.meta,
        **(extra or {}),
    }
    path = Path(folder) / "summary.json"
    write_json(path, summary)
    return path


def write_figures(
    snaps: Snapshots,
    folder: Path,
    method: str = "pca",
    seed: int = 0,
    *,
    progress: bool = False,
    cache: bool = True,
) -> tuple[dict[str, Path], list[dict]]:
    """The standard figures and the geometry table of a run (see the module doc)."""
    import matplotlib.pyplot as plt

    from . import plots
    from .analysis.align import layer_trajectory, trajectory
    from .analysis.metrics import cka_matrix, geometry

    folder = Path(folder)
    files: dict[str, Path] = {}
    table = geometry(snaps, seed=seed)
    traj = trajectory(snaps, method=method, seed=seed, progress=progress, cache=cache)
    pen = snaps.layer()
    figs = {
        "epoch_grid": lambda p: plots.epoch_grid(traj, snaps, path=p, method=method),
        "metric_curves": lambda p: plots.metric_curves(table, snaps, path=p),
        "cka_epochs": lambda p: plots.cka_heatmap(
            cka_matrix(list(pen)),
            [f"epoch {e}" for e in range(len(pen))],
            path=p,
            title=f"linear CKA between epochs ({snaps.penultimate})",
        ),
    }
    if len(snaps.layer_names) > 1:
        last = [snaps.layer(name)[-1] for name in snaps.layer_names]
        figs["layer_grid"] = lambda p: plots.layer_grid(
            layer_trajectory(snaps, method=method, seed=seed, cache=cache),
            snaps,
            path=p,
            method=method,
        )
        figs["cka_layers"] = lambda p: plots.cka_heatmap(
            cka_matrix(last),
            snaps.layer_names,
            path=p,
            title="linear CKA between layers (last epoch)",
        )
    for name, make in figs.items():
        files[name] = folder / f"{name}.png"
        plt.close(make(files[name]))
    files["animation"] = folder / "epochs.gif"
    plots.animate(traj, snaps, path=files["animation"], steps=4)
    files["interactive"] = folder / "epochs.html"
    plots.interactive(traj, snaps, path=files["interactive"])
    rows = table.round(6).to_dict(orient="records")
    return files, rows


def _check_options(dataset: str, options: dict) -> None:
    """``run`` passes the keywords it does not know to ``load_dataset``: one that neither
    takes is named as ``run``'s mistake (``reducer=`` for ``method=``), not the data set's."""
    import difflib
    import inspect

    from .data import dataset_options

    taken = dataset_options(dataset)
    if taken is None:
        return
    own = [n for n in inspect.signature(run).parameters if n != "dataset_options"]
    also = [n for n in taken if n not in own]
    for name in options:
        if name not in taken:
            close = _OTHER_NAMES.get(name) or next(
                iter(difflib.get_close_matches(name, own + also, n=1)), None
            )
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(
                f"run() takes no argument {name!r}{hint}; its own are {', '.join(own)}, "
                f"and it passes on to load_dataset({dataset!r}) {', '.join(also)}"
            )


# Names other tools give the kit's arguments, for the hint alone (they are not accepted).
_OTHER_NAMES = {
    "reducer": "method",
    "projection": "method",
    "out_dir": "out",
    "lr": "train_options",
}


def run(
    dataset: str = "digits",
    model: str | None = None,
    epochs: int = 10,
    probe_size: int | None = None,
    layers: str = "penultimate",
    data_dir: str | Path = "data",
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    *,
    progress: bool = True,
    method: str = "pca",
    figures: bool = True,
    overwrite: bool = False,
    model_options: dict | None = None,
    train_options: dict | None = None,
    **dataset_options,
) -> RunResult:
    """Train ``model`` on ``dataset`` with capture and write the run folder ``out``.

    The folder is written as one unit: built beside ``out`` and renamed into place at the
    end, so an error, a divergence or Ctrl-C leaves an earlier run there untouched. An
    existing run folder is refused unless ``overwrite=True`` (then replaced whole); a folder
    the kit cannot prove it wrote is never replaced (see :mod:`labkit.runfolder`).

    >>> result = run("digits", epochs=10, out="runs/digits")    # doctest: +SKIP
    >>> result.snapshots.history[-1]["test_acc"] > 0.9          # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    _check_options(dataset, dataset_options)
    out = runfolder.check(
        Path(out) if out is not None else Path("runs") / dataset, overwrite=overwrite
    )
    data = load_dataset(
        dataset, data_dir=data_dir, probe_size=probe_size, seed=seed, **dataset_options
    )
    if figures:
        from .analysis.reduce import check_points

        check_points(method, len(data.probe_index))  # before training, not after it
    model_name = model or default_model(data.name)
    net = build_model(
        model_name, data.input_shape, data.n_classes, seed=seed, **(model_options or {})
    )
    snaps = train(
        net,
        data,
        epochs=epochs,
        layers=layers,
        seed=seed,
        device=device,
        progress=progress,
        **(train_options or {}),
    )
    with runfolder.build(out, overwrite=overwrite) as building:
        files = {"snapshots": snaps.save(building / "snapshots")}
        files["mantis"] = write_mantis_csv(snaps, building / "mantis.csv")
        files["tensorboard"] = write_projector(snaps, building / "tensorboard").parent
        extra: dict = {}
        if figures:
            figure_files, extra["geometry"] = write_figures(
                snaps,
                building / "figures",
                method,
                seed,
                cache=(train_options or {}).get("cache", True),  # --no-cache: every cache
            )
            files.update(figure_files)
        extra["seconds_total"] = round(time.perf_counter() - started, 2)
        files["summary"] = write_summary(building, snaps, extra)
    files = {key: out / path.relative_to(building) for key, path in files.items()}
    return RunResult(folder=out, snapshots=snaps, data=data, model=net, files=files)

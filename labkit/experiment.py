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

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from . import runfolder
from ._io import write_json
from .data import IMAGE_DATASETS, LabData, load_dataset
from .errors import ConfigError
from .export.mantis import write_mantis_csv
from .export.projector import write_projector
from .models import build_model, default_model
from .snapshots import Snapshots
from .training.device import pick_device
from .training.loop import train
from .training.settings import TrainSettings

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


def _split_options(dataset: str, options: dict) -> tuple[TrainSettings, dict]:
    """``run``'s keywords beyond its own: the training's settings (one record, checked now)
    and the data set's options. A keyword that neither takes is named as ``run``'s mistake
    (``reducer=`` for ``method=``), not the data set's."""
    import difflib
    import inspect

    from .data import dataset_options

    fields = [f.name for f in dataclasses.fields(TrainSettings)]
    training = {k: v for k, v in options.items() if k in fields}
    rest = {k: v for k, v in options.items() if k not in fields}
    taken = dataset_options(dataset)
    own = [n for n in inspect.signature(run).parameters if n != "options"] + fields
    also = [n for n in (taken or []) if n not in own]
    for name in rest:
        if taken is not None and name not in taken:
            close = _OTHER_NAMES.get(name) or next(
                iter(difflib.get_close_matches(name, own + also, n=1)), None
            )
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(
                f"run() takes no argument {name!r}{hint}; its own are {', '.join(own)}, "
                f"and it passes on to load_dataset({dataset!r}) {', '.join(also)}"
            )
    return TrainSettings(**training), rest


# Names other tools give the kit's arguments, for the hint alone (they are not accepted).
_OTHER_NAMES = {
    "reducer": "method",
    "projection": "method",
    "out_dir": "out",
    "learning_rate": "lr",
}


def _check_model(dataset: str, name: str, settings: TrainSettings, options: dict) -> None:
    """What can be said of the model before the data is loaded (which may download): its
    name, whether it fits the kind of data, and whether it can train in these batches."""
    if name == "cnn" and dataset not in IMAGE_DATASETS:
        raise ConfigError(
            f"the 'cnn' model needs images, and the data set {dataset!r} is not an image "
            f"data set; use the model 'mlp' (or an image data set: "
            f"{', '.join(sorted(IMAGE_DATASETS))})"
        )
    # A stand-in of the same kind (BatchNorm or not), on an input of the right rank.
    settings.check_model(build_model(name, (1, 8, 8) if name == "cnn" else (16,), 2, **options))


def run(
    dataset: str = "digits",
    model: str | None = None,
    *,
    probe_size: int | str | None = None,
    data_dir: str | Path = "data",
    out: str | Path | None = None,
    progress: bool = True,
    method: str = "pca",
    figures: bool = True,
    overwrite: bool = False,
    model_options: dict | None = None,
    **options,
) -> RunResult:
    """Train ``model`` on ``dataset`` with capture and write the run folder ``out``.

    ``options`` are the training's settings (:class:`labkit.training.settings.TrainSettings`:
    ``epochs``, ``layers``, ``lr``, ``seed``, ``device``, ``cache``, ...; the seed also draws
    the probe and the model's first weights) and the data set's own options (``classes``,
    ``label_noise``, ``topics``, ...). Every argument is checked before any data is loaded.

    The folder is written as one unit: built beside ``out`` and renamed into place at the
    end, so an error, a divergence or Ctrl-C leaves an earlier run there untouched. An
    existing run folder is refused unless ``overwrite=True`` (then replaced whole); a folder
    the kit cannot prove it wrote is never replaced (see :mod:`labkit.runfolder`).

    >>> result = run("digits", epochs=10, out="runs/digits")    # doctest: +SKIP
    >>> result.snapshots.history[-1]["test_acc"] > 0.9          # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    settings, dataset_options = _split_options(dataset, options)
    model_name = model or default_model(dataset)
    _check_model(dataset, model_name, settings, model_options or {})
    pick_device(settings.device)  # a GPU asked for and missing: said before the download
    out = runfolder.check(
        Path(out) if out is not None else Path("runs") / dataset, overwrite=overwrite
    )
    data = load_dataset(
        dataset, data_dir=data_dir, probe_size=probe_size, seed=settings.seed, **dataset_options
    )
    if figures:
        from .analysis.reduce import check_points

        check_points(method, len(data.probe_index))  # before training, not after it
    net = build_model(
        model_name, data.input_shape, data.n_classes, seed=settings.seed, **(model_options or {})
    )
    snaps = train(net, data, **dataclasses.asdict(settings), progress=progress)
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
                settings.seed,
                cache=settings.cache,  # --no-cache: every cache the run uses
            )
            files.update(figure_files)
        extra["seconds_total"] = round(time.perf_counter() - started, 2)
        files["summary"] = write_summary(building, snaps, extra)
    files = {key: out / path.relative_to(building) for key, path in files.items()}
    return RunResult(folder=out, snapshots=snaps, data=data, model=net, files=files)

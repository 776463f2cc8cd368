"""One whole run: load, build, train with capture, and write the run folder.

``python -m labkit run`` is a thin wrapper around :func:`run`; the notebooks call the same
steps one by one. The run folder layout::

    runs/NAME/
      snapshots/     Snapshots.save (load with Snapshots.load)
      mantis.csv     the Mantis CSV of the penultimate layer
      tensorboard/   projector logs for every (layer, epoch) + loss/accuracy scalars
      summary.json   per-epoch loss and accuracy, and what was run
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ._io import write_json
from .data import LabData, load_dataset
from .mantis import write_mantis_csv
from .models import build_model, default_model
from .projector import write_projector
from .snapshots import Snapshots
from .train import train

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
        "layers": snaps.layers,
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


def run(
    dataset: str = "digits",
    model: str | None = None,
    epochs: int = 10,
    probe_size: int = 2000,
    layers: str = "penultimate",
    data_dir: str | Path = "data",
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    model_options: dict | None = None,
    train_options: dict | None = None,
    **dataset_options,
) -> RunResult:
    """Train ``model`` on ``dataset`` with capture and write the run folder ``out``.

    >>> result = run("digits", epochs=10, out="runs/digits")    # doctest: +SKIP
    >>> result.snapshots.history[-1]["test_acc"] > 0.9          # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    out = Path(out) if out is not None else Path("runs") / dataset
    data = load_dataset(dataset, data_dir=data_dir, probe_size=probe_size, seed=seed,
                        **dataset_options)
    model_name = model or default_model(data.name)
    net = build_model(model_name, data.input_shape, data.n_classes, seed=seed,
                      **(model_options or {}))
    snaps = train(net, data, epochs=epochs, layers=layers, seed=seed, device=device,
                  progress=progress, **(train_options or {}))
    files = {"snapshots": snaps.save(out / "snapshots")}
    files["mantis"] = write_mantis_csv(snaps, out / "mantis.csv")
    files["tensorboard"] = write_projector(snaps, out / "tensorboard").parent
    files["summary"] = write_summary(out, snaps, {
        "seconds_total": round(time.perf_counter() - started, 2)})
    return RunResult(folder=out, snapshots=snaps, data=data, model=net, files=files)

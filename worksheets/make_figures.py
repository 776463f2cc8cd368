"""Make the worksheet's figures with the kit, offline, on scikit-learn's digits.

    python worksheets/make_figures.py [--out worksheets/figures]

The same calls as the labs: a CNN run (epoch grid, three projections, agreement) and the
deep MLP with every layer recorded (metric curves).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import labkit  # noqa: E402
from labkit import align, metrics, plots  # noqa: E402

FIGURES = ("epoch_grid.png", "reducers.png", "metric_curves.png", "agreement.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
    parser.add_argument("--reducers", nargs="+", default=["pca", "tsne", "umap"])
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    data = labkit.load_dataset("digits")
    cnn = labkit.build_model("cnn", data.input_shape, data.n_classes)
    snaps = labkit.train(cnn, data, epochs=10, progress=False)
    traj = align.trajectory(snaps, method="pca")
    plots.epoch_grid(traj, snaps, method="pca", path=out / "epoch_grid.png")
    last = snaps.layer()[-1]
    views = {m: labkit.reduce.reduce(last, m) for m in args.reducers}
    scores = {m: labkit.reduce.trustworthiness(last, v) for m, v in views.items()}
    plots.compare(views, snaps, scores, path=out / "reducers.png")
    plots.agreement(traj[-1], snaps, path=out / "agreement.png")

    deep = labkit.build_model("deep-mlp", data.input_shape, data.n_classes)
    deep_snaps = labkit.train(deep, data, epochs=30, layers="all", progress=False)
    plots.metric_curves(metrics.geometry(deep_snaps), deep_snaps, path=out / "metric_curves.png")
    for name in FIGURES:
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

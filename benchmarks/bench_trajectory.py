"""Epoch grids that do not jump: per-epoch PCA aligned in 2-D (before) against one common
basis (after), on the same runs.

    python benchmarks/bench_trajectory.py            # about 2 minutes on 2 CPU cores

Before: each epoch gets its own 2-D PCA, then Orthogonal Procrustes (in 2-D) rotates it onto
the previous epoch's picture (``align_sequence``). When two principal variances cross, the
2-D subspace itself changes, which no 2-D rotation undoes: the picture reconfigures.
After (``labkit.align.trajectory(method="pca")``, i.e. ``common_pca``): each epoch's full
embedding is rotated onto the previous one in all dimensions, then one PCA of all epochs
stacked gives every epoch the same axes. Reported: the mean displacement between
consecutive epochs (``align.mean_displacement``, in units of each frame's RMS radius; the
same measure for both), its worst epoch pair, and the embedding's spread per epoch (the
common basis's true scale, ``keep_scale=True``). Results: benchmarks/results/trajectory.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labkit  # noqa: E402
from benchmarks.bench_training import write_mnist_shaped  # noqa: E402
from labkit.analysis.align import _layouts, align_sequence, mean_displacement, trajectory  # noqa: E402


def compare(snaps) -> dict:
    embs = list(snaps.layer())
    before = align_sequence(_layouts(embs, "pca", 2, 0, True))
    after = trajectory(snaps, method="pca")
    true_scale = trajectory(snaps, method="pca", keep_scale=True)
    pairs = lambda t: [mean_displacement(t[e : e + 2]) for e in range(len(t) - 1)]  # noqa: E731
    spread = np.sqrt((true_scale**2).sum(axis=2).mean(axis=1))
    return {
        "epochs": len(embs) - 1,
        "probe": int(snaps.n_probe),
        "before": mean_displacement(before),
        "after": mean_displacement(after),
        "before_worst_pair": max(pairs(before)),
        "after_worst_pair": max(pairs(after)),
        "before_pairs": pairs(before),
        "after_pairs": pairs(after),
        "spread_per_epoch": spread.round(3).tolist(),
    }


def main() -> None:
    results = {}
    t0 = time.perf_counter()
    digits = labkit.load_dataset("digits")
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes, seed=0)
    results["digits_cnn"] = compare(labkit.train(model, digits, epochs=10, seed=0, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        # scikit-learn's digits drawn at 28x28 (real MNIST cannot be downloaded here)
        write_mnist_shaped(Path(tmp), n_train=12000, n_test=2000)
        mnist = labkit.load_dataset("mnist", data_dir=tmp, probe_size=2000)
        model = labkit.build_model("cnn", mnist.input_shape, mnist.n_classes, seed=0)
        results["mnist_shaped_cnn"] = compare(
            labkit.train(model, mnist, epochs=10, seed=0, progress=False)
        )
    results["seconds"] = round(time.perf_counter() - t0, 1)
    out = ROOT / "benchmarks" / "results" / "trajectory.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for name, r in results.items():
        if isinstance(r, dict):
            print(
                f"{name}: mean displacement {r['before']:.3f} -> {r['after']:.3f} "
                f"(worst pair {r['before_worst_pair']:.3f} -> {r['after_worst_pair']:.3f}); "
                f"spread {r['spread_per_epoch'][0]} -> {r['spread_per_epoch'][-1]}"
            )
    print(out)


if __name__ == "__main__":
    main()

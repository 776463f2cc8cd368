"""An aligned 2-D UMAP trajectory (11 epochs), four ways, side by side, on two runs.

    python benchmarks/bench_projection.py        # about 8 minutes on 2 CPU cores

* kit: ``labkit.align.trajectory(method="umap")``: each epoch's UMAP starts from the
  previous epoch's layout for a short optimisation (30 epochs) whose learning rate is
  proportional to the share of nearest neighbours that changed since that epoch, then
  Orthogonal Procrustes aligns the frames;
* the kit's previous way (*before*): warm start with 200 epochs at UMAP's default learning
  rate, then Procrustes;
* ``umap.AlignedUMAP`` on the 11 slices with identity relations;
* 11 independent ``umap.UMAP`` fits with default settings, then Procrustes.

Runs: the kit CNN's penultimate layer trained 10 epochs (seed 0) on scikit-learn's digits
(probe 450 test images, 64-d) and on 12,000 MNIST-shaped images (scikit-learn's digits
scaled to 28x28; probe 2,000 test images, 128-d). Reported per method: seconds (after
numba's one-off compile), mean trustworthiness over the epochs (k = 10), and the mean
displacement between consecutive epochs (``align.mean_displacement``: in units of each
frame's RMS radius). Results: benchmarks/results/projection.json.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labkit  # noqa: E402
from labkit.analysis.align import align_sequence, mean_displacement, trajectory  # noqa: E402
from labkit.analysis.reduce import project, trustworthiness  # noqa: E402
from tests.fakedata import write_mnist  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "projection"
METHODS = {
    "kit": "kit: trajectory(method='umap')",
    "before": "kit before: warm start, 200 epochs",
    "aligned_umap": "umap.AlignedUMAP",
    "independent": "11 independent UMAP fits",
}


def snapshots(name: str) -> labkit.Snapshots:
    cache = WORK / name
    if (cache / "meta.json").exists():
        return labkit.Snapshots.load(cache)
    if name == "digits":
        data = labkit.load_dataset("digits")
    else:
        write_mnist(WORK / "data", n_train=12000, n_test=3000)
        data = labkit.load_dataset("mnist", data_dir=WORK / "data", probe_size=2000)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=0)
    snaps = labkit.train(model, data, epochs=10, seed=0, progress=False)
    snaps.save(cache)
    return snaps


def run(snaps: labkit.Snapshots) -> dict:
    import umap

    emb = snaps.layer()
    trajs, seconds = {}, {}

    t0 = time.perf_counter()
    trajs["kit"] = trajectory(snaps, method="umap", seed=0)
    seconds["kit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    layouts = [project(emb[0], "umap", seed=0)]
    for e in range(1, len(emb)):
        layouts.append(project(emb[e], "umap", seed=0, init=layouts[-1], n_epochs=200))
    trajs["before"] = align_sequence(layouts)
    seconds["before"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    relations = [{i: i for i in range(emb.shape[1])} for _ in range(len(emb) - 1)]
    aligned = umap.AlignedUMAP(random_state=0).fit(list(emb), relations=relations)
    trajs["aligned_umap"] = np.stack(aligned.embeddings_)
    seconds["aligned_umap"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    indep = [umap.UMAP(random_state=e).fit_transform(emb[e]) for e in range(len(emb))]
    trajs["independent"] = align_sequence(indep)
    seconds["independent"] = time.perf_counter() - t0

    res: dict = {"probe": int(emb.shape[1]), "dims": int(emb.shape[2]), "epochs": len(emb)}
    for name, traj in trajs.items():
        tw = [trustworthiness(emb[e], traj[e]) for e in range(len(emb))]
        res[name] = {
            "seconds": round(seconds[name], 2),
            "trustworthiness": round(float(np.mean(tw)), 4),
            "last_epoch_trustworthiness": round(tw[-1], 4),
            "displacement": round(mean_displacement(traj), 4),
        }
    kit, ref = res["kit"], res["aligned_umap"]
    res["goals"] = {
        "displacement_vs_aligned_umap": round(kit["displacement"] / ref["displacement"], 2),
        "speedup_vs_aligned_umap": round(ref["seconds"] / kit["seconds"], 1),
        "trustworthiness_minus_aligned_umap": round(
            kit["trustworthiness"] - ref["trustworthiness"], 4
        ),
    }
    return res


def main() -> None:
    warnings.filterwarnings("ignore")
    import umap

    results: dict = {}
    runs = {name: snapshots(name) for name in ("digits", "mnist_shaped")}
    t0 = time.perf_counter()
    umap.UMAP(force_approximation_algorithm=True, random_state=0).fit_transform(
        runs["digits"].layer()[0][:300]
    )
    results["numba_compile_s"] = round(time.perf_counter() - t0, 1)
    for name, snaps in runs.items():
        res = results[name] = run(snaps)
        print(f"\n{name}: {res['epochs']} epochs x {res['probe']} points x {res['dims']} dims")
        print(f"{'method':<40}{'seconds':>9}{'trustworthiness':>17}{'displacement':>14}")
        for key, label in METHODS.items():
            r = res[key]
            print(
                f"{label:<40}{r['seconds']:>9.1f}{r['trustworthiness']:>17.4f}"
                f"{r['displacement']:>14.3f}"
            )
        g = res["goals"]
        print(
            f"kit vs AlignedUMAP: displacement x{g['displacement_vs_aligned_umap']} "
            f"(goal <= 1.5), {g['speedup_vs_aligned_umap']}x faster (goal >= 10), "
            f"trustworthiness {g['trustworthiness_minus_aligned_umap']:+.4f} "
            f"(goal within 0.01)"
        )
    out = ROOT / "benchmarks" / "results" / "projection.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

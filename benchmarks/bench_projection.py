"""An aligned 2-D UMAP trajectory of 11 epochs x 2000 points, three ways, side by side.

    python benchmarks/bench_projection.py        # about 7 minutes on 2 CPU cores

* kit: ``labkit.align.trajectory(method="umap")``: each epoch's UMAP starts from the
  previous epoch's layout (200 epochs of optimisation instead of 500) with approximate
  nearest neighbours, then Orthogonal Procrustes aligns the frames;
* ``umap.AlignedUMAP`` on the 11 slices with identity relations;
* 11 independent ``umap.UMAP`` fits with default settings (then Procrustes-aligned for the
  displacement measure; unaligned figures are reported too).

The embeddings are the kit CNN's penultimate layer (128-d), trained 10 epochs on 12,000
MNIST-shaped images (scikit-learn's digits scaled to 28x28), probe = 2000 test images.
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
from labkit.align import align_sequence, mean_displacement, trajectory  # noqa: E402
from labkit.reduce import trustworthiness  # noqa: E402
from tests.fakedata import write_mnist  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "projection"


def snapshots() -> labkit.Snapshots:
    cache = WORK / "snaps"
    if (cache / "meta.json").exists():
        return labkit.Snapshots.load(cache)
    write_mnist(WORK / "data", n_train=12000, n_test=3000)
    data = labkit.load_dataset("mnist", data_dir=WORK / "data", probe_size=2000)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    snaps = labkit.train(model, data, epochs=10, progress=False)
    snaps.save(cache)
    return snaps


def main() -> None:
    warnings.filterwarnings("ignore")
    import umap

    snaps = snapshots()
    emb = snaps.layer()
    print(f"embeddings {emb.shape}, final test accuracy {snaps.history[-1]['test_acc']:.3f}")
    res: dict = {}

    t0 = time.perf_counter()
    umap.UMAP(force_approximation_algorithm=True, random_state=0).fit_transform(emb[0][:300])
    res["numba_compile_s"] = time.perf_counter() - t0
    print(f"numba compile (first small fit): {res['numba_compile_s']:.1f} s")

    t0 = time.perf_counter()
    kit = trajectory(snaps, method="umap", seed=0)
    res["kit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    indep_raw = [umap.UMAP(random_state=e).fit_transform(emb[e]) for e in range(len(emb))]
    res["independent_s"] = time.perf_counter() - t0
    indep = align_sequence(indep_raw)

    t0 = time.perf_counter()
    relations = [{i: i for i in range(emb.shape[1])} for _ in range(len(emb) - 1)]
    aligned_umap = umap.AlignedUMAP(random_state=0).fit(list(emb), relations=relations)
    res["aligned_umap_s"] = time.perf_counter() - t0
    aumap = np.stack(aligned_umap.embeddings_)

    for name, traj in (("kit", kit), ("independent", indep), ("aligned_umap", aumap)):
        tw = [trustworthiness(emb[e], traj[e]) for e in range(len(emb))]
        res[f"{name}_trustworthiness"] = float(np.mean(tw))
        res[f"{name}_displacement"] = mean_displacement(traj)
    res["independent_unaligned_displacement"] = mean_displacement(np.stack(indep_raw))
    res["speedup_vs_aligned_umap"] = res["aligned_umap_s"] / res["kit_s"]
    res["speedup_vs_independent"] = res["independent_s"] / res["kit_s"]

    print(f"{'method':<28}{'seconds':>9}{'trustworthiness':>17}{'displacement':>14}")
    for name, label in (("kit", "kit (warm start + Procrustes)"),
                        ("aligned_umap", "umap.AlignedUMAP"),
                        ("independent", "11 independent UMAP")):
        print(f"{label:<28}{res[f'{name}_s']:>9.1f}{res[f'{name}_trustworthiness']:>17.4f}"
              f"{res[f'{name}_displacement']:>14.3f}")
    print(f"independent, not aligned: displacement "
          f"{res['independent_unaligned_displacement']:.3f}")
    print(f"kit vs AlignedUMAP: {res['speedup_vs_aligned_umap']:.1f}x faster (goal >= 10x); "
          f"vs independent fits {res['speedup_vs_independent']:.1f}x")
    out = ROOT / "benchmarks" / "results" / "projection.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

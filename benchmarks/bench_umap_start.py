"""The first UMAP in a fresh kernel: what numba's compiling costs, before and after.

    python benchmarks/bench_umap_start.py        # about 4 minutes on 2 CPU cores

Each measurement is a new Python process (as a new notebook kernel is) that fits UMAP twice
on the same 2,000 x 64 points and reports both times; the difference is what numba compiled.

* before: the kit's previous call, ``umap.UMAP(force_approximation_algorithm=True)``:
  neighbours by pynndescent, whose functions numba cannot cache (they take the distance
  function as an argument), and umap-learn's own parallel functions left uncached;
* after: ``labkit.reduce.project(x, "umap")``: exact neighbours by scikit-learn, and numba's
  disk cache switched on for every umap-learn function a fit reaches.

Each side runs with an empty numba cache folder (a machine's first kernel, e.g. a fresh
Colab runtime) and then twice more with the folder the first run filled (every later kernel).
A last pair of processes tries hiding the empty cache's compile behind training: each starts
from an empty cache and trains the MNIST-shaped CNN (12,000 images, 4 epochs) before the
fits, once plainly and once with a low-priority process compiling UMAP meanwhile (what a
background warm-up would do). Results: benchmarks/results/umap_start.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "umap_start"

CHILD = r"""
import json, os, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
side, train_first, warm = sys.argv[1], sys.argv[2] == "train", sys.argv[3] == "warm"
x = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
out = {}
if train_first:
    sys.path.insert(0, sys.argv[4])
    import labkit
    from tests.fakedata import write_mnist
    write_mnist(sys.argv[5], n_train=12000, n_test=3000)
    data = labkit.load_dataset("mnist", data_dir=sys.argv[5], probe_size=2000)
    if warm:  # compile in a low-priority process while training; wait for it before fitting
        import subprocess
        code = "import numpy as np; from labkit.analysis.reduce import project; " \
            "project(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32), 'umap')"
        warming = subprocess.Popen([sys.executable, "-c", code], preexec_fn=lambda: os.nice(19))
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    t = time.perf_counter()
    labkit.train(model, data, epochs=4, progress=False, cache=False)
    out["train_s"] = time.perf_counter() - t
if side == "before":
    import umap
    fit = lambda seed: umap.UMAP(force_approximation_algorithm=True, random_state=seed,
                                 n_neighbors=15).fit_transform(x)
else:
    from labkit.analysis.reduce import project
    fit = lambda seed: project(x, "umap", seed=seed)
for key, seed in (("first_s", 0), ("second_s", 1)):
    t = time.perf_counter()
    if warm and key == "first_s":  # the first fit waits for the compile to finish
        warming.wait()
    fit(seed)
    out[key] = time.perf_counter() - t
print(json.dumps(out))
"""


def child(side: str, cache: Path, *, train: bool = False, warm: bool = False) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    args = [side, "train" if train else "-", "warm" if warm else "-", str(ROOT), str(WORK)]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["extra_s"] = result["first_s"] - result["second_s"]
    result["train_and_first_fit_s"] = result.get("train_s", 0) + result["first_s"]
    return result


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    }
    for side in ("before", "after"):
        cache = Path(tempfile.mkdtemp(prefix=f"numba-{side}-"))
        runs = [child(side, cache) for _ in range(3)]  # empty cache, then the filled one twice
        results[side] = {"empty_cache": runs[0], "filled_cache": runs[1:]}
        shutil.rmtree(cache)
        print(side, json.dumps(results[side], indent=1), flush=True)
    for warm in (False, True):
        cache = Path(tempfile.mkdtemp(prefix="numba-train-"))
        key = "train_then_fit_with_background_compile" if warm else "train_then_fit"
        results[key] = child("after", cache, train=True, warm=warm)
        shutil.rmtree(cache)
        print(key, results[key], flush=True)
    out = ROOT / "benchmarks" / "results" / "umap_start.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

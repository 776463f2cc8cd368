"""Lab 1's six trustworthiness scores, computed and read back from the run cache, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_trustworthiness.py     # about 20 seconds

A graded Lab 1 scores the last epoch's embedding (2,000 probe points, 128-d) against its PCA,
t-SNE and UMAP views three times (the ``methods`` cell), then three times again (its check).
Here: a 2,000 x 128 embedding of ten Gaussian classes and three 2-D views of it, the six
scores computed (``cache=False``) and read back from a run cache that holds them, alternated
``--repeats`` times in one process (scikit-learn imported before the first timing). Results:
benchmarks/results/trustworthiness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/trustworthiness.json"))
    args = parser.parse_args()
    os.environ["LABKIT_RUN_CACHE"] = tempfile.mkdtemp(prefix="labkit-scores-")
    import sklearn.manifold  # noqa: F401  (its import is not what is measured)

    from labkit.analysis.reduce import project, trustworthiness

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(10, 128))
    last = (centres[np.arange(2000) % 10] + rng.normal(size=(2000, 128))).astype(np.float32)
    pca = project(last, "pca")
    views = [pca, pca + rng.normal(size=pca.shape), pca[:, ::-1] * [1, 2]]
    for xy in views:
        trustworthiness(last, xy)  # the cache now holds the three scores

    def six(cache: bool) -> float:
        started = time.perf_counter()
        for _ in range(2):
            for xy in views:
                trustworthiness(last, xy, cache=cache)
        return time.perf_counter() - started

    computed, read = [], []
    for _ in range(args.repeats):
        computed.append(six(cache=False))
        read.append(six(cache=True))
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_trustworthiness.py",
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "computed_s": computed,
        "read_back_s": read,
        "median_computed_s": float(np.median(computed)),
        "median_read_back_s": float(np.median(read)),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"six scores: {result['median_computed_s']:.2f} s computed, "
        f"{result['median_read_back_s']:.3f} s read back (medians of {args.repeats})"
    )


if __name__ == "__main__":
    main()

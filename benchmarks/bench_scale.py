"""Every view and workflow at the size of a whole split: time and peak memory at n = 2,000,
10,000 and 60,000 probe points, 10 epochs recorded.

    python benchmarks/bench_scale.py                 # about 15 minutes on 2 CPU cores
    python benchmarks/bench_scale.py --sizes 2000    # one size

The data are MNIST-format files (60,000 + 10,000 digit-like 28 x 28 images, the IDX files
torchvision reads), made here because the real ones cannot be downloaded in CI. One run
trains the kit's CNN for 10 epochs with the whole training split as the probe
(``probe_size="all", probe_split="train"``, ``label_noise=0.1`` so that the label-error
rankings have a truth); the smaller probes are stratified samples of it
(``Snapshots.subset``). Each measurement runs in a fresh process that loads the saved
snapshots: its time, and its peak resident memory above the process's memory after loading
them (Linux's ``VmHWM``, reset through ``/proc/self/clear_refs`` once they are loaded), so
the snapshots' own memory and the imports are not counted. Goals on 2 CPU cores: every
workflow at 60,000 points within 2 GB above the snapshots; every ranking at 60,000 within
10 s; the aligned UMAP trajectory of 10,000 points x 11 epochs within 30 s. Results:
benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "benchmarks" / "_work" / "scale"
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"

# What is measured: a name and the code that does it (``snaps`` and ``out`` are given).
STEPS = {
    "mantis_csv": "labkit.write_mantis_csv(snaps, out / 'm.csv')",
    "projector": "labkit.write_projector(snaps, out / 'tb')",
    "trajectory_pca": "align.trajectory(snaps, method='pca')",
    "trajectory_umap": "align.trajectory(snaps, method='umap', cache=False)",
    "explorer": "labkit.explore(snaps)",
    "figures": "write_figures(snaps, out, cache=False)",
    **{
        f"ranking_{m}": f"workflows.label_error_ranking(snaps, method={m!r})"
        for m in (
            "self_confidence",
            "margin",
            "neighbours",
            "confident_learning",
            "aum",
            "cartography",
        )
    },
    "label_error_table": "workflows.label_error_table(snaps, epochs=[1, 10])",
    "label_error_candidates": "workflows.label_error_candidates(snaps)",
    "similar": "workflows.similar(snaps, 0)",
    "error_clusters": "workflows.error_clusters(snaps)",
    "knn_accuracy": "metrics.knn_accuracy(snaps.layer()[-1], snaps.labels)",
}
SKIP = {("trajectory_umap", 60_000): "UMAP of 60,000 points x 11 epochs: minutes; not a goal"}

MEASURE = """
import sys, time, warnings
from pathlib import Path
import labkit
from labkit import align, metrics, workflows
from labkit.experiment import write_figures
warnings.simplefilter("ignore")

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # MB

snaps = labkit.Snapshots.load(sys.argv[1])
out = Path(sys.argv[2])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from here: what the snapshots and imports hold now
loaded = status("VmRSS:")
t = time.perf_counter()
CODE
seconds = time.perf_counter() - t
print(seconds, status("VmHWM:") - loaded)
"""


def make_run(folder: Path) -> Path:
    """The 60,000-point run, trained once (kept in _work/ for the next call)."""
    saved = folder / "snaps-60000"
    if (saved / "meta.json").exists():
        return saved
    import labkit
    from benchmarks.bench_training import write_mnist_shaped

    write_mnist_shaped(folder / "data", 60_000, 10_000)
    data = labkit.load_dataset(
        "mnist", data_dir=folder / "data", probe_size="all", probe_split="train", label_noise=0.1
    )
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    started = time.perf_counter()
    snaps = labkit.train(model, data, epochs=10, cache=False)
    print(f"trained 10 epochs, recording 60,000 points: {time.perf_counter() - started:.0f} s")
    snaps.save(saved)
    return saved


def sample(full: Path, n: int) -> Path:
    import labkit
    from labkit.data import probe_indices

    path = full.parent / f"snaps-{n}"
    if not (path / "meta.json").exists():
        snaps = labkit.Snapshots.load(full)
        snaps.subset(probe_indices(snaps.labels, n)).save(path)
    return path


def measure(step: str, snaps: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    code = MEASURE.replace("CODE", STEPS[step])
    proc = subprocess.run(
        [sys.executable, "-c", code, str(snaps), str(out)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    seconds, grown = map(float, proc.stdout.split()[-2:])
    return {"seconds": round(seconds, 2), "peak_mb_above_snapshots": round(grown)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000, 60_000])
    parser.add_argument("--steps", nargs="+", choices=sorted(STEPS), default=list(STEPS))
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    full = make_run(WORK)
    # A run of some sizes or steps updates those cells of the results and keeps the others.
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"sizes": {}}
    results["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} CPUs"
    command = " ".join(["python benchmarks/bench_scale.py", *(argv or sys.argv[1:])])
    results["commands"] = [*results.pop("commands", []), command]  # each run that wrote it
    for n in args.sizes:
        snaps = full if n == 60_000 else sample(full, n)
        row = results["sizes"].setdefault(str(n), {})
        for step in args.steps:
            if (step, n) in SKIP:
                row[step] = {"skipped": SKIP[step, n]}
                continue
            row[step] = measure(step, snaps, WORK / f"out-{n}" / step)
            print(n, step, row[step], flush=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

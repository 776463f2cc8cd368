"""The test suite's wall time, as CI runs it: ``CI=true python -m pytest``.

    python benchmarks/bench_suite.py [--runs 2]      # about 11 minutes a run on 2 CPU cores

Each run is the README's suite command in a fresh process; the script records its wall time,
the CPU time of everything it started (user + system, all workers, kernels and commands), and
pytest's own summary line. Results: benchmarks/results/suite.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run() -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "CI": "true"},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = proc.stdout.strip().splitlines()[-1]
    if proc.returncode != 0:
        raise SystemExit(f"the suite failed:\n{proc.stdout[-3000:]}")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|skipped|failed|errors?)", summary)}
    return {
        "wall_s": round(wall, 1),
        "pytest_s": float(re.search(r"in ([\d.]+)s", summary).group(1)),
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 1),
        "cpu_system_s": round(after.ru_stime - before.ru_stime, 1),
        **counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    runs = []
    for k in range(args.runs):
        runs.append(one_run())
        print(f"run {k + 1}: {runs[-1]}", flush=True)
    out = ROOT / "benchmarks" / "results" / "suite.json"
    out.write_text(
        json.dumps(
            {
                "command": "CI=true python -m pytest",
                "commit": commit,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

"""Grading a class: nbgrader's autograde of Lab 1 submissions, without and with the run cache.

    python benchmarks/bench_grading.py --students 6             # real size: 60,000 + 10,000
    python benchmarks/bench_grading.py --n-train 3000 --n-test 2500   # a quick try (5 min)

A course folder as the guide sets it up (``nbgrader generate_assignment`` of Lab 1; one
``LABKIT_HOME`` for every submission, so one ``data/`` and one run cache), MNIST-format data
of the given size written as IDX files (real MNIST cannot be downloaded here), and
submissions: the solution, the solution with other answers written, the solution with one
exercise left undone, the blank released notebook, and more solutions up to ``--students``.
Each submission runs the lab with its defaults (10 epochs, a 2,000-image probe, PCA, t-SNE
and UMAP), its own ``OUT``.

Four passes of the real ``nbgrader autograde``:

1. **without the cache**: each submission has an empty run cache of its own (what every
   submission cost before the cache), one ``--student S`` process each, ``--jobs`` at a time;
2. **with the cache, one after another**: one shared cache, empty at the start, one
   ``--student S`` process each: the first submission trains, the others load;
3. **with the cache, one process for the class**: the same, warm, graded by one
   ``nbgrader autograde labs`` on one core (nbgrader starts once: about 5 s saved a
   submission), as the guide shows for one core; each submission's share is read from
   nbgrader's time-stamped log;
4. **with the cache, in parallel**: warm, fanned out over the cores with ``xargs -P`` (one
   nbgrader process per submission, as the guide shows).

Every grading process runs torch on one thread (``OMP_NUM_THREADS=1``) and starts no
TensorBoard (``LABKIT_VIEWERS=off``), as the guide says: a submission's seconds are one
core's. The scores of every submission must be the same in all four passes; the
cell times of the first submission's graded notebook, without and with the cache, say where
the time goes. Results: benchmarks/results/grading.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import authoring  # noqa: E402
from labkit.store import CACHE_VAR  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_training import write_mnist_shaped  # noqa: E402

LAB = "01_projector_mnist"
WORK = ROOT / "benchmarks" / "_work" / "grading"


THREADS = "1"  # each grading process on one core: the per-submission figure is one core's


def env(home: Path, cache: Path) -> dict:
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs alembic from PATH
    return {
        **os.environ,
        "LABKIT_HOME": str(home),
        CACHE_VAR: str(cache),
        # One thread per process, in every pass: a run's key includes torch's thread count
        # (a CPU's sums are ordered by it), so all passes share one set of keys.
        "OMP_NUM_THREADS": THREADS,
        "LABKIT_VIEWERS": "off",  # no TensorBoard for nobody to look at, as the guide says
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def make_course(course: Path) -> None:
    if course.exists():
        shutil.rmtree(course)
    (course / "source" / "labs").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        'c.CourseDirectory.course_id = "labkit"\n'
        "c.Execute.timeout = 1800\n"
        'c.Execute.kernel_name = "python3"\n'
    )
    shutil.copy(ROOT / "notebooks" / "solutions" / f"{LAB}.ipynb", course / "source" / "labs")
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "labs", "--force"],
        cwd=course,
        env=env(course / ".labkit", course / "unused-cache"),
        check=True,
        capture_output=True,
    )


def _with_params(nb, params: dict):
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = authoring.set_params(cell.source, params)
    return nb


def submissions(course: Path, n: int) -> list[str]:
    """Write ``n`` submissions; returns the students' names."""
    solution = nbformat.read(course / "source" / "labs" / f"{LAB}.ipynb", as_version=4)
    blank = nbformat.read(course / "release" / "labs" / f"{LAB}.ipynb", as_version=4)
    kinds = ["solution", "other-words", "one-undone", "blank"]
    kinds += ["solution"] * max(0, n - len(kinds))
    students = []
    for i, kind in enumerate(kinds[:n]):
        nb = nbformat.from_dict(json.loads(json.dumps(blank if kind == "blank" else solution)))
        if kind == "other-words":
            for cell in nb.cells:  # the written answers, graded by hand
                if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get(
                    "solution"
                ):
                    cell.source = "In my own words: " + cell.source
        elif kind == "one-undone":
            released = {c.id: c for c in blank.cells}
            first = next(
                c
                for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
            )
            first.source = released[first.id].source
        student = f"s{i:02d}-{kind}"
        out = str(course / ".labkit" / "runs" / student)
        nb = _with_params(nb, {"OUT": out})
        folder = course / "submitted" / student / "labs"
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{LAB}.ipynb")
        students.append(student)
    return students


# nbgrader's log lines with a time stamp: when one process grades the class, the time between
# two students' first lines is what the first one's submission took.
STAMPED = [
    "--Application.log_format=%(asctime)s.%(msecs)03d %(message)s",
    "--Application.log_datefmt=%Y-%m-%d %H:%M:%S",
]
STARTS = re.compile(r"^(\S+ \S+) Creating/updating student with ID '([^']+)'", re.M)


def autograde(course: Path, student: str | None, cache: Path) -> float:
    """Seconds nbgrader takes to grade ``student``'s submission (None: every one, in one
    process)."""
    return _autograde(course, student, cache)[0]


def autograde_class(course: Path, cache: Path) -> tuple[float, dict[str, float]]:
    """One nbgrader process grading every submission: its seconds, and each submission's
    share (from its first log line to the next one's; the last one's to the process end)."""
    total, log, ended = _autograde(course, None, cache)
    starts = [(datetime.datetime.fromisoformat(t), s) for t, s in STARTS.findall(log)]
    ends = [t for t, _ in starts[1:]] + [ended]
    return total, {s: (end - t).total_seconds() for (t, s), end in zip(starts, ends, strict=True)}


def _autograde(course: Path, student: str | None, cache: Path):
    started = time.perf_counter()
    who = ["--student", student] if student else []
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", "labs", *who, "--force", *STAMPED],
        cwd=course,
        env=env(course / ".labkit", cache),
        capture_output=True,
        text=True,
    )
    ended = datetime.datetime.now()
    if proc.returncode != 0:
        raise SystemExit(
            f"autograde of {student} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return time.perf_counter() - started, proc.stdout + proc.stderr, ended


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def cell_seconds(course: Path, student: str) -> dict[str, float]:
    """Seconds per code cell of a graded submission, from the timestamps nbgrader's
    execution records in the autograded notebook (largest first)."""
    from bench_labs import _seconds

    path = course / "autograded" / student / "labs" / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = {c.get("id"): round(_seconds(c), 1) for c in nb.cells if c.cell_type == "code"}
    return dict(sorted(cells.items(), key=lambda kv: -kv[1]))


def scores(course: Path, students: list[str]) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="labkit") as gb:
        return {s: gb.find_submission("labs", s).score for s in students}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grading.json"))
    args = parser.parse_args()

    course = WORK / "course"
    make_course(course)
    # the data bench_training.py times its epochs on, in the course's data home
    write_mnist_shaped(course / ".labkit" / "data", args.n_train, args.n_test)
    students = submissions(course, args.students)
    print(f"{len(students)} submissions of {LAB}, MNIST-format {args.n_train:,}/{args.n_test:,}")

    # 1. without the cache: an empty one for every submission; graded side by side, one
    #    process per core (a submission's seconds are one core's either way)
    from concurrent.futures import ThreadPoolExecutor

    def alone(s: str) -> float:
        return autograde(course, s, WORK / "caches" / f"empty-{s}-{time.time_ns()}")

    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        without = dict(zip(students, pool.map(alone, students), strict=True))
    without_total = time.perf_counter() - started
    for s in students:
        print(f"  without the cache: {s} {without[s]:.0f} s")
    scores_without = scores(course, students)

    cells_without = cell_seconds(course, students[0])

    # 2. with the cache, one after another: the first trains, the others load
    shared = WORK / "caches" / "shared"
    shutil.rmtree(shared, ignore_errors=True)
    serial = {}
    for s in students:
        serial[s] = autograde(course, s, shared)
        print(f"  with the cache: {s} {serial[s]:.0f} s")
    scores_serial = scores(course, students)

    # 3. with the cache warm, one nbgrader process for every submission, on one core
    one_process_s, one_process_each = autograde_class(course, shared)
    scores_one_process = scores(course, students)
    each = ", ".join(f"{s} {one_process_each[s]:.1f} s" for s in students)
    print(f"  one process for all {len(students)}: {one_process_s:.0f} s ({each})")

    # 4. with the cache, in parallel over the cores (xargs -P), the cache warm
    started = time.perf_counter()
    subprocess.run(
        [
            "xargs",
            "-P",
            str(args.jobs),
            "-I{}",
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            "labs",
            "--student",
            "{}",
            "--force",
        ],
        input="\n".join(students) + "\n",
        text=True,
        cwd=course,
        env=env(course / ".labkit", shared),
        check=True,
        capture_output=True,
    )
    parallel_s = time.perf_counter() - started
    scores_parallel = scores(course, students)
    print(f"  in parallel (xargs -P {args.jobs}): {parallel_s:.0f} s for {len(students)}")

    cells_cached = cell_seconds(course, students[0])
    top = ", ".join(f"{k} {v:.0f} s" for k, v in list(cells_cached.items())[:5])
    print(f"  where a cached submission's time goes ({students[0]}): {top}")
    later = [serial[s] for s in students[1:]]
    # Complete submissions (the solution, or it in other words): what most of a class hands in.
    complete = [s for s in students if s.endswith(("-solution", "-other-words"))]
    result = {
        "command": " ".join(["python", "benchmarks/bench_grading.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "n_train": args.n_train,
        "n_test": args.n_test,
        "students": students,
        "without_cache_s": without,
        "with_cache_serial_s": serial,
        "without_cache_parallel_total_s": without_total,
        "with_cache_one_process_total_s": one_process_s,
        "with_cache_one_process_s": one_process_each,
        "with_cache_parallel_total_s": parallel_s,
        "threads_per_process": int(THREADS),
        "jobs": args.jobs,
        "per_submission": {
            "without_cache": sum(without.values()) / len(without),
            "with_cache_after_the_first": _mean(later),
            "with_cache_one_process": one_process_s / len(students),
            "with_cache_parallel": parallel_s / len(students),
            "complete_with_cache_after_the_first": _mean([serial[s] for s in complete[1:]]),
            "complete_with_cache_one_process": _mean([one_process_each[s] for s in complete]),
        },
        "cells_s": {"without_cache": cells_without, "with_cache": cells_cached},
        "scores": {
            "without": scores_without,
            "serial": scores_serial,
            "one_process": scores_one_process,
            "parallel": scores_parallel,
        },
        "scores_identical": scores_without
        == scores_serial
        == scores_one_process
        == scores_parallel,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    p = result["per_submission"]
    print(
        f"per submission: {p['without_cache']:.0f} s without the cache, "
        f"{p['with_cache_after_the_first']:.0f} s with it (after the first), "
        f"{p['with_cache_one_process']:.0f} s in one process, "
        f"{p['with_cache_parallel']:.0f} s in parallel; a complete submission "
        f"{p['complete_with_cache_after_the_first']:.0f} s with the cache, "
        f"{p['complete_with_cache_one_process']:.0f} s in one process; scores identical: "
        f"{result['scores_identical']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

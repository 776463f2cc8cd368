"""How long each lab's default run takes: every solution notebook, top to bottom, on its
committed parameters, in a real Jupyter kernel, timed cell by cell.

    python benchmarks/bench_labs.py                      # every lab (about 25 min on 2 cores)
    python benchmarks/bench_labs.py --lab 04_layers_neural_collapse
    python benchmarks/bench_labs.py --summary            # the table, from the saved results

Nothing is downloaded. ``LABKIT_HOME`` is a fresh temporary folder, and what the labs would
fetch is written there at full size in its real format: MNIST (60,000 + 10,000 IDX images,
scikit-learn's digits scaled to 28x28), CIFAR-10 (50,000 + 10,000 images in the python
pickles, class-coloured noise), a BBC-News-shaped CSV of 2,225 generated articles in five
sections, and a loopback MediaWiki serving ``PER_TOPIC`` generated articles for each of
Lab 2's default topics (the only parameter changed: ``API_URL``). Training on the stand-ins
costs what it costs on the real data (same sizes and shapes); what differs is the accuracy
they reach, and for Lab 2 the fetch, which is local here.

``--keep DIR`` saves each executed notebook there, so that the same default run also feeds
``python -m tests.lab_numbers LAB --executed DIR/LAB.ipynb`` (the numbers the answers quote).

The results (seconds per cell, by cell id, and each cell's part: ``core`` or ``optional``,
as the notebook's tags mark it) go to ``benchmarks/results/lab_times.json``; ``--summary``
prints the compute time of each lab's core path and of everything.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lab_times.json"
sys.path.insert(0, str(ROOT))

import authoring  # noqa: E402
from tests import mediawiki  # noqa: E402
from tests.fakedata import write_cifar10, write_mnist  # noqa: E402

# Generated words for the topics the loopback wiki serves beyond its own.
EXTRA_VOCAB = {
    "Machine learning": "model training neural network data learning algorithm gradient "
    "classifier regression feature dataset prediction supervised kernel loss".split(),
    "Renaissance art": "painter fresco florence canvas portrait sculpture chapel patron "
    "perspective marble altarpiece workshop medici venice oil".split(),
    "Politics": "minister parliament election vote party government policy law labour "
    "tory campaign bill cabinet reform leader".split(),
}


def _seconds(cell) -> float:
    """A cell's execution time from the timestamps nbclient records."""
    t = cell.metadata.get("execution", {})
    start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _write_bbc(path: Path, n: int = 2225, seed: int = 0) -> None:
    """A CSV shaped like the BBC News one: ``category,text``, ``n`` articles, five sections."""
    sections = {
        "tech": "Astronomy",
        "food": "Cooking",
        "sport": "Basketball",
        "science": "Volcanoes",
        "politics": "Politics",
    }
    mediawiki.VOCAB.update(EXTRA_VOCAB)
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["category", "text"])
        for i in range(n):
            section = list(sections)[i % len(sections)]
            writer.writerow([section, mediawiki.make_article(sections[section], rng, 380)])


def _data(home: Path, lab: authoring.Lab, params: dict) -> None:
    """The data set the lab's defaults read, written into ``home/data`` at full size."""
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    if params["DATASET"] == "mnist" and not (data / "MNIST").exists():
        write_mnist(data, n_train=60_000, n_test=10_000)
    if params["DATASET"] == "cifar10" and not (data / "cifar-10-batches-py").exists():
        write_cifar10(data, per_batch=10_000, n_test=10_000)
    if params["DATASET"] == "bbc":
        _write_bbc(data / Path(params["CSV"].split("?")[0]).name)


def _parts(nb) -> dict[str, str]:
    return {
        c.get("id"): "optional" if "optional" in c.metadata.get("tags", []) else "core"
        for c in nb.cells
    }


def run_lab(lab: authoring.Lab, home: Path, timeout: int, keep: Path | None = None) -> dict:
    from nbclient import NotebookClient

    path = authoring.NOTEBOOKS / "solutions" / f"{lab.name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    params = authoring.source_params(nb)  # the notebook's own parameters cell
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    _data(home, lab, params)
    wiki = None
    if params["DATASET"] == "wikipedia":
        mediawiki.VOCAB.update({t: EXTRA_VOCAB[t] for t in params["TOPICS"] if t in EXTRA_VOCAB})
        wiki = mediawiki.FakeWiki(topics=params["TOPICS"], per_topic=params["PER_TOPIC"])
        wiki.__enter__()
        where = nb.cells.index(cell)
        injected = nbformat.v4.new_code_cell(f"API_URL = {wiki.url!r}", id="injected-parameters")
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(where + 1, injected)
    start = time.perf_counter()
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(home)}},
        ).execute()
    finally:
        if wiki is not None:
            wiki.__exit__(None, None, None)
        from labkit import view

        view.stop_all(everyone=True)
    wall = time.perf_counter() - start
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / f"{lab.name}.ipynb")
    parts = _parts(nbformat.read(path, as_version=4))
    cells = {
        c.get("id"): round(_seconds(c), 2)
        for c in nb.cells
        if c.cell_type == "code" and c.get("id") in parts
    }
    return {"wall_s": round(wall, 1), "cells_s": cells}


def summary(results: dict) -> str:
    """Compute time per lab: the core path and everything, with the cells' current marks."""
    rows = [
        "| lab | core path | everything | wall (kernel start included) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for lab in authoring.LABS:
        got = results["labs"].get(lab.name)
        if not got:
            continue
        path = authoring.NOTEBOOKS / "solutions" / f"{lab.name}.ipynb"
        parts = _parts(nbformat.read(path, as_version=4))
        core = sum(s for cid, s in got["cells_s"].items() if parts.get(cid) == "core")
        total = sum(got["cells_s"].values())
        rows.append(
            f"| `{lab.name}` | {core / 60:.1f} min | {total / 60:.1f} min "
            f"| {got['wall_s'] / 60:.1f} min |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", action="append", help="only this lab (repeatable)")
    parser.add_argument("--summary", action="store_true", help="print the saved results")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--keep", type=Path, help="save the executed notebooks in this folder")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"labs": {}}
    if args.summary:
        print(summary(results))
        return 0
    labs = [lab for lab in authoring.LABS if not args.lab or lab.name in args.lab]
    if not labs:
        parser.error(f"no lab {args.lab}; labs: {', '.join(x.name for x in authoring.LABS)}")
    import torch

    results["machine"] = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["LABKIT_HOME"] = str(home)  # the kernels inherit it
        for lab in labs:
            got = run_lab(lab, home, args.timeout, args.keep)
            results["labs"][lab.name] = got
            print(f"{lab.name}: {got['wall_s']:.0f} s", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

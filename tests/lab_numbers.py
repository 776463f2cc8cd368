"""Check that the numbers a lab's model answers quote are numbers its default run prints.

    python -m tests.lab_numbers 04_layers_neural_collapse            # run it, then check
    python -m tests.lab_numbers 04_layers_neural_collapse --executed run.ipynb

A lab's default run (its parameters cell as committed) takes minutes, too long for the
suite, so this is a script: it executes the solution notebook in a temporary ``LABKIT_HOME``
(or reads one executed already), collects every decimal number the code cells printed, and
lists each decimal number in a model answer (or a prose cell that quotes the run) that is
no rounding of a printed one. ``QUOTES`` names the cells to read and the numbers that come
from elsewhere (a constant, or another run the answer reports), each with its reason.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.]*\d)")


@dataclass
class Quotes:
    """Which cells of a lab quote its run, and the numbers in them that need not be printed."""

    cells: tuple[str, ...] = ()  # prose cells to check besides the model answers
    skip: tuple[str, ...] = ()  # answers that report other runs (the lab's "your turn")
    elsewhere: dict[str, str] = field(default_factory=dict)  # number -> why it is not printed


QUOTES = {
    "02_wikipedia_topics": Quotes(),
    "04_layers_neural_collapse": Quotes(
        skip=("a-findings",),  # reports the depth 2 and 8, ten-class and test-split runs
        elsewhere={
            "-0.5": "the simplex's cosine, -1/(C - 1)",
            "6.8": "the mean of the three printed distances to the centre",
            "11.7": "the side of an equilateral triangle of radius 6.8",
        },
    ),
    "05_grand_tour_alignment": Quotes(
        cells=("coarse-shows",),
        elsewhere={"1.03": "the Procrustes fit's scale, fit.scale (not printed)"},
    ),
}


def printed_numbers(nb) -> list[str]:
    """Every decimal number in the text the code cells printed (streams and text results)."""
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            elif "text/plain" in out.get("data", {}):
                texts.append(out["data"]["text/plain"])
            if "text/html" in out.get("data", {}):  # a DataFrame's table
                texts.append(out["data"]["text/html"])
    return NUMBER.findall("\n".join(texts))


def rounds_to(quoted: str, printed: list[str]) -> bool:
    """Whether ``quoted`` is one of ``printed``, written with as many or fewer decimals."""
    decimals = len(quoted.split(".")[1])
    q = float(quoted)
    return any(
        len(p.split(".")[1]) >= decimals and abs(float(p) - q) <= 0.5 * 10**-decimals + 1e-12
        for p in printed
    )


def unmatched(stem: str, nb) -> dict[str, list[str]]:
    """The quoted numbers of each checked cell that the run did not print, by cell id."""
    spec = QUOTES[stem]
    printed = printed_numbers(nb)
    out = {}
    for cell in nb.cells:
        cid = cell.get("id", "")
        is_answer = cell.cell_type == "markdown" and cid.startswith("a-")
        if cid in spec.skip or not (is_answer or cid in spec.cells):
            continue
        text = re.sub(r"`[^`]*`", "", cell.source)  # code in backticks is not a result
        missing = [
            n for n in NUMBER.findall(text) if n not in spec.elsewhere and not rounds_to(n, printed)
        ]
        if missing:
            out[cid] = missing
    return out


def execute(stem: str, home: Path) -> nbformat.NotebookNode:
    """The lab's solution notebook run on its defaults, its files under ``home``."""
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{stem}.ipynb", as_version=4)
    os.environ["LABKIT_HOME"] = str(home)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(home)}}
    ).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", choices=sorted(QUOTES))
    parser.add_argument("--executed", type=Path, help="a solution notebook already run")
    args = parser.parse_args(argv)
    if args.executed:
        nb = nbformat.read(args.executed, as_version=4)
    else:
        with tempfile.TemporaryDirectory() as home:
            nb = execute(args.lab, Path(home))
    missing = unmatched(args.lab, nb)
    for cid, numbers in missing.items():
        print(f"{args.lab} {cid}: not printed by the default run: {', '.join(numbers)}")
    if not missing:
        print(f"{args.lab}: every number the answers quote is printed by the default run")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

"""Build every lab notebook from its text source in notebooks/source/.

    python generate_notebooks.py            # notebooks/solutions/ and notebooks/student/
    python generate_notebooks.py --check    # exit 1 if a committed notebook is out of date
    python generate_notebooks.py --repo https://github.com/you/labkit --ref fall-2026

Each lab is one jupytext "percent" file, ``notebooks/source/NN_name.py``: Markdown cells are
comments, code is code, and a cell's header line carries its stable id and its role::

    # %% [markdown] id="projector"          prose (``{{name}}`` and the like: see FACTS)
    # %% id="parameters" tags=["parameters"]  the lab's typed parameters
    # %% id="hook" exercise                 code; the answer between ### BEGIN/END SOLUTION
    # %% id="hook-check" test points=2      a locked, graded test (### BEGIN/END HIDDEN TESTS)
    # %% [markdown] id="q-views" question    a question, numbered "Question <lab>.<k>" here
    # %% [markdown] id="a-views" answer points=2   its model answer, graded by hand
    # %% id="fetch" only="wikipedia"        a cell for some data sets only
    # %% [markdown] id="a-views-cifar10" answer points=2 only="cifar10"   ... and
    # %% [markdown] id="a-views" answer points=2 only="!cifar10"   for all but CIFAR-10

A question may be followed by several answer cells, one per data set (``only=``): each
notebook shows the one for its data set, the worksheet's solutions show them all.

**Core and optional.** Everything is on a lab's core path unless its header says
``optional``, which goes on one of two kinds of cell::

    # %% [markdown] id="your-turn" optional        a section's heading cell (## or ###): the
                                                    section, up to the next heading of its level
    # %% [markdown] id="q-high-lr" question optional   one question, and its answer cells

Students see "*(optional)*" after the section's heading and after the number of each optional
question; every cell off the core path carries the tag ``optional`` (nbgrader keeps tags),
and the instructor's guide lists each lab's points and hours for the core path and for
everything (``python worksheets/worksheet.py``). To make one exercise optional, give it a
``###`` heading cell of its own and mark that. A core cell must not need an optional
exercise's result: a student who skips it runs on from the next part.

The solution notebook is the nbgrader *source* notebook; the student notebook is made from it
by nbgrader's own preprocessors, in the order ``nbgrader generate_assignment`` runs them, so
it is exactly what nbgrader releases. A few notebooks are a source with other parameters
(``LABS``): Lab 3 is Lab 1 on CIFAR-10, Lab 2b is Lab 2 on BBC News. Variants of any lab:

    python generate_notebooks.py --lab 01_projector_mnist --variant fashion \\
        --set DATASET=fashion-mnist --set EPOCHS=5

Output is deterministic: the ids written in the sources, no timestamps, no outputs.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "source"

DEFAULT_REF = "main"


# ---------------------------------------------------------------------------------------
# Where the kit comes from
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KitSource:
    """The git repository and ref the notebooks install the kit from (Colab) and link to."""

    repo: str  # e.g. https://github.com/you/labkit, or file:///path/to/a/clone
    ref: str = DEFAULT_REF
    version: str = ""  # labkit's version in this checkout: the set-up cell checks it

    @property
    def pip_url(self) -> str:
        return f"git+{self.repo}@{self.ref}"

    @property
    def github(self) -> str | None:
        """``owner/name`` when the repository is on GitHub (Colab opens notebooks from there)."""
        m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.repo)
        return m.group(1) if m else None


def github_https(url: str) -> str | None:
    """``https://github.com/owner/name`` for any spelling of a GitHub remote, else None."""
    m = re.fullmatch(
        r"(?:https://|ssh://git@|git@)github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?", url.strip()
    )
    return f"https://github.com/{m.group(1)}/{m.group(2)}" if m else None


def committed_repo() -> str:
    """The repository URL committed in pyproject.toml (``[project.urls] Repository``)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Repository = "([^"]+)"', text, re.M).group(1)


def origin_repo() -> str | None:
    """The ``origin`` remote of this checkout, when it is a GitHub repository."""
    try:
        url = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return github_https(url)


def kit_version() -> str:
    text = (ROOT / "labkit" / "_version.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def kit_source(repo: str | None = None, ref: str | None = None) -> KitSource:
    repo = (repo or origin_repo() or committed_repo()).rstrip("/")
    return KitSource(github_https(repo) or repo, ref or DEFAULT_REF, kit_version())


def _dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def badge(source: KitSource, path: str) -> str:
    """The "Open in Colab" badge for the notebook at ``path`` (relative to the repository)."""
    if source.github is None:
        return (
            f"*(No Colab badge: Colab opens notebooks from GitHub, and these were made "
            f"for {source.repo}.)*"
        )
    url = f"https://colab.research.google.com/github/{source.github}/blob/{source.ref}/{path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def install(source: KitSource) -> str:
    """Colab only: install the kit, and say in one sentence what to do if that fails."""
    return _dedent(f"""
        # @title Install the kit (on Colab only; about a minute) {{ display-mode: "form" }}
        # Elsewhere, install it once from the repository's root:  pip install -r requirements.txt -e .
        import sys

        KIT = "{source.pip_url}"  # where the course keeps the kit
        KIT_VERSION = "{source.version}"

        if "google.colab" in sys.modules:
            import os
            import subprocess

            class SetupError(Exception):
                def _render_traceback_(self):  # Jupyter shows this message, no traceback
                    return [str(self)]

            # pip keeps what Colab already has (torch, torchvision, tensorboard, ...).
            pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-color",
                                  f"labkit @ {{KIT}}"], capture_output=True, text=True,
                                 env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
            if pip.returncode != 0:  # git's own words say best what went wrong
                said = [line.strip() for line in pip.stderr.splitlines() if line.strip()]
                why = next((line for line in said if line.startswith("fatal:")), said[-1] if said else "")
                if "could not read Username" in why:
                    why = "the repository does not exist, or is private"
                raise SetupError(f"Could not install labkit from {{KIT}} ({{why}}): students, send "
                                 f"this message to your instructor; instructors, regenerate the "
                                 f"notebooks with python generate_notebooks.py --repo URL --ref REF.")
    """)


SETUP = _dedent("""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from IPython.display import Image, display

    import labkit
    from labkit import align, metrics, plots, workflows

    if labkit.__version__ != KIT_VERSION:
        print(f"Warning: this notebook was written for labkit {KIT_VERSION}, but labkit "
              f"{labkit.__version__} is installed. On Colab: Runtime > Restart session, then run "
              f"all again; elsewhere: pip install -e . in the repository. If the warning stays, "
              f"tell your instructor.")

    # Data sets and runs go to one place, never beside the notebook: the repository's root
    # when you run from a checkout, /content on Colab, or LABKIT_HOME when you set it.
    DATA_DIR, OUT = labkit.home(DATA_DIR), labkit.home(OUT)
    (OUT / "figures").mkdir(parents=True, exist_ok=True)
    print(f"labkit {labkit.__version__}: data sets in {DATA_DIR}, this lab's run in {OUT}")
""")


# ---------------------------------------------------------------------------------------
# The labs: a source, and the parameters that make it this notebook
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    name: str  # the notebook's file stem, e.g. "03_projector_cifar10"
    source: str  # the stem of its source in notebooks/source/
    params: dict = field(default_factory=dict)  # what differs from the source's parameters

    @property
    def number(self) -> str:
        """The lab's number in titles: "3" for 03_projector_cifar10, "2b" for 02b_bbc_news."""
        return self.name.split("_")[0].lstrip("0")


LABS = [
    Lab("01_projector_mnist", "01_projector_mnist"),
    Lab("02_wikipedia_topics", "02_wikipedia_topics"),
    Lab("02b_bbc_news", "02_wikipedia_topics", {"DATASET": "bbc", "OUT": "runs/bbc"}),
    Lab(
        "03_projector_cifar10", "01_projector_mnist", {"DATASET": "cifar10", "OUT": "runs/cifar10"}
    ),
    Lab("04_layers_neural_collapse", "04_layers_neural_collapse"),
    Lab("05_grand_tour_alignment", "05_grand_tour_alignment"),
    Lab("06_working_with_embeddings", "06_working_with_embeddings"),
]


# What the prose says about each data set: ``{{name}}`` in a Markdown cell becomes the
# DATASET parameter's ``name``, so a variant on another data set reads right everywhere.
FACTS = {
    "digits": {
        "name": "scikit-learn's digits",
        "what": "1,797 handwritten digits of 8×8 pixels",
        "expected": "about 98-99 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "training takes a few seconds",
    },
    "mnist": {
        "name": "MNIST",
        "what": "70,000 handwritten digits of 28×28 pixels",
        "expected": "about 99 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take one to two minutes on a laptop CPU",
    },
    "fashion-mnist": {
        "name": "Fashion-MNIST",
        "what": "70,000 greyscale photographs of ten kinds of clothing, 28×28 pixels",
        "expected": "about 90 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take one to two minutes on a laptop CPU",
    },
    "cifar10": {
        "name": "CIFAR-10",
        "what": "60,000 colour photographs of ten kinds of object, 32×32 pixels",
        "expected": "about 80 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take 3 to 5 minutes on a laptop CPU (about 3 where the CPU "
        "computes bf16, see below)",
    },
    "wikipedia": {
        "name": "Wikipedia topics",
        "what": "Wikipedia articles on topics you choose",
        "expected": "above 90 %",
        "chance": "one over the number of topics",
        "items": "articles",
        "train_time": "training takes a few seconds",
    },
    "bbc": {
        "name": "BBC News",
        "what": "2,225 BBC News articles in five sections (business, entertainment, "
        "politics, sport, tech)",
        "expected": "about 95 %",
        "chance": "about 20 %",
        "items": "articles",
        "train_time": "training takes a few seconds",
    },
    "blobs": {
        "name": "Gaussian blobs",
        "what": "synthetic Gaussian clusters",
        "expected": "close to 100 %",
        "chance": "one over the number of blobs",
        "items": "points",
        "train_time": "training takes a few seconds",
    },
}

HOW_TO_RUN = (
    "Run the cells from the top (on Colab, *Runtime → Run all*; the first cell installs the "
    "kit). *Run all* stops with a `NotImplementedError` at the first exercise you have not "
    "done yet: that is expected. Write your code in that cell in place of "
    "`raise NotImplementedError()`, run it, then run the test cell after it, whose message "
    "tells you what to fix; once it passes, run the rest from there up to the next "
    "exercise (on Colab, with the test cell selected, *Runtime → Run after*; in JupyterLab, "
    "select the cell after it and choose *Run → Run Selected Cell and All Below*). "
    "Parts and questions marked *(optional)* are beyond the core path: to leave out an "
    "optional exercise, run on in the same way from the first cell after its part. "
    "Where files go: on Colab, `/content/data` and `/content/runs` (the Files panel on the "
    "left); in a checkout of the kit, `data/` and `runs/` at its root; set `LABKIT_HOME` to "
    "use another folder. The set-up cell prints both."
)

# What students hand in, said in these words wherever it is said: every notebook's title
# cell and Lab 2's last section ({{hand_in}}), the worksheet, the README and the guide
# (tests/test_worksheets.py checks each).
HAND_IN = (
    "Hand in the notebook of each lab you do: its `.ipynb` file, under its own name, run from "
    "top to bottom with your code in the exercise cells and your answers in the answer cells "
    "(on Colab: *File → Download → Download .ipynb*). The notebook is what is graded. The "
    "worksheet is the printed form of the same questions, with the same numbers, to read and "
    "draft on; it is not handed in, and neither is `mantis.csv`."
)

ROLES = ("exercise", "test", "question", "answer")
NBGRADER = {"schema_version": 3, "task": False}


class SourceError(ValueError):
    """A lab source that cannot become a notebook: the message names the file and cell."""


def read_source(stem: str, sources: Path = SOURCES) -> nbformat.NotebookNode:
    path = sources / f"{stem}.py"
    nb = jupytext.read(path, fmt="py:percent")
    ids = [c.metadata.get("id") for c in nb.cells]
    for cell, cid in zip(nb.cells, ids, strict=True):
        if not cid or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", cid):
            raise SourceError(
                f'{path.name}: every cell needs id="lower-case-words" in its '
                f"header; this one has {cid!r}:\n{cell.source[:200]}"
            )
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SourceError(f"{path.name}: cell ids are used twice: {', '.join(dupes)}")
    return nb


def _param_lines(cell_source: str) -> dict[str, ast.AnnAssign]:
    tree = ast.parse(cell_source)
    params = {}
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            raise SourceError(
                f"a parameters cell holds only `NAME: type = value` lines, "
                f"not: {ast.get_source_segment(cell_source, node)}"
            )
        params[node.target.id] = node
    return params


def source_params(nb: nbformat.NotebookNode) -> dict:
    """The parameters of a source's first parameters cell, as Python values."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {k: ast.literal_eval(n.value) for k, n in _param_lines(cell.source).items()}


def set_params(cell_source: str, overrides: dict) -> str:
    """The parameters cell with ``overrides`` written in place (types and comments kept)."""
    lines = cell_source.splitlines()
    known = _param_lines(cell_source)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise SourceError(
            f"no parameter {', '.join(unknown)}; the parameters are {', '.join(known)}"
        )
    for key, value in overrides.items():
        node = known[key]
        if ast.literal_eval(node.value) == value:
            continue  # written as the source writes it
        line = lines[node.lineno - 1]
        start, end = node.value.col_offset, node.value.end_col_offset
        lines[node.lineno - 1] = line[:start] + _literal(value) + line[end:]
    return "\n".join(lines)


def _literal(value) -> str:
    """Python source for a parameter value, strings in double quotes as in the sources."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _fill(text: str, values: dict, where: str) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise SourceError(
                f"{where}: no value for {{{{{m.group(1)}}}}}; known: {', '.join(sorted(values))}"
            )
        return str(values[m.group(1)])

    return re.sub(r"\{\{(\w+)\}\}", one, text)


def _role(cell) -> str | None:
    roles = [r for r in ROLES if r in cell.metadata]
    if len(roles) > 1:
        raise SourceError(f"cell {cell.metadata['id']} has two roles: {', '.join(roles)}")
    return roles[0] if roles else None


def _included(cell, dataset: str) -> bool:
    """Whether ``cell`` belongs in the notebook for ``dataset``: ``only="a,b"`` names the data
    sets it is for, ``only="!a,!b"`` those it is not for."""
    only = cell.metadata.get("only")
    if only is None:
        return True
    names = [d.strip() for d in str(only).split(",")]
    if all(n.startswith("!") for n in names):
        return f"!{dataset}" not in names
    return dataset in names


HEADING = re.compile(r"^(#{2,6}) (.+)$", re.M)
OPTIONAL_MARK = "*(optional)*"


def _heading_level(cell) -> int | None:
    """The level of a Markdown cell's first section heading (``##`` 2, ``###`` 3), if any."""
    if cell.cell_type != "markdown":
        return None
    m = HEADING.search(cell.source)
    return len(m.group(1)) if m else None


def optional_cells(cells: list, where: str) -> set[str]:
    """The ids of the cells off the core path. ``optional`` in a cell's header marks a
    section heading cell (everything up to the next heading of the same or a higher level is
    optional) or a question cell (it and its answer cells)."""
    out: set[str] = set()
    scope: int | None = None  # the level of the optional heading we are under
    for i, cell in enumerate(cells):
        level = _heading_level(cell)
        if level is not None and scope is not None and level <= scope:
            scope = None
        marked = "optional" in cell.metadata
        if marked and level is not None:
            scope = level if scope is None else scope
        elif marked and _role(cell) == "question":
            out.add(cell.metadata["id"])
            for after in cells[i + 1 :]:
                if _role(after) != "answer":
                    break
                out.add(after.metadata["id"])
        elif marked:
            raise SourceError(
                f"{where}, cell {cell.metadata['id']}: `optional` goes on a section's heading "
                f"cell (## or ###) or on a question cell, not on this one"
            )
        if scope is not None:
            out.add(cell.metadata["id"])
    return out


def _mark_heading(text: str) -> str:
    """The cell's first heading line with the optional mark after it."""
    m = HEADING.search(text)
    return text[: m.end()] + " " + OPTIONAL_MARK + text[m.end() :]


def build_solution(
    lab: Lab,
    source: KitSource,
    path: str,
    *,
    variant: str | None = None,
    overrides: dict | None = None,
    sources: Path = SOURCES,
) -> nbformat.NotebookNode:
    """The solution (nbgrader source) notebook of ``lab``; ``path`` is where it is committed
    (its Colab badge opens that file)."""
    src = read_source(lab.source, sources)
    defaults = source_params(src)
    overrides = {**lab.params, **(overrides or {})}
    dataset = overrides.get("DATASET", defaults.get("DATASET"))
    if variant and "OUT" not in overrides:  # a variant's run does not overwrite the lab's
        base = {**defaults, **lab.params}["OUT"]
        overrides["OUT"] = f"{base.rstrip('/')}-{variant}"
    if dataset not in FACTS:
        raise SourceError(
            f"no prose for DATASET={dataset!r}; add it to FACTS in "
            f"generate_notebooks.py (known: {', '.join(FACTS)})"
        )
    number = lab.source.split("_")[0].lstrip("0")  # questions are numbered by source
    # The data sets the source's model answers speak of: its own and its labs'.
    written_for = {
        d: FACTS[d]["name"]
        for d in dict.fromkeys(
            [defaults.get("DATASET")]
            + [
                x.params["DATASET"]
                for x in LABS
                if x.source == lab.source and "DATASET" in x.params
            ]
        )
    }
    values = {
        **FACTS[dataset],
        "lab": lab.number,
        "badge": badge(source, path),
        "how_to_run": HOW_TO_RUN
        + (
            ""
            if lab.name == lab.source
            else f" This lab is Lab {number} on {FACTS[dataset]['name']}: its questions carry "
            f"Lab {number}'s numbers, as on the worksheet."
        )
        + f"\n\n**What to hand in.** {HAND_IN}",
        "hand_in": HAND_IN,
        "variant": f" (variant: {variant})" if variant else "",
    }

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        # In full, so `jupyter nbconvert --to script` writes a .py file.
        "language_info": {
            "name": "python",
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3},
            "nbconvert_exporter": "python",
        },
        "colab": {"provenance": []},
        "labkit": {
            "lab": lab.name,
            "source": f"notebooks/source/{lab.source}.py",
            "outputs": list(src.metadata.get("labkit", {}).get("outputs", [])),
        },
    }
    questions = 0
    cells = [c for c in src.cells if _included(c, dataset)]
    optional = optional_cells(cells, f"{lab.source}.py")
    for cell in cells:
        cid, role, text = cell.metadata["id"], _role(cell), cell.source
        where = f"{lab.source}.py, cell {cid}"
        tags = [t for t in cell.metadata.get("tags", [])]
        if cell.cell_type == "markdown":
            text = _fill(text, values, where)
            if "optional" in cell.metadata and _heading_level(cell):
                text = _mark_heading(text)
            if role == "question":
                questions += 1
                mark = f"{OPTIONAL_MARK} " if cid in optional else ""
                text = f"**Question {number}.{questions}.** {mark}{text}"
            # An answer cell for some data sets only speaks of those.
            speaks_of = [n for d, n in written_for.items() if _included(cell, d)]
            if role == "answer" and FACTS[dataset]["name"] not in speaks_of:
                text = (
                    f"*(A model answer written for {' and '.join(speaks_of)}: check "
                    f"it against what your run on {FACTS[dataset]['name']} shows.)*\n\n" + text
                )
            out = nbformat.v4.new_markdown_cell(text, id=cid)
        else:
            if "parameters" in tags:
                text = set_params(text, overrides)
            out = nbformat.v4.new_code_cell(text, id=cid)
        if role is not None:
            tags.append(role)
            points = cell.metadata.get("points")
            graded = role in ("test", "answer")
            if graded != (points is not None):
                raise SourceError(
                    f"{where}: "
                    + (
                        "a test or answer cell needs points=N"
                        if graded
                        else "an exercise or question takes no points (its test or answer does)"
                    )
                )
            meta = {
                **NBGRADER,
                "grade_id": cid,
                "solution": role in ("exercise", "answer"),
                "grade": graded,
                "locked": role in ("test", "question"),
            }
            if graded:
                meta["points"] = points
            if role == "exercise" and "### BEGIN SOLUTION" not in text:
                raise SourceError(
                    f"{where}: an exercise needs ### BEGIN SOLUTION ... "
                    f"### END SOLUTION around its answer"
                )
            out.metadata["nbgrader"] = meta
        if cid in optional:  # off the core path: the guide's tables and the grader see it
            tags.append("optional")
        if tags:
            out.metadata["tags"] = tags
        nb.cells.append(out)
        if "parameters" in tags:  # the kit's plumbing, the same in every lab
            nb.cells.append(nbformat.v4.new_code_cell(install(source), id="install"))
            nb.cells.append(nbformat.v4.new_code_cell(SETUP, id="setup"))
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise SourceError(
            f"{lab.source}.py has no parameters cell for DATASET={dataset!r} "
            f"(its parameters cells are only for other data sets)"
        )
    nbformat.validate(nb)
    return nb


def release(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook: what ``nbgrader generate_assignment`` releases, made by its own
    preprocessors in its order (less the two that need its database and header files)."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb, resources = copy.deepcopy(solution), {}
    for step in (
        LockCells,
        ClearSolutions,
        ClearOutput,
        CheckCellMetadata,
        ComputeChecksums,
        ClearHiddenTests,
        ClearMarkScheme,
        ComputeChecksums,
        CheckCellMetadata,
    ):
        nb, resources = step().preprocess(nb, resources)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """As nbgrader writes a notebook (nbconvert's NotebookExporter), byte for byte."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def notebooks(
    lab: Lab,
    source: KitSource,
    out: Path,
    notebooks_dir: Path = NOTEBOOKS,
    *,
    variant: str | None = None,
    overrides: dict | None = None,
) -> dict[Path, str]:
    """The solution and student notebooks of one lab, by the path each is written to."""
    paths = {v: out / v / f"{lab.name}.ipynb" for v in ("solutions", "student")}
    where = {v: "notebooks/" + p.relative_to(notebooks_dir).as_posix() for v, p in paths.items()}
    solution = build_solution(lab, source, where["solutions"], variant=variant, overrides=overrides)
    # The student's badge opens the student's file: build it again with that path.
    student = release(
        build_solution(lab, source, where["student"], variant=variant, overrides=overrides)
    )
    return {paths["solutions"]: render(solution), paths["student"]: render(student)}


@dataclass
class QuestionText:
    number: str  # "4.2"
    text: str  # Markdown, without the "**Question 4.2.**" prefix
    answer: str  # the model answer for the source's own data set, Markdown
    points: float
    section: str  # the heading of the notebook section the question is in
    lab: str  # the source's stem
    id: str = ""  # the question cell's id
    answer_id: str = ""
    # model answers for other data sets of the same source's labs: {data set name: Markdown}
    other_answers: dict[str, str] = field(default_factory=dict)
    other_answer_ids: dict[str, str] = field(default_factory=dict)  # {data set name: cell id}
    optional: bool = False  # off the core path (marked, or in a section marked optional)


def questions(stem: str, sources: Path = SOURCES) -> list[QuestionText]:
    """A source's questions with their model answers, numbered as in its notebooks."""
    nb = read_source(stem, sources)
    number, out, section = stem.split("_")[0].lstrip("0"), [], ""
    dataset = source_params(nb).get("DATASET")
    values = {**FACTS.get(dataset, {}), "lab": number, "variant": ""}
    optional = optional_cells([c for c in nb.cells if _included(c, dataset)], f"{stem}.py")
    for i, cell in enumerate(nb.cells):
        if not _included(cell, dataset):
            continue
        heading = (
            re.search(r"^## (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        )
        if heading:
            section = heading.group(1).strip()
        if _role(cell) != "question":
            continue
        answers = []  # the answer cells right after the question, one per data set
        for after in nb.cells[i + 1 :]:
            if _role(after) != "answer":
                break
            answers.append(after)
        own = [a for a in answers if _included(a, dataset)]
        if len(own) != 1:
            raise SourceError(
                f"{stem}.py: question {cell.metadata['id']} must be followed by "
                f"its answer cell (answer points=N), one per data set"
            )
        where = f"{stem}.py, cell {cell.metadata['id']}"
        others, other_ids = {}, {}
        for lab in LABS:
            other = lab.params.get("DATASET")
            if lab.source == stem and other and other != dataset:
                for a in answers:
                    if a is not own[0] and _included(a, other):
                        name = FACTS[other]["name"]
                        others[name] = _fill(a.source, {**values, **FACTS[other]}, where)
                        other_ids[name] = a.metadata["id"]
        out.append(
            QuestionText(
                f"{number}.{len(out) + 1}",
                _fill(cell.source, values, where),
                _fill(own[0].source, values, where),
                float(own[0].metadata["points"]),
                section,
                stem,
                cell.metadata["id"],
                own[0].metadata["id"],
                others,
                other_ids,
                cell.metadata["id"] in optional,
            )
        )
    return out


def _parse_set(items: list[str]) -> dict:
    values = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            values[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key.strip()] = text  # a bare word: a string
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare notebooks/ with the sources; exit 1 on any difference",
    )
    parser.add_argument("--lab", help="only this lab (a file stem, e.g. 04_layers_neural_collapse)")
    parser.add_argument("--variant", help="write a variant into notebooks/variants/NAME/")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="override a parameter of the lab, e.g. DATASET=bbc or EPOCHS=20",
    )
    parser.add_argument(
        "--repo",
        help="the git repository Colab installs the kit from and the "
        "badges open, e.g. https://github.com/you/labkit (default: the origin "
        "remote if on GitHub, else the Repository URL in pyproject.toml)",
    )
    parser.add_argument("--ref", help=f"the branch, tag or commit (default: {DEFAULT_REF})")
    parser.add_argument(
        "--out",
        type=Path,
        default=NOTEBOOKS,
        help="the notebooks/ folder to write (default: this repository's)",
    )
    args = parser.parse_args(argv)
    source = kit_source(args.repo, args.ref)
    if source.github is None:
        print(
            f"note: {source.repo} is not a GitHub repository, so the notebooks get no "
            f"Colab badge (Colab opens notebooks from GitHub)",
            file=sys.stderr,
        )

    selected = [lab for lab in LABS if args.lab in (None, lab.name)]
    if not selected:
        parser.error(f"no lab {args.lab!r}; labs: {', '.join(lab.name for lab in LABS)}")
    if (args.set or args.variant) and not (args.lab and args.variant):
        parser.error("a variant needs --lab and --variant (and --set PARAM=VALUE ...)")
    if args.variant and not re.fullmatch(r"[A-Za-z0-9][\w-]*", args.variant):
        parser.error(f"--variant {args.variant!r}: use letters, digits, - and _")

    files: dict[Path, str] = {}
    try:
        if args.variant:
            files = notebooks(
                selected[0],
                source,
                args.out / "variants" / args.variant,
                args.out,
                variant=args.variant,
                overrides=_parse_set(args.set),
            )
        else:
            for lab in selected:
                files.update(notebooks(lab, source, args.out, args.out))
            if args.lab is None:  # the committed variants are checked and rebuilt too
                files.update(committed_variants(source, args.out))
    except SourceError as e:
        parser.error(f"{args.lab or 'a lab'}: {e}")

    if args.check:
        stale = [
            p
            for p, text in files.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        known = {p.resolve() for p in files}
        folders = {p.parent for p in files}
        extra = [
            p
            for f in sorted(folders)
            for p in sorted(f.glob("*.ipynb"))
            if p.resolve() not in known
        ]
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
        for p in extra:
            print(f"not generated from a source: {p}")
        if stale or extra:
            print("run: python generate_notebooks.py", file=sys.stderr)
            return 1
        print(f"{len(files)} notebooks up to date")
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if args.variant:
        _remember_variant(args.out, args.variant, selected[0].name, _parse_set(args.set))
    print(f"wrote {len(files)} notebooks under {args.out}")
    return 0


# ---------------------------------------------------------------------------------------
# Committed variants: notebooks/variants/<name>/variant.json says how each was made
# ---------------------------------------------------------------------------------------


def _remember_variant(out: Path, name: str, lab: str, overrides: dict) -> None:
    path = out / "variants" / name / "variant.json"
    path.write_text(
        json.dumps({"lab": lab, "set": overrides}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )


def committed_variants(source: KitSource, out: Path) -> dict[Path, str]:
    files = {}
    for spec in sorted((out / "variants").glob("*/variant.json")):
        made = json.loads(spec.read_text(encoding="utf-8"))
        lab = next((x for x in LABS if x.name == made["lab"]), None)
        if lab is None:
            raise SourceError(f"{spec}: no lab {made['lab']!r}")
        files.update(
            notebooks(
                lab, source, spec.parent, out, variant=spec.parent.name, overrides=made["set"]
            )
        )
    return files


if __name__ == "__main__":
    sys.exit(main())

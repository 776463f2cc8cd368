"""The solution notebook of a lab: its source's cells with the lab's parameters written in, the
prose filled in for its data set, the kit's install and set-up cells after the parameters, and
nbgrader's metadata on every exercise, test, question and answer. It is the nbgrader *source*
notebook (the student's is released from it, :mod:`authoring.release`)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from .course import FACTS, HAND_IN, HOW_TO_RUN, LABS, SOURCES, Lab
from .kit import SETUP, KitSource, badge, install
from .source import (
    OPTIONAL_MARK,
    SourceError,
    cell_role,
    fill,
    heading_level,
    included,
    mark_heading,
    optional_cells,
    read_source,
    set_params,
    source_params,
)

NBGRADER = {"schema_version": 3, "task": False}


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
            f"authoring/course.py (known: {', '.join(FACTS)})"
        )
    values = _prose_values(lab, source, path, dataset, variant)
    speaks = _answers_written_for(lab, defaults)

    nb = nbformat.v4.new_notebook()
    nb.metadata = _notebook_metadata(lab, src)
    questions = 0
    cells = [c for c in src.cells if included(c, dataset)]
    optional = optional_cells(cells, f"{lab.source}.py")
    for cell in cells:
        cid, role = cell.metadata["id"], cell_role(cell)
        where = f"{lab.source}.py, cell {cid}"
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            if role == "question":
                questions += 1
            label = f"{_number(lab)}.{questions}"  # a question's, "4.2"
            out = _markdown(cell, values, where, dataset, speaks, label, cid in optional)
        else:
            text = set_params(cell.source, overrides) if "parameters" in tags else cell.source
            out = nbformat.v4.new_code_cell(text, id=cid)
        if role is not None:
            tags.append(role)
            out.metadata["nbgrader"] = _grading(cell, role, out.source, where)
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


def _number(lab: Lab) -> str:
    """The number a lab's questions carry: its source's (Lab 3 asks Lab 1's questions)."""
    return lab.source.split("_")[0].lstrip("0")


def _prose_values(
    lab: Lab, source: KitSource, path: str, dataset: str, variant: str | None
) -> dict:
    """What ``{{name}}`` stands for in this notebook's Markdown cells."""
    number = _number(lab)
    as_variant = (
        ""
        if lab.name == lab.source
        else f" This lab is Lab {number} on {FACTS[dataset]['name']}: its questions carry "
        f"Lab {number}'s numbers, as on the worksheet."
    )
    return {
        **FACTS[dataset],
        "lab": lab.number,
        "badge": badge(source, path),
        "how_to_run": HOW_TO_RUN + as_variant + f"\n\n**What to hand in.** {HAND_IN}",
        "hand_in": HAND_IN,
        "variant": f" (variant: {variant})" if variant else "",
    }


def _answers_written_for(lab: Lab, defaults: dict) -> dict[str, str]:
    """The data sets the source's model answers speak of, its own and its labs', by name."""
    datasets = [defaults.get("DATASET")] + [
        x.params["DATASET"] for x in LABS if x.source == lab.source and "DATASET" in x.params
    ]
    return {d: FACTS[d]["name"] for d in dict.fromkeys(datasets)}


def _notebook_metadata(lab: Lab, src: nbformat.NotebookNode) -> dict:
    return {
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


def _markdown(
    cell,
    values: dict,
    where: str,
    dataset: str,
    speaks: dict[str, str],
    label: str,
    optional: bool,
) -> nbformat.NotebookNode:
    """A prose cell filled in: its optional mark, a question's number (``label``), and the
    note on an answer written for another data set."""
    text = fill(cell.source, values, where)
    role = cell_role(cell)
    if "optional" in cell.metadata and heading_level(cell):
        text = mark_heading(text)
    if role == "question":
        mark = f"{OPTIONAL_MARK} " if optional else ""
        text = f"**Question {label}.** {mark}{text}"
    # An answer cell for some data sets only speaks of those.
    speaks_of = [n for d, n in speaks.items() if included(cell, d)]
    if role == "answer" and FACTS[dataset]["name"] not in speaks_of:
        text = (
            f"*(A model answer written for {' and '.join(speaks_of)}: check "
            f"it against what your run on {FACTS[dataset]['name']} shows.)*\n\n" + text
        )
    return nbformat.v4.new_markdown_cell(text, id=cell.metadata["id"])


def _grading(cell, role: str, text: str, where: str) -> dict:
    """nbgrader's metadata for an exercise, test, question or answer cell."""
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
        "grade_id": cell.metadata["id"],
        "solution": role in ("exercise", "answer"),
        "grade": graded,
        "locked": role in ("test", "question"),
    }
    if graded:
        meta["points"] = points
    if role == "exercise" and "### BEGIN SOLUTION" not in text:
        raise SourceError(
            f"{where}: an exercise needs ### BEGIN SOLUTION ... ### END SOLUTION around its answer"
        )
    return meta

"""A source's questions and their model answers, numbered as in its notebooks: what the
worksheet prints and the instructor's guide counts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .course import FACTS, LABS, SOURCES
from .source import (
    SourceError,
    cell_role,
    fill,
    included,
    optional_cells,
    read_source,
    source_params,
)


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
    optional = optional_cells([c for c in nb.cells if included(c, dataset)], f"{stem}.py")
    for i, cell in enumerate(nb.cells):
        if not included(cell, dataset):
            continue
        heading = (
            re.search(r"^## (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        )
        if heading:
            section = heading.group(1).strip()
        if cell_role(cell) != "question":
            continue
        answers = []  # the answer cells right after the question, one per data set
        for after in nb.cells[i + 1 :]:
            if cell_role(after) != "answer":
                break
            answers.append(after)
        own = [a for a in answers if included(a, dataset)]
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
                    if a is not own[0] and included(a, other):
                        name = FACTS[other]["name"]
                        others[name] = fill(a.source, {**values, **FACTS[other]}, where)
                        other_ids[name] = a.metadata["id"]
        out.append(
            QuestionText(
                f"{number}.{len(out) + 1}",
                fill(cell.source, values, where),
                fill(own[0].source, values, where),
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

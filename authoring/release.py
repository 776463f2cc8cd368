"""The student notebook, released from the solution by nbgrader's own preprocessors (so it is
exactly what ``nbgrader generate_assignment`` releases), and a notebook's text as nbgrader
writes it."""

from __future__ import annotations

import copy

import nbformat


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

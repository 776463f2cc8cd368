"""Reading a lab source (``notebooks/source/NN_name.py``, a jupytext "percent" file): its
cells, their ids and roles, its parameters, the data sets a cell is for, and which cells are
off the core path."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jupytext
import nbformat

from .course import SOURCES

ROLES = ("exercise", "test", "question", "answer")


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


def fill(text: str, values: dict, where: str) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise SourceError(
                f"{where}: no value for {{{{{m.group(1)}}}}}; known: {', '.join(sorted(values))}"
            )
        return str(values[m.group(1)])

    return re.sub(r"\{\{(\w+)\}\}", one, text)


def cell_role(cell) -> str | None:
    roles = [r for r in ROLES if r in cell.metadata]
    if len(roles) > 1:
        raise SourceError(f"cell {cell.metadata['id']} has two roles: {', '.join(roles)}")
    return roles[0] if roles else None


def included(cell, dataset: str) -> bool:
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


def heading_level(cell) -> int | None:
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
        level = heading_level(cell)
        if level is not None and scope is not None and level <= scope:
            scope = None
        marked = "optional" in cell.metadata
        if marked and level is not None:
            scope = level if scope is None else scope
        elif marked and cell_role(cell) == "question":
            out.add(cell.metadata["id"])
            for after in cells[i + 1 :]:
                if cell_role(after) != "answer":
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


def mark_heading(text: str) -> str:
    """The cell's first heading line with the optional mark after it."""
    m = HEADING.search(text)
    return text[: m.end()] + " " + OPTIONAL_MARK + text[m.end() :]

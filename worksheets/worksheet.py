"""The assignment worksheet: the LaTeX sheet (student and solutions), its Markdown version and
the instructor's guide's question table, all made from the lab sources' questions.

    python worksheets/worksheet.py          # write worksheet.tex, WORKSHEET.md, the guide's tables
    python worksheets/worksheet.py --pdf    # ... and build both PDFs with pdflatex
    python worksheets/worksheet.py --check  # exit 1 if a written file is out of date

Every question and its model answer is written once, in its lab's source
(``notebooks/source/NN_*.py``, a ``question`` cell and the ``answer`` cell after it), and
numbered there as here: Question 4.2 is the second question of Lab 4. This file adds only
what a sheet needs around them: a title, a few words and a figure per section. The .tex holds
every answer inside ``\\solution{...}``, which prints only when ``\\solutionstrue`` is set:
one file, two PDFs (``worksheet-student.pdf``, ``worksheet-solutions.pdf``). The figures are
made by the kit: ``make_figures.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUIDE = HERE / "INSTRUCTOR_GUIDE.md"
TABLE_START, TABLE_END = "<!-- questions:start -->", "<!-- questions:end -->"
POINTS_START, POINTS_END = "<!-- points:start -->", "<!-- points:end -->"
HOURS_START, HOURS_END = "<!-- hours:start -->", "<!-- hours:end -->"
COVERAGE_START, COVERAGE_END = "<!-- coverage:start -->", "<!-- coverage:end -->"
COVERAGE = HERE / "coverage.csv"
# The source material the labs are built from (shared/sources/ beside the repository).
SOURCE_MATERIAL = (
    "projecting-your-data.txt",
    "layerwise-embeddings-homework.txt",
    "grand-tour-umap-tour.txt",
    "aquarium-embeddings.txt",
    "mit-6390-lab8-readme.txt",
    "mit-lab8-part1_text_classification.py",
    "mit-lab8-part1_image_classification.py",
    "mit-lab8-assignment.tex",
    "mit-lab8-worksheet.md",
)

sys.path.insert(0, str(HERE.parent))
import authoring  # noqa: E402


@dataclass
class Section:
    source: str  # the lab source the questions come from, e.g. "04_layers_neural_collapse"
    title: str
    labs: str  # which notebooks answer it
    intro: str  # Markdown
    figure: str | None = None  # file in worksheets/figures/, made by make_figures.py
    # Markdown; {name} fields are filled from what make_figures.py recorded of the figure
    caption: str = ""

    @property
    def questions(self) -> list[authoring.QuestionText]:
        return authoring.questions(self.source)

    @property
    def caption_text(self) -> str:
        """The caption: what the figure shows, with its numbers, and the run that drew it."""
        record = figure_record(self.figure)
        if record["lab"] != self.source:
            raise authoring.SourceError(
                f"{self.figure} was drawn from {record['lab']}, not from this section's lab "
                f"{self.source}: run python worksheets/make_figures.py"
            )
        return self.caption.format(**_shown(record["shows"])) + " " + run_caption(record)


SECTIONS = [
    Section(
        "01_projector_mnist",
        "Reading the Embedding Projector",
        "Lab 1 (MNIST) or Lab 3 (CIFAR-10)",
        "Open TensorBoard's Projector on your run. Each tensor is the penultimate layer of "
        "the CNN for the probe images at one epoch.",
        figure="methods.png",
        caption="The last epoch's embedding in {n_methods} projections, with their "
        "trustworthiness ({trustworthiness}; made by `labkit.plots.compare`).",
    ),
    Section(
        "02_wikipedia_topics",
        "From epoch 0 to the last epoch: text",
        "Lab 2 (Wikipedia topics) or Lab 2b (BBC News)",
        "Use the aligned epoch grid, the interactive figure and the accuracy table. Off the "
        "core path, Mantis (the lab's optional section 9 walks through it): upload the run's "
        "`mantis.csv`, "
        "choose `embedding_epoch_0` as the vector column with UMAP in 3-D, colour by "
        "`categoric`, then choose `embedding_epoch_1`, `embedding_epoch_2`, ... to move "
        "through training. The `coordinate1`/`coordinate2` columns are a ready 2-D "
        "projection of the last epoch (Mantis' *Direct Projection*): use them to see the "
        "notebook's own picture without Mantis computing one.",
        figure="epoch_grid_text.png",
        caption="The probe articles' embedding from epoch 0 to the last epoch: TF-IDF vectors "
        "through the MLP, each epoch projected by {method} and aligned by Orthogonal "
        "Procrustes (`labkit.plots.epoch_grid`).",
    ),
    Section(
        "04_layers_neural_collapse",
        "Better clusters with depth? Neural collapse",
        "Lab 4",
        "The deep MLP is trained until it classifies its training set almost perfectly; "
        "every layer was recorded.",
        figure="metric_curves.png",
        caption="Accuracy, NC1 (log scale), silhouette and probe accuracies per layer over "
        "the epochs, measured on the probe, {n_classes} classes (made by "
        "`labkit.plots.metric_curves`); the probe is classified without a mistake from "
        "epoch {probe_perfect_from} on.",
    ),
    Section("05_grand_tour_alignment", "Alignment and the Grand Tour", "Lab 5", ""),
    Section(
        "06_working_with_embeddings",
        "Disagreement, similarity and label errors",
        "Lab 6",
        "",
        figure="agreement.png",
        caption="The last epoch in the kit's PCA frame, coloured by label; a black ring "
        "on each of the {rings} probe points whose prediction differs from its label, "
        "{rings_on_changed_labels} of them on labels the kit changed (made by "
        "`labkit.plots.agreement`).",
    ),
]


# ---------------------------------------------------------------------------------------
# The figures' captions, from what make_figures.py recorded of each run
# ---------------------------------------------------------------------------------------

FIGURE_RECORDS = HERE / "figures" / "figures.json"
MODEL_NAMES = {"cnn": "the kit's CNN", "mlp": "the kit's MLP", "deep-mlp": "the kit's deep MLP"}
STANDIN_NAMES = {
    "digits": "scikit-learn's digits (1,797 images of 8×8 pixels)",
    "generated-news": "generated news articles in three sections (science, technology, "
    "sport; the first two share part of their words)",
    "csv": "the articles of a CSV given to make_figures.py",
}
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def figure_record(figure: str) -> dict:
    records = json.loads(FIGURE_RECORDS.read_text(encoding="utf-8"))
    if figure not in records:
        raise authoring.SourceError(
            f"figures/figures.json has no record of {figure}: run python worksheets/make_figures.py"
        )
    return records[figure]


def _shown(shows: dict) -> dict:
    """The caption's fields from a figure's numbers."""
    fields = dict(shows)
    if "trustworthiness" in shows:
        fields["n_methods"] = {1: "one", 2: "two", 3: "three"}.get(len(shows["methods"]))
        fields["trustworthiness"] = ", ".join(
            f"{METHOD_NAMES.get(m, m)} {t:.3f}" for m, t in shows["trustworthiness"].items()
        )
    if "method" in shows:
        fields["method"] = METHOD_NAMES.get(shows["method"], shows["method"])
    if "classes" in shows:
        fields["n_classes"] = len(shows["classes"])
    return fields


def _and(items: list) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _percent(share: float, digits: int = 0) -> str:
    return f"{share * 100:.{digits}f} %"


def run_caption(record: dict) -> str:
    """Which lab's run drew a figure, on which data, as its manifest records it."""
    p = record["params"]
    name = authoring.FACTS[record["dataset"]]["name"]
    number = record["lab"].split("_")[0].lstrip("0")
    data = name
    if p.get("TOPICS"):
        data += f" ({_and(p['TOPICS'])})"
    if record["drawn_from"] != record["dataset"]:
        data = (
            f"{STANDIN_NAMES[record['drawn_from']]}, standing in for {data}, which could not "
            f"be fetched where the figure was made (a run on {name} looks different)"
        )
    if p.get("CLASSES"):
        data = f"classes {_and(p['CLASSES'])} of {data}"
    model = MODEL_NAMES.get(record["model"], f"the `{record['model']}` model")
    if "DEPTH" in p:
        model += f" ({p['DEPTH']} hidden layers)"
    parts = [f"{model} on {data}"]
    if p.get("LABEL_NOISE"):
        parts.append(
            f"{_percent(p['LABEL_NOISE'])} of the labels changed on purpose "
            f"(`LABEL_NOISE = {p['LABEL_NOISE']}`)"
        )
    if p.get("POOL"):
        parts.append(
            f"{_percent(p['POOL'])} of the training split held out as an unlabelled pool "
            f"(`POOL = {p['POOL']}`)"
        )
    parts.append(f"{p['EPOCHS']} epochs, seed {p.get('SEED', 0)}, trained in {record['precision']}")
    split = "training" if p.get("PROBE_SPLIT") == "train" else "test"
    parts.append(f"{record['n_probe']} probe points from the {split} split")
    text = f"Drawn from Lab {number}'s default run: " + "; ".join(parts)
    text += f"; test accuracy {_percent(record['test_acc'], 1)}."
    if record.get("methods_overridden"):
        text += " (Drawn with other projections than the lab's, to be quick.)"
    return text


# ---------------------------------------------------------------------------------------
# Markdown (as the notebooks show it) to LaTeX
# ---------------------------------------------------------------------------------------

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "$": r"\$",
    "×": r"$\times$",
    "→": r"$\rightarrow$",
    "≈": r"$\approx$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "−": "-",
    "–": "--",
    "—": "---",
    "…": r"\dots{}",
    "σ": r"$\sigma$",
    "Σ": r"$\Sigma$",
    "μ": r"$\mu$",
    "ᵀ": r"$^T$",
    "²": r"$^2$",
}


def _escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def tex(markdown: str) -> str:
    """The Markdown of a question or answer as LaTeX: `code`, $math$, **bold**, *italic*,
    [links](url) and paragraphs; every other character escaped."""
    out = []
    # Code and maths first: their contents are not Markdown.
    for piece in re.split(r"(`[^`]+`|\$[^$]+\$)", markdown):
        if piece.startswith("`") and len(piece) > 1:
            out.append(r"\texttt{" + _escape(piece[1:-1]) + "}")
        elif piece.startswith("$") and len(piece) > 1:
            out.append(piece)
        else:
            text = _escape(piece)
            text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1", text)
            text = re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", text, flags=re.S)
            text = re.sub(r"\*(.+?)\*", r"\\emph{\1}", text, flags=re.S)
            text = re.sub(r'"(.+?)"', r"``\1''", text, flags=re.S)
            out.append(text)
    return re.sub(r"\n\s*\n", r"\n\n\\par ", "".join(out)).strip()


def latex() -> str:
    lines = [
        r"""\documentclass[11pt,a4paper]{article}
\usepackage[utf8]{inputenc}
\usepackage{cmap}  % before fontenc: text copied from the PDF reads right (fi, fl, _)
\usepackage[T1]{fontenc}
\usepackage[margin=2.3cm]{geometry}
\usepackage{graphicx}
\usepackage{amsmath}
\graphicspath{{figures/}}
% One source, two sheets: \def\withsolutions{} before \input prints the solutions.
\newif\ifsolutions
\ifdefined\withsolutions \solutionstrue \else \solutionsfalse \fi
% Questions carry their lab's numbers (Question 4.2 is in Lab 4), as in the notebooks.
\newcommand{\question}[3]{\par\medskip\noindent\textbf{Question #1.} #3 \hfill\textit{(#2)}\par}
\newcommand{\solution}[2]{\ifsolutions\par\smallskip\noindent\textit{Solution #1.} #2\par\fi}
\title{Representation learning lab: worksheet\ifsolutions\ (with solutions)\fi}
\date{}
\begin{document}
\maketitle
\noindent This sheet is the printed form of the notebooks' questions, with the same numbers:
Question 4.2 is the second question of Lab 4. Answer them in the notebooks' answer cells,
from what your runs show; quote the numbers they print. Questions marked \emph{optional} are
beyond the core path.
"""
        + f"\n\\par\\noindent\\textbf{{What to hand in.}} {tex(authoring.HAND_IN)}\n"
    ]
    for s in SECTIONS:
        lines.append(
            f"\\section*{{{tex(s.labs)}: {tex(s.title)}}}\n"
            + (f"\\noindent {tex(s.intro)}\n" if s.intro else "")
        )
        if s.figure:
            lines.append(
                "\\begin{figure}[h]\\centering\n"
                f"\\includegraphics[width=\\linewidth]{{{s.figure}}}\n"
                f"\\caption{{{tex(s.caption_text)}}}\n\\end{{figure}}\n"
            )
        for q in s.questions:
            points = f"{q.points:g} point{'s' if q.points != 1 else ''}"
            points += ", optional" if q.optional else ""
            lines.append(
                f"\\question{{{q.number}}}{{{points}}}{{{tex(q.text)}}}\n"
                f"\\solution{{{q.number}{_for(s, q)}}}{{{tex(q.answer)}}}\n"
            )
            for name, answer in q.other_answers.items():  # e.g. Lab 3's answer on CIFAR-10
                lines.append(f"\\solution{{{q.number} ({tex(name)})}}{{{tex(answer)}}}\n")
    lines.append("\\end{document}\n")
    return "\n".join(lines)


def _for(section: Section, q: authoring.QuestionText) -> str:
    """ " (MNIST)" after a solution's number when the question has answers for other data
    sets too."""
    if not q.other_answers:
        return ""
    dataset = authoring.source_params(authoring.read_source(section.source)).get("DATASET")
    return f" ({tex(authoring.FACTS[dataset]['name'])})"


def markdown() -> str:
    out = [
        "# Representation learning lab: worksheet",
        "",
        "<!-- Generated by worksheets/worksheet.py from the lab sources' questions. -->",
        "",
        "This sheet is the printed form of the notebooks' questions, with the same numbers: "
        "Question 4.2 is the second question of Lab 4. Answer them in the notebooks' answer "
        "cells, from what your runs show; quote the numbers they print. Questions marked "
        f"{authoring.OPTIONAL_MARK} are beyond the core path. (Instructors: the "
        "model answers are in the solution notebooks and in the PDF built with "
        "`python worksheets/worksheet.py --pdf`.)",
        "",
        f"**What to hand in.** {authoring.HAND_IN}",
        "",
    ]
    for s in SECTIONS:
        out += [f"## {s.labs}: {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.figure:
            out += [f"![{s.caption_text}](figures/{s.figure})", ""]
        for q in s.questions:
            mark = f"{authoring.OPTIONAL_MARK} " if q.optional else ""
            out += [f"**Question {q.number}.** {mark}{q.text}", ""]
    return "\n".join(out)


def _short(text: str) -> str:
    first = re.split(r"(?<=[?.])\s", " ".join(text.split()), maxsplit=1)[0]
    return first if len(first) <= 90 else first[:87] + "..."


def question_table() -> str:
    rows = ["| question | notebook, section | points | part |", "| --- | --- | --- | --- |"]
    for s in SECTIONS:
        for q in s.questions:
            rows.append(
                f"| {q.number} {_short(q.text).replace('|', '/')} | "
                f"`{q.lab}`, {q.section} | {q.points:g} | "
                f"{'optional' if q.optional else 'core'} |"
            )
    return "\n".join(rows)


def _graded(lab: authoring.Lab) -> list[dict]:
    """The graded cells of a lab's solution notebook: nbgrader's metadata, and the part."""
    import nbformat

    nb = nbformat.read(authoring.NOTEBOOKS / "solutions" / f"{lab.name}.ipynb", as_version=4)
    return [
        {**c.metadata["nbgrader"], "optional": "optional" in c.metadata.get("tags", [])}
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    ]


def _count(cells: list[dict]) -> str:
    return f"{len(cells)} ({sum(c['points'] for c in cells):g})"


def points_table() -> str:
    """Each lab's graded cells and points, core path and everything, from its solution
    notebook's nbgrader metadata and ``optional`` tags."""
    rows = [
        "| lab | core: exercises (auto-graded points) | core: questions (points graded by "
        "hand) | core path | optional | everything |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for lab in authoring.LABS:
        graded = _graded(lab)
        core = [g for g in graded if not g["optional"]]
        auto = [g for g in core if not g["solution"]]  # test cells
        manual = [g for g in core if g["solution"]]  # answer cells
        total = sum(g["points"] for g in graded)
        rows.append(
            f"| `{lab.name}` | {_count(auto)} | {_count(manual)} | "
            f"{sum(g['points'] for g in core):g} | "
            f"{total - sum(g['points'] for g in core):g} | {total:g} |"
        )
    return "\n".join(rows)


# What a lab asks of a student besides the computer's time: an estimate, stated in the guide.
READING_WORDS_PER_MINUTE = 100  # the prose and the questions, with the outputs beside them
MINUTES_PER_EXERCISE = 20  # write it, run its test, fix what the message names
MINUTES_PER_POINT = 5  # a written answer: 10 minutes for 2 points
SETUP_MINUTES = 15  # open the notebook, install on Colab, find one's way in TensorBoard
LAB_TIMES = authoring.ROOT / "benchmarks" / "results" / "lab_times.json"


def _student_cells(lab: authoring.Lab) -> list:
    import nbformat

    path = authoring.NOTEBOOKS / "student" / f"{lab.name}.ipynb"
    return nbformat.read(path, as_version=4).cells


def lab_minutes(lab: authoring.Lab, times: dict) -> dict:
    """Minutes a lab takes, core path and everything: its measured compute time and the
    estimate for reading, exercises and written answers. ``untimed`` counts the code cells
    the measurement does not cover (cells added since: rerun benchmarks/bench_labs.py)."""
    measured = times.get(lab.name, {}).get("cells_s", {})
    out = {}
    for part in ("core", "all"):
        cells = [
            c
            for c in _student_cells(lab)
            if part == "all" or "optional" not in c.metadata.get("tags", [])
        ]
        tags = [c.metadata.get("tags", []) for c in cells]
        prose = sum(
            len(c.source.split())
            for c, t in zip(cells, tags, strict=True)
            if c.cell_type == "markdown" and "answer" not in t
        )
        points = sum(
            c.metadata["nbgrader"]["points"]
            for c, t in zip(cells, tags, strict=True)
            if "answer" in t
        )
        code = [c for c in cells if c.cell_type == "code"]
        compute = sum(measured.get(c.get("id"), 0.0) for c in code) / 60
        work = (
            prose / READING_WORDS_PER_MINUTE
            + MINUTES_PER_EXERCISE * sum("exercise" in t for t in tags)
            + MINUTES_PER_POINT * points
            + SETUP_MINUTES
        )
        out[part] = {
            "compute": compute,
            "work": work,
            "untimed": sum(c.get("id") not in measured for c in code),
        }
    return out


def _hours(minutes: float) -> str:
    return f"{round(minutes / 15) / 4:g} h"


def _compute(m: dict) -> str:
    text = f"{m['compute']:.0f} min" if m["compute"] >= 1 else "under 1 min"
    return text + (f" (+{m['untimed']} cells not timed)" if m["untimed"] else "")


def hours_table() -> str:
    """Each lab's time, core path and everything: compute measured, the rest estimated."""
    times = json.loads(LAB_TIMES.read_text(encoding="utf-8")) if LAB_TIMES.exists() else {}
    machine = times.get("machine", {})
    labs = times.get("labs", {})
    rows = [
        "| lab | compute, core (measured) | compute, everything | reading, exercises, answers "
        "(estimate): core / everything | expected: core path | expected: everything |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    totals = {}
    for lab in authoring.LABS:
        m = lab_minutes(lab, labs)
        totals[lab.name] = m["core"]["compute"] + m["core"]["work"]
        rows.append(
            f"| `{lab.name}` | {_compute(m['core'])} | {_compute(m['all'])} | "
            f"{_hours(m['core']['work'])} / {_hours(m['all']['work'])} | "
            f"{_hours(totals[lab.name])} | {_hours(m['all']['compute'] + m['all']['work'])} |"
        )
    base = totals["01_projector_mnist"] + totals["02_wikipedia_topics"]
    choice = [totals[n] for n in totals if n[:2] in ("04", "05", "06")]
    week = (base + min(choice), base + max(choice))
    cpu = (
        f"{machine.get('cpus')} CPU cores ({machine.get('torch_threads')} torch threads), "
        f"{'a GPU' if machine.get('cuda') else 'no GPU'}, torch {machine.get('torch')}"
    )
    return "\n".join(rows) + (
        f"\n\nThe core path of the week, Lab 1, Lab 2 and one of Labs 4 to 6: about "
        f"{_hours(week[0])} to {_hours(week[1])} of a student's time. Compute is each lab's "
        f"default run, timed cell by cell on {cpu} (`python benchmarks/bench_labs.py`); the "
        f"rest is an estimate: reading at {READING_WORDS_PER_MINUTE} words a minute, "
        f"{MINUTES_PER_EXERCISE} minutes an exercise, {MINUTES_PER_POINT} minutes a point of "
        f"written answers and {SETUP_MINUTES} minutes of setting up per lab."
    )


@dataclass
class Coverage:
    """One activity of the source material, and where the labs teach and ask it."""

    source: str  # a file of SOURCE_MATERIAL
    activity: str
    goal: str  # the learning goal
    lab: str  # the lab source's stem
    section: str  # the id of the cell where the student does it
    question: str  # the id of the question cell that asks about it
    where: str = ""  # filled by coverage(): "Lab 1, 3 §4 The Embedding Projector"
    q: authoring.QuestionText | None = None


def _section_of(stem: str, cell_id: str) -> str | None:
    """The lab section (its ``##`` heading, and a ``###`` one inside it) holding the cell."""
    nb = authoring.read_source(stem)
    section = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^## (.+)$", cell.source, re.M)
            section = heading.group(1).strip() if heading else section
        if cell.metadata.get("id") == cell_id:
            sub = (
                re.search(r"^### (.+)$", cell.source, re.M)
                if cell.cell_type == "markdown"
                else None
            )
            return section + (f": {sub.group(1).strip()}" if sub else "")
    return None


def coverage(path: Path = COVERAGE) -> list[Coverage]:
    """The coverage table's rows, each checked: the source is one of SOURCE_MATERIAL, the
    lab source and the section's cell exist, and the question is one of that lab's
    questions with a model answer. A row that points at nothing raises SourceError."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = [Coverage(**row) for row in csv.DictReader(f)]
    stems = {lab.source for lab in authoring.LABS}
    problems = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        at = f"{path.name}, line {i}"
        if row.source not in SOURCE_MATERIAL:
            problems.append(f"{at}: unknown source {row.source!r}")
        if row.lab not in stems:
            problems.append(f"{at}: no lab source {row.lab!r}")
            continue
        section = _section_of(row.lab, row.section)
        if not section:
            problems.append(f"{at}: {row.lab}.py has no cell {row.section!r}")
            continue
        found = [q for q in authoring.questions(row.lab) if q.id == row.question]
        if not found or not found[0].answer.strip():
            problems.append(
                f"{at}: {row.lab}.py has no question {row.question!r} with a model answer"
            )
            continue
        numbers = [lab.number for lab in authoring.LABS if lab.source == row.lab]
        labs = f"Lab {numbers[0]}" if len(numbers) == 1 else f"Labs {' and '.join(numbers)}"
        row.where, row.q = f"{labs} §{section.replace('. ', ' ', 1)}", found[0]
    if problems:
        raise authoring.SourceError("\n".join(problems))
    return rows


def coverage_table() -> str:
    rows = [
        "| # | source | activity | learning goal | lab § | question | model answer |",
        "| ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for i, c in enumerate(coverage(), start=1):
        q = c.q
        answers = f"`{q.answer_id}`" + "".join(
            f"; {name}: `{cell}`" for name, cell in q.other_answer_ids.items()
        )
        rows.append(
            f"| {i} | `{c.source}` | {c.activity} | {c.goal} | {c.where} | "
            f"{q.number} | {answers} ({q.points:g} points) |"
        )
    return "\n".join(rows)


def _between(text: str, start: str, end: str, table: str) -> str:
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + table + "\n" + text[j:]


def guide_with_tables(text: str) -> str:
    text = _between(text, TABLE_START, TABLE_END, question_table())
    text = _between(text, COVERAGE_START, COVERAGE_END, coverage_table())
    text = _between(text, HOURS_START, HOURS_END, hours_table())
    return _between(text, POINTS_START, POINTS_END, points_table())


def outputs() -> dict[Path, str]:
    return {
        HERE / "worksheet.tex": latex(),
        HERE / "WORKSHEET.md": markdown(),
        GUIDE: guide_with_tables(GUIDE.read_text(encoding="utf-8")),
    }


def build_pdfs(out_dir: Path = HERE) -> dict[str, Path]:
    """Both PDFs via pdflatex (run twice for the references), from worksheet.tex."""
    if shutil.which("pdflatex") is None:
        raise SystemExit(
            "pdflatex not found: apt-get install texlive-latex-base "
            "texlive-latex-recommended texlive-fonts-recommended"
        )
    pdfs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, prefix in (("student", ""), ("solutions", r"\def\withsolutions{}")):
            job = f"worksheet-{name}"
            for _ in range(2):
                proc = subprocess.run(
                    [
                        "pdflatex",
                        "-interaction=nonstopmode",
                        "-halt-on-error",
                        f"-jobname={job}",
                        f"-output-directory={tmp}",
                        f"{prefix}\\input{{worksheet.tex}}",
                    ],
                    cwd=HERE,
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"pdflatex failed for {job}:\n{proc.stdout[-3000:]}")
            target = Path(out_dir) / f"{job}.pdf"
            shutil.copyfile(Path(tmp) / f"{job}.pdf", target)
            pdfs[name] = target
    return pdfs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--pdf", action="store_true")
    args = parser.parse_args(argv)
    files = outputs()
    if args.check:
        stale = [
            p.name
            for p, text in files.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python worksheets/worksheet.py")
            return 1
        print("worksheet files up to date")
        return 0
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    if args.pdf:
        for name, path in build_pdfs().items():
            print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

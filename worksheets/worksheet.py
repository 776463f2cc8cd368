"""The assignment worksheet: the LaTeX sheet (student and solutions), its Markdown version and
the instructor's guide's question table, all made from the lab sources' questions.

    python worksheets/worksheet.py            # write worksheet.tex, WORKSHEET.md, the guide's tables
    python worksheets/worksheet.py --pdf      # ... and build both PDFs with pdflatex
    python worksheets/worksheet.py --check    # exit 1 if a written file is out of date

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
import generate_notebooks  # noqa: E402


@dataclass
class Section:
    source: str  # the lab source the questions come from, e.g. "04_layers_neural_collapse"
    title: str
    labs: str  # which notebooks answer it
    intro: str  # Markdown
    figure: str | None = None  # file in worksheets/figures/, made by make_figures.py
    caption: str = ""  # Markdown

    @property
    def questions(self) -> list[generate_notebooks.QuestionText]:
        return generate_notebooks.questions(self.source)


SECTIONS = [
    Section(
        "01_projector_mnist",
        "Reading the Embedding Projector",
        "Lab 1 (MNIST) or Lab 3 (CIFAR-10)",
        "Open TensorBoard's Projector on your run. Each tensor is the penultimate layer of "
        "the CNN for the probe images at one epoch.",
        figure="reducers.png",
        caption="The same last-epoch embedding in three projections, with their "
        "trustworthiness (made by `labkit.plots.compare`).",
    ),
    Section(
        "02_wikipedia_topics",
        "From epoch 0 to the last epoch: text",
        "Lab 2 (Wikipedia topics) or Lab 2b (BBC News)",
        "Use the aligned epoch grid, the interactive figure and the accuracy table, and "
        "Mantis (the lab's section 9 walks through it): upload the run's `mantis.csv`, "
        "choose `embedding_epoch_0` as the vector column with UMAP in 3-D, colour by "
        "`categoric`, then choose `embedding_epoch_1`, `embedding_epoch_2`, ... to move "
        "through training. The `coordinate1`/`coordinate2` columns are a ready 2-D "
        "projection of the last epoch (Mantis' *Direct Projection*): use them to see the "
        "notebook's own picture without Mantis computing one.",
        figure="epoch_grid_text.png",
        caption="A text run as Lab 2 makes it: TF-IDF vectors, the MLP trained 10 epochs, "
        "the probe articles' embedding from epoch 0 to the last epoch, UMAP per "
        "epoch started from the one before and aligned by Orthogonal Procrustes "
        "(`labkit.plots.epoch_grid`). Drawn offline from generated news in three "
        "sections, of which science and technology share part of their words; "
        "your run on real articles will be less tidy.",
    ),
    Section(
        "04_layers_neural_collapse",
        "Better clusters with depth? Neural collapse",
        "Lab 4",
        "The deep MLP is trained until it classifies its training set almost perfectly; "
        "every layer was recorded.",
        figure="metric_curves.png",
        caption="Accuracy, NC1 (log scale), silhouette and probe accuracies per layer over "
        "the epochs (made by `labkit.plots.metric_curves`).",
    ),
    Section("05_grand_tour_alignment", "Alignment and the Grand Tour", "Lab 5", ""),
    Section(
        "06_working_with_embeddings",
        "Disagreement, similarity and label errors",
        "Lab 6",
        "",
        figure="agreement.png",
        caption="Coloured by label; black rings where the model disagrees with the label "
        "(made by `labkit.plots.agreement`).",
    ),
]


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
from what your runs show; quote the numbers they print.
"""
        + f"\n\\par\\noindent\\textbf{{What to hand in.}} {tex(generate_notebooks.HAND_IN)}\n"
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
                f"\\caption{{{tex(s.caption)}}}\n\\end{{figure}}\n"
            )
        for q in s.questions:
            points = f"{q.points:g} point{'s' if q.points != 1 else ''}"
            lines.append(
                f"\\question{{{q.number}}}{{{points}}}{{{tex(q.text)}}}\n"
                f"\\solution{{{q.number}{_for(s, q)}}}{{{tex(q.answer)}}}\n"
            )
            for name, answer in q.other_answers.items():  # e.g. Lab 3's answer on CIFAR-10
                lines.append(f"\\solution{{{q.number} ({tex(name)})}}{{{tex(answer)}}}\n")
    lines.append("\\end{document}\n")
    return "\n".join(lines)


def _for(section: Section, q: generate_notebooks.QuestionText) -> str:
    """ " (MNIST)" after a solution's number when the question has answers for other data
    sets too."""
    if not q.other_answers:
        return ""
    dataset = generate_notebooks.source_params(generate_notebooks.read_source(section.source)).get(
        "DATASET"
    )
    return f" ({tex(generate_notebooks.FACTS[dataset]['name'])})"


def markdown() -> str:
    out = [
        "# Representation learning lab: worksheet",
        "",
        "<!-- Generated by worksheets/worksheet.py from the lab sources' questions. -->",
        "",
        "This sheet is the printed form of the notebooks' questions, with the same numbers: "
        "Question 4.2 is the second question of Lab 4. Answer them in the notebooks' answer "
        "cells, from what your runs show; quote the numbers they print. (Instructors: the "
        "model answers are in the solution notebooks and in the PDF built with "
        "`python worksheets/worksheet.py --pdf`.)",
        "",
        f"**What to hand in.** {generate_notebooks.HAND_IN}",
        "",
    ]
    for s in SECTIONS:
        out += [f"## {s.labs}: {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.figure:
            out += [f"![{s.caption}](figures/{s.figure})", ""]
        for q in s.questions:
            out += [f"**Question {q.number}.** {q.text}", ""]
    return "\n".join(out)


def _short(text: str) -> str:
    first = re.split(r"(?<=[?.])\s", " ".join(text.split()), maxsplit=1)[0]
    return first if len(first) <= 90 else first[:87] + "..."


def question_table() -> str:
    rows = ["| question | notebook, section | points |", "| --- | --- | --- |"]
    for s in SECTIONS:
        for q in s.questions:
            rows.append(
                f"| {q.number} {_short(q.text).replace('|', '/')} | "
                f"`{q.lab}`, {q.section} | {q.points:g} |"
            )
    return "\n".join(rows)


def points_table() -> str:
    """Each lab's graded cells and points, from its solution notebook."""
    import nbformat

    rows = [
        "| lab | exercises (auto-graded points) | questions (points graded by hand) | total |",
        "| --- | --- | --- | --- |",
    ]
    for lab in generate_notebooks.LABS:
        nb = nbformat.read(
            generate_notebooks.NOTEBOOKS / "solutions" / f"{lab.name}.ipynb", as_version=4
        )
        graded = [
            c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
        ]
        auto = [g["points"] for g in graded if not g["solution"]]
        manual = [g["points"] for g in graded if g["solution"]]
        rows.append(
            f"| `{lab.name}` | {len(auto)} ({sum(auto):g}) | {len(manual)} "
            f"({sum(manual):g}) | {sum(auto) + sum(manual):g} |"
        )
    return "\n".join(rows)


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
    q: generate_notebooks.QuestionText | None = None


def _section_of(stem: str, cell_id: str) -> str | None:
    """The lab section (its ``##`` heading, and a ``###`` one inside it) holding the cell."""
    nb = generate_notebooks.read_source(stem)
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
    stems = {lab.source for lab in generate_notebooks.LABS}
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
        found = [q for q in generate_notebooks.questions(row.lab) if q.id == row.question]
        if not found or not found[0].answer.strip():
            problems.append(
                f"{at}: {row.lab}.py has no question {row.question!r} with a model answer"
            )
            continue
        numbers = [lab.number for lab in generate_notebooks.LABS if lab.source == row.lab]
        labs = f"Lab {numbers[0]}" if len(numbers) == 1 else f"Labs {' and '.join(numbers)}"
        row.where, row.q = f"{labs} §{section.replace('. ', ' ', 1)}", found[0]
    if problems:
        raise generate_notebooks.SourceError("\n".join(problems))
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

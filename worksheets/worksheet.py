"""The assignment worksheet: one source for the LaTeX sheet (student and solutions), its
Markdown version, and the question -> notebook table of the instructor's guide.

    python worksheets/worksheet.py            # write worksheet.tex, WORKSHEET.md, the guide's table
    python worksheets/worksheet.py --pdf      # ... and build both PDFs with pdflatex
    python worksheets/worksheet.py --check    # exit 1 if a written file is out of date

The .tex holds every solution inside ``\\solution{...}``, which prints only when
``\\solutionstrue`` is set: one file, two PDFs (``worksheet-student.pdf``,
``worksheet-solutions.pdf``). The figures are made by the kit: ``make_figures.py``.
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


@dataclass
class Question:
    text: str
    solution: str
    notebook: str  # where the answer is read: "NN_lab, section"


@dataclass
class Section:
    title: str
    lab: str
    intro: str
    questions: list[Question]
    figure: str | None = None  # file in worksheets/figures/, made by make_figures.py
    caption: str = ""


SECTIONS = [
    Section(
        "Reading the Embedding Projector", "Lab 1 (MNIST) or Lab 3 (CIFAR-10)",
        "Open TensorBoard's Projector on your run. Each tensor is the penultimate layer of the "
        "CNN for the probe images at one epoch.",
        [
            Question(
                "Compare the PCA view of epoch 0 (\\texttt{01\\_embed/epoch\\_00}) with the last "
                "epoch. What changed? Why is epoch 0 not pure noise?",
                "At epoch 0 the network is untrained, yet its random filters already map "
                "similar-looking images to nearby vectors, so there is some structure (for "
                "example, ones form a streak), but the classes overlap and the accuracy in the "
                "history table is chance, about 10\\%. After training the probe images form one "
                "cluster per class and the accuracy is close to 99\\%: the layer has learnt to "
                "put what the classifier must tell apart far apart.",
                "01_projector_mnist, sections 3 and 4"),
            Question(
                "PCA, t-SNE and UMAP of the same embedding (Exercise 1): which view would you "
                "use to judge how far apart two classes are, and which to see which images are "
                "confused? What do distances mean in each?",
                "PCA is a rotation followed by dropping low-variance axes: distances can only "
                "shrink, so gaps between classes are real lower bounds, and the relative "
                "positions of clusters mean something. t-SNE and UMAP keep neighbourhoods (their "
                "trustworthiness scores in Exercise 1 are higher than PCA's) but stretch and "
                "shrink distances freely: the size of a cluster and the gap between clusters "
                "carry little meaning. Use PCA for global geometry, t-SNE/UMAP to see which "
                "individual images sit next to which.",
                "01_projector_mnist, section 4 (Exercise 1, Question 2)"),
            Question(
                "Find points that sit between two clusters at the last epoch. What are they?",
                "Mostly images that really look like two digits (4/9, 3/5, 7/1 drawn "
                "ambiguously), and occasionally mislabelled ones. Their thumbnails in the "
                "projector show it; Lab 6's label-error candidates find such points "
                "systematically.",
                "01_projector_mnist, section 5 (Question 3)"),
        ],
        figure="reducers.png",
        caption="The same last-epoch embedding in three projections, with their "
                "trustworthiness (made by \\texttt{labkit.plots.compare}).",
    ),
    Section(
        "From epoch 0 to epoch 10", "Lab 2 (Wikipedia topics or BBC News)",
        "Use the aligned epoch grid, the interactive figure and the accuracy table.",
        [
            Question(
                "At which epoch do the topics separate? What happens after that?",
                "The accuracy rises from chance (one over the number of topics) within the "
                "first two or three epochs, and the grid shows the clusters forming at the same "
                "time. Later epochs change the accuracy little but keep tightening the clusters: "
                "the geometry goes on improving after the decisions are made (NC1 keeps falling, "
                "as Lab 4 measures).",
                "02_wikipedia_topics, sections 3 and 5 (Question 1)"),
            Question(
                "Why are the projections aligned across epochs? What would you see without "
                "the alignment?",
                "Each epoch's projection comes in an arbitrary orientation: PCA axes flip sign, "
                "and t-SNE/UMAP start anew. Without alignment the points jump between panels and "
                "nothing can be followed. Orthogonal Procrustes finds the rotation (and scale and "
                "shift) that best maps each layout onto the previous one, removing only that "
                "arbitrary part; for UMAP the kit also starts each epoch from the previous "
                "layout.",
                "02_wikipedia_topics, section 5"),
            Question(
                "Read the snippets of the articles the model gets wrong (Exercise 1). Is the "
                "model wrong, or is the article really about two topics?",
                "Many mistakes are articles that genuinely straddle two topics (a history of "
                "computing in art, a sports science article) and sit between the clusters in "
                "the picture. Some are short or generic intros with few topic words. Overlapping "
                "points are therefore often a property of the data, not only of the model.",
                "02_wikipedia_topics, Exercise 1 and Question 2"),
        ],
        figure="epoch_grid.png",
        caption="The probe set from epoch 0 to the last epoch, one PCA per epoch aligned by "
                "Orthogonal Procrustes (\\texttt{labkit.plots.epoch\\_grid}).",
    ),
    Section(
        "Better clusters with depth? Neural collapse", "Lab 4",
        "The deep MLP reaches 100\\% training accuracy; every layer was recorded.",
        [
            Question(
                "Is ``better clusters with depth'' true? Quote the silhouette and NC1 per layer "
                "at the last epoch (Exercise 1).",
                "Yes, in this run: the silhouette rises from layer to layer (about 0.16, 0.22, "
                "0.31, 0.44, 0.60 for hidden1 to hidden5) and NC1 falls (about 0.57, 0.34, 0.22, "
                "0.14, 0.09). The k-nearest-neighbour accuracy improves much less (0.93 to "
                "0.97), and a linear probe on the first layer already reaches about 0.94: early "
                "layers hold the information, later layers arrange it into tight clusters.",
                "04_layers_neural_collapse, section 3 (Exercise 1, Question 1)"),
            Question(
                "Does the penultimate layer collapse to k points? Compare the mean cosine "
                "between class means with $-1/(C-1)$.",
                "Largely: NC1 falls about twentyfold from epoch 0 (1.7 to 0.09), the mean cosine "
                "between centred class means approaches $-1/(C-1) = -0.111$, the classifier's "
                "weights turn towards the class means (NC3 falls) and the nearest-class-mean "
                "rule agrees with the network on nearly every image (NC4). It is not a perfect "
                "collapse: we measure on test images, which keep some spread; collapse is "
                "strongest on the training data.",
                "04_layers_neural_collapse, section 4 (Question 2)"),
            Question(
                "Which layers are most alike according to linear CKA? Does that match the "
                "pictures per layer?",
                "Neighbouring layers have the highest CKA and the first and last layers the "
                "lowest; the layer grid shows the same gradual change, clusters sharpening from "
                "one layer to the next rather than jumping.",
                "04_layers_neural_collapse, sections 2 and 4"),
        ],
        figure="metric_curves.png",
        caption="Accuracy, NC1 (log scale), silhouette and probe accuracies per layer over the "
                "epochs (\\texttt{labkit.plots.metric\\_curves}).",
    ),
    Section(
        "Alignment and the Grand Tour", "Lab 5",
        "",
        [
            Question(
                "What does the Grand Tour show that a single UMAP picture cannot?",
                "Every frame of the tour is a linear projection, so separations and directions "
                "seen in it exist in the data. Classes that stay apart in every view are "
                "separated along many dimensions; classes that separate only in some views "
                "differ along few. A single UMAP picture is one non-linear view whose gaps may "
                "be artefacts.",
                "05_grand_tour_alignment, section 1 (Question 1)"),
            Question(
                "Two models in one frame (Exercise 1): do the CNN and the MLP put the same "
                "classes next to each other? What does the CKA value say?",
                "Aligned with a single rotation for the whole trajectory, the two pictures "
                "agree on most neighbourhoods (similar digits side by side) but differ in "
                "detail; the linear CKA between the final embeddings is high but below 1, "
                "saying the two representations share most of their structure.",
                "05_grand_tour_alignment, section 3 (Exercise 1, Question 2)"),
        ],
    ),
    Section(
        "Disagreement and label-error candidates", "Lab 6",
        "",
        [
            Question(
                "Where in the picture does the model disagree with the labels?",
                "At the borders between clusters and in small islands inside the wrong cluster; "
                "the number of disagreements falls over the epochs (the disagreement table).",
                "06_working_with_embeddings, section 1"),
            Question(
                "The most confident mistake (Exercise 1): is it a mistake of the model or of "
                "the label? What would you check before relabelling?",
                "If most of its neighbours carry the predicted class and its thumbnail looks "
                "like that class, the label is suspect; if the image is ambiguous, neither is "
                "clearly wrong. Check the image itself, its neighbours, and whether other "
                "models agree before relabelling: a candidate is not proof.",
                "06_working_with_embeddings, sections 2-4 and Exercise 1"),
        ],
        figure="agreement.png",
        caption="Coloured by label; black rings where the model disagrees "
                "(\\texttt{labkit.plots.agreement}).",
    ),
]


# ---------------------------------------------------------------------------------------


def _md(text: str) -> str:
    """LaTeX snippets as Markdown."""
    text = re.sub(r"\\texttt\{(.*?)\}", lambda m: "`" + m.group(1).replace("\\_", "_") + "`",
                  text)
    text = text.replace("\\%", "%").replace("``", '"').replace("''", '"').replace("\\_", "_")
    return text


def latex() -> str:
    lines = [r"""\documentclass[11pt,a4paper]{article}
\usepackage[utf8]{inputenc}
\usepackage[T1]{fontenc}
\usepackage[margin=2.3cm]{geometry}
\usepackage{graphicx}
\usepackage{amsmath}
\graphicspath{{figures/}}
% One source, two sheets: \def\withsolutions{} before \input prints the solutions.
\newif\ifsolutions
\ifdefined\withsolutions \solutionstrue \else \solutionsfalse \fi
\newcounter{question}[section]
\newcommand{\question}[1]{\refstepcounter{question}\par\medskip\noindent
  \textbf{Question \thesection.\thequestion.} #1\par}
\newcommand{\solution}[1]{\ifsolutions\par\smallskip\noindent
  \textit{Solution \thesection.\thequestion.} #1\par\fi}
\title{Representation learning lab: worksheet\ifsolutions\ (with solutions)\fi}
\date{}
\begin{document}
\maketitle
\noindent Answer each question from what your notebooks show; quote the numbers they print.
Each section names the lab it is about.
"""]
    for s in SECTIONS:
        lines.append(f"\\section{{{s.title}}}\n\\noindent\\textit{{{s.lab}.}} {s.intro}\n")
        if s.figure:
            lines.append("\\begin{figure}[h]\\centering\n"
                         f"\\includegraphics[width=\\linewidth]{{{s.figure}}}\n"
                         f"\\caption{{{s.caption}}}\n\\end{{figure}}\n")
        for q in s.questions:
            lines.append(f"\\question{{{q.text}}}\n\\solution{{{q.solution}}}\n")
    lines.append("\\end{document}\n")
    return "\n".join(lines)


def markdown() -> str:
    out = ["# Representation learning lab: worksheet", "",
           "<!-- Generated by worksheets/worksheet.py from the same source as the PDF. -->", "",
           "Answer each question from what your notebooks show; quote the numbers they print.",
           "Each section names the lab it is about. (Instructors: the solutions are in the "
           "PDF built with `python worksheets/worksheet.py --pdf`.)", ""]
    for i, s in enumerate(SECTIONS, 1):
        out += [f"## {i}. {s.title}", "", f"*{s.lab}.* {_md(s.intro)}".rstrip(), ""]
        if s.figure:
            out += [f"![{_md(s.caption)}](figures/{s.figure})", ""]
        for j, q in enumerate(s.questions, 1):
            out += [f"**Question {i}.{j}.** {_md(q.text)}", ""]
    return "\n".join(out)


def question_table() -> str:
    rows = ["| question | answered in (notebook, section) |", "| --- | --- |"]
    for i, s in enumerate(SECTIONS, 1):
        for j, q in enumerate(s.questions, 1):
            short = _md(q.text).split("?")[0].split(". ")[0]
            short = short if len(short) <= 70 else short[:67] + "..."
            rows.append(f"| {i}.{j} {short} | `{q.notebook.split(',')[0]}`,"
                        f"{q.notebook.split(',', 1)[1] if ',' in q.notebook else ''} |")
    return "\n".join(rows)


def guide_with_table(text: str) -> str:
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[:start] + "\n" + question_table() + "\n" + text[end:]


def outputs() -> dict[Path, str]:
    return {HERE / "worksheet.tex": latex(), HERE / "WORKSHEET.md": markdown(),
            GUIDE: guide_with_table(GUIDE.read_text(encoding="utf-8"))}


def build_pdfs(out_dir: Path = HERE) -> dict[str, Path]:
    """Both PDFs via pdflatex (run twice for the references), from worksheet.tex."""
    if shutil.which("pdflatex") is None:
        raise SystemExit("pdflatex not found: apt-get install texlive-latex-base "
                         "texlive-latex-recommended texlive-fonts-recommended")
    pdfs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, prefix in (("student", ""), ("solutions", r"\def\withsolutions{}")):
            job = f"worksheet-{name}"
            for _ in range(2):
                proc = subprocess.run(
                    ["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                     f"-jobname={job}", f"-output-directory={tmp}",
                     f"{prefix}\\input{{worksheet.tex}}"],
                    cwd=HERE, capture_output=True, text=True)
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
        stale = [p.name for p, text in files.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
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

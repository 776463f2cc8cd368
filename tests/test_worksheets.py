"""The worksheet: both PDFs built with pdflatex, their questions and model answers taken from
the lab sources, in sync with the notebooks, the Markdown version and the instructor's guide,
every figure made by the kit and present."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "worksheets"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import worksheet  # noqa: E402

import generate_notebooks  # noqa: E402

N_QUESTIONS = sum(len(s.questions) for s in worksheet.SECTIONS)
NEEDS_TEX = pytest.mark.skipif(
    (shutil.which("pdflatex") is None or shutil.which("pdftotext") is None)
    and not __import__("os").environ.get("CI"),
    reason="needs pdflatex and pdftotext (apt-get install texlive-latex-base "
    "texlive-latex-recommended texlive-fonts-recommended poppler-utils; .ci/run does)",
)


def _text(pdf: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    # NFKC undoes the typesetter's ligatures (fi, fl), and joining undoes hyphenation.
    text = unicodedata.normalize("NFKC", out).replace("-\n", "")
    text = text.translate(
        str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
    )  # TeX's typographic quotes
    return " ".join(text.split())


def _words(markdown: str, n: int = 5) -> str:
    """The first words of a Markdown text as a PDF shows them (no markup)."""
    return " ".join(re.sub(r"[`*$\\{}]", "", markdown).split()[:n])


@NEEDS_TEX
def test_both_pdfs_build_and_only_the_solutions_hold_solutions(tmp_path):
    pdfs = worksheet.build_pdfs(out_dir=tmp_path)
    student, solutions = _text(pdfs["student"]), _text(pdfs["solutions"])
    questions = [q for s in worksheet.SECTIONS for q in s.questions]
    assert len(questions) == N_QUESTIONS >= 12
    for q in questions:
        assert f"Question {q.number}." in student and f"Question {q.number}." in solutions
        assert re.search(rf"Solution {re.escape(q.number)}( \([^)]+\))?\.", solutions), q.number
        assert _words(q.text) in student, q.number
        assert _words(q.answer) in solutions, q.number
        assert _words(q.answer) not in student
        for name, answer in q.other_answers.items():  # Lab 3's answers on CIFAR-10
            assert f"Solution {q.number} ({name})." in solutions, (q.number, name)
            assert _words(answer) in solutions and _words(answer) not in student
    assert sum(len(q.other_answers) for q in questions) >= 3
    assert "Solution" not in student
    assert "(with solutions)" in solutions and "(with solutions)" not in student


@pytest.mark.slow
def test_every_included_figure_exists_and_is_made_by_the_kit(tmp_path):
    tex = (HERE / "worksheet.tex").read_text()
    included = re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", tex)
    assert len(included) == 4
    for name in included:
        assert (HERE / "figures" / name).stat().st_size > 10_000, name
    make_figures = __import__("make_figures")
    assert set(included) == set(make_figures.FIGURES)
    # The kit makes them: regenerate them here (the script's main, PCA only, to be quick)
    # and compare the set.
    with contextlib.redirect_stdout(io.StringIO()):
        assert make_figures.main(["--out", str(tmp_path), "--reducers", "pca"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(included)


def test_markdown_and_guide_are_in_sync_with_the_sources():
    assert worksheet.main(["--check"]) == 0
    md = (HERE / "WORKSHEET.md").read_text()
    assert md.count("**Question ") == N_QUESTIONS and "Solution" not in md


def test_the_worksheet_asks_the_notebooks_questions_in_the_same_words_and_numbers():
    """Each notebook's question cells, as students see them, are the worksheet's questions."""
    md = (HERE / "WORKSHEET.md").read_text()
    asked = dict(re.findall(r"^\*\*Question (\d+\.\d+)\.\*\* (.+?)(?=\n\n|\Z)", md, re.M | re.S))
    assert len(asked) == N_QUESTIONS
    seen = set()
    for lab in generate_notebooks.LABS:
        nb = nbformat.read(ROOT / "notebooks" / "student" / f"{lab.name}.ipynb", as_version=4)
        for cell in nb.cells:
            if "question" not in cell.metadata.get("tags", []):
                continue
            number, text = re.match(
                r"\*\*Question (\d+\.\d+)\.\*\* (.*)", cell.source, re.S
            ).groups()
            if lab.name == lab.source:  # Labs 2b and 3 ask their source lab's questions
                assert asked[number].strip() == text.strip(), (lab.name, number)
                seen.add(number)
            else:
                assert number in asked, (lab.name, number)
    assert seen == set(asked)


def test_the_guide_lists_every_question_and_every_labs_points():
    guide = (HERE / "INSTRUCTOR_GUIDE.md").read_text()
    table = guide.split("<!-- questions:start -->")[1].split("<!-- questions:end -->")[0]
    assert len(re.findall(r"^\| \d+\.\d+ ", table, re.M)) == N_QUESTIONS
    for s in worksheet.SECTIONS:
        nb = (ROOT / "notebooks" / "solutions" / f"{s.source}.ipynb").read_text()
        for q in s.questions:
            assert f"| {q.number} " in table and f"## {q.section}" in nb, (q.number, q.section)
    points = guide.split("<!-- points:start -->")[1].split("<!-- points:end -->")[0]
    for lab in generate_notebooks.LABS:
        nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{lab.name}.ipynb", as_version=4)
        total = sum(
            c.metadata["nbgrader"].get("points", 0)
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        )
        row = next(line for line in points.splitlines() if f"`{lab.name}`" in line)
        assert row.endswith(f"| {total:g} |") and total > 0, row
    for heading in (
        "Learning goals",
        "Prerequisites",
        "Time plan",
        "Colab",
        "Variants",
        "nbgrader",
        "Common problems",
        "c.Execute.timeout",
    ):
        assert heading in guide


def test_every_activity_of_the_source_material_points_at_a_section_question_and_answer():
    rows = worksheet.coverage()
    assert len(rows) >= 64
    assert {r.source for r in rows} == set(worksheet.SOURCE_MATERIAL)
    md = (HERE / "WORKSHEET.md").read_text()
    for r in rows:
        # the section's cell, the question and its model answer are in the solution notebooks
        # made from that source (a section may be in one data set's notebook only)
        ids = {
            c.get("id")
            for lab in generate_notebooks.LABS
            if lab.source == r.lab
            for c in nbformat.read(
                ROOT / "notebooks" / "solutions" / f"{lab.name}.ipynb", as_version=4
            ).cells
        }
        assert {r.section, r.question, r.q.answer_id} <= ids, r.activity
        assert f"**Question {r.q.number}.**" in md and r.q.answer.strip(), r.activity
    guide = (HERE / "INSTRUCTOR_GUIDE.md").read_text()
    table = guide.split("<!-- coverage:start -->")[1].split("<!-- coverage:end -->")[0]
    assert len(re.findall(r"^\| \d+ \| `", table, re.M)) == len(rows)
    # Every lab has activities, and the CIFAR-10 answers are listed beside the MNIST ones.
    assert {r.lab for r in rows} == {s.source for s in worksheet.SECTIONS}
    assert "CIFAR-10: `a-epoch-0-cifar10`" in table


def test_a_coverage_row_that_points_at_nothing_is_refused_by_line(tmp_path):
    bad = tmp_path / "coverage.csv"
    lines = (HERE / "coverage.csv").read_text().splitlines()
    header, first = lines[0], lines[1]
    bad.write_text(
        "\n".join(
            [
                header,
                first,
                first.replace("train-recording-the-embeddings", "no-such-cell"),
                first.replace("q-epoch-0", "q-no-such-question"),
                first.replace("projecting-your-data.txt", "lecture.pdf"),
            ]
        )
        + "\n"
    )
    with pytest.raises(generate_notebooks.SourceError) as err:
        worksheet.coverage(bad)
    message = str(err.value)
    assert "line 2" not in message
    assert "line 3: 01_projector_mnist.py has no cell 'no-such-cell'" in message
    assert "line 4: 01_projector_mnist.py has no question 'q-no-such-question'" in message
    assert "line 5: unknown source 'lecture.pdf'" in message


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_what_to_hand_in_is_said_in_the_same_words_everywhere():
    """One flow: the notebook is handed in and graded; the worksheet is its printed form."""
    said = _flat(f"**What to hand in.** {generate_notebooks.HAND_IN}")
    for path in (ROOT / "README.md", HERE / "INSTRUCTOR_GUIDE.md", HERE / "WORKSHEET.md"):
        assert said in _flat(path.read_text()), path.name
    tex = _flat((HERE / "worksheet.tex").read_text())
    assert _flat(worksheet.tex(generate_notebooks.HAND_IN)) in tex
    for lab in generate_notebooks.LABS:
        nb = nbformat.read(ROOT / "notebooks" / "student" / f"{lab.name}.ipynb", as_version=4)
        assert said in _flat(nb.cells[0].source), lab.name  # the title cell
        cells = {c.get("id"): c for c in nb.cells}
        if "hand-in" in cells:  # Lab 2's last section says it again, in the same words
            assert _flat(generate_notebooks.HAND_IN) in _flat(cells["hand-in"].source)
    source = generate_notebooks.read_source("02_wikipedia_topics")
    cell = next(c for c in source.cells if c.metadata["id"] == "hand-in")
    assert cell.source.endswith("{{hand_in}}"), "the hand-in cell says it through {{hand_in}}"
    # Nothing asks for the old hand-in (the sheet as a PDF, the CSV).
    places = [ROOT / "README.md", *HERE.glob("*.md"), HERE / "worksheet.tex"]
    places += [*(ROOT / "notebooks" / "source").glob("*.py")]
    for path in places:
        text = _flat(path.read_text())
        assert not re.search(r"hand in[^.]*\b(PDF|CSV)\b", text, re.I), path.name
    assert "submitted/<student>/labs/" in (HERE / "INSTRUCTOR_GUIDE.md").read_text()

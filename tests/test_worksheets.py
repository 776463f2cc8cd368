"""The worksheet: both PDFs built with pdflatex, their questions and model answers taken from
the lab sources, in sync with the notebooks, the Markdown version and the instructor's guide,
every figure made by the kit and present."""

from __future__ import annotations

import contextlib
import io
import json
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

import authoring  # noqa: E402

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
        assert make_figures.main(["--out", str(tmp_path), "--methods", "pca", "--offline"]) == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted([*included, make_figures.MANIFEST])
    records = json.loads((tmp_path / make_figures.MANIFEST).read_text())
    for name, (stem, _) in make_figures.FIGURES.items():
        assert records[name]["lab"] == stem and records[name]["methods_overridden"]
        assert records[name]["params"] == make_figures.lab_defaults(stem)


@pytest.mark.slow
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
    for lab in authoring.LABS:
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
    for lab in authoring.LABS:
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


@pytest.mark.slow
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
            for lab in authoring.LABS
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
    with pytest.raises(authoring.SourceError) as err:
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
    said = _flat(f"**What to hand in.** {authoring.HAND_IN}")
    for path in (ROOT / "README.md", HERE / "INSTRUCTOR_GUIDE.md", HERE / "WORKSHEET.md"):
        assert said in _flat(path.read_text()), path.name
    tex = _flat((HERE / "worksheet.tex").read_text())
    assert _flat(worksheet.tex(authoring.HAND_IN)) in tex
    for lab in authoring.LABS:
        nb = nbformat.read(ROOT / "notebooks" / "student" / f"{lab.name}.ipynb", as_version=4)
        assert said in _flat(nb.cells[0].source), lab.name  # the title cell
        cells = {c.get("id"): c for c in nb.cells}
        if "hand-in" in cells:  # Lab 2's last section says it again, in the same words
            assert _flat(authoring.HAND_IN) in _flat(cells["hand-in"].source)
    source = authoring.read_source("02_wikipedia_topics")
    cell = next(c for c in source.cells if c.metadata["id"] == "hand-in")
    assert cell.source.endswith("{{hand_in}}"), "the hand-in cell says it through {{hand_in}}"
    # Nothing asks for the old hand-in (the sheet as a PDF, the CSV).
    places = [ROOT / "README.md", *HERE.glob("*.md"), HERE / "worksheet.tex"]
    places += [*(ROOT / "notebooks" / "source").glob("*.py")]
    for path in places:
        text = _flat(path.read_text())
        assert not re.search(r"hand in[^.]*\b(PDF|CSV)\b", text, re.I), path.name
    assert "submitted/<student>/labs/" in (HERE / "INSTRUCTOR_GUIDE.md").read_text()


def _core_and_optional(lab) -> tuple[float, float]:
    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{lab.name}.ipynb", as_version=4)
    points = {"core": 0.0, "optional": 0.0}
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade"):
            part = "optional" if "optional" in c.metadata.get("tags", []) else "core"
            points[part] += c.metadata["nbgrader"]["points"]
    return points["core"], points["optional"]


def test_core_and_optional_marks_reach_the_notebooks_the_worksheet_and_the_guide():
    mark = authoring.OPTIONAL_MARK
    md = (HERE / "WORKSHEET.md").read_text()
    for lab in authoring.LABS:
        source = authoring.read_source(lab.source)
        dataset = {**authoring.source_params(source), **lab.params}["DATASET"]
        cells = [c for c in source.cells if authoring.source.included(c, dataset)]
        expected = authoring.optional_cells(cells, lab.source)
        for part in ("solutions", "student"):
            nb = nbformat.read(ROOT / "notebooks" / part / f"{lab.name}.ipynb", as_version=4)
            tagged = {c.get("id") for c in nb.cells if "optional" in c.metadata.get("tags", [])}
            assert tagged == expected, (lab.name, part)
        nb = nbformat.read(ROOT / "notebooks" / "student" / f"{lab.name}.ipynb", as_version=4)
        marked = {c.metadata["id"] for c in cells if "optional" in c.metadata}
        for c in nb.cells:
            heading = (
                re.search(r"^#{2,3} .+$", c.source, re.M) if c.cell_type == "markdown" else None
            )
            if heading:  # a marked section says so in its heading, and only that one
                assert heading.group(0).endswith(f" {mark}") == (c.get("id") in marked), c.get("id")
            if "question" in c.metadata.get("tags", []):
                assert (f".** {mark} " in c.source) == (c.get("id") in expected), c.get("id")
        # Optional means beyond a core path, never the whole lab.
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert any("exercise" in t and "optional" not in t for t in tags), lab.name
        assert any("question" in t and "optional" not in t for t in tags), lab.name
    # The labs of a week have optional parts; the worksheet marks the same questions.
    for stem in ("01_projector_mnist", "02_wikipedia_topics", "04_layers_neural_collapse"):
        assert any(q.optional for q in authoring.questions(stem)), stem
    for s in worksheet.SECTIONS:
        for q in s.questions:
            assert (f"**Question {q.number}.** {mark} " in md) == q.optional, q.number


def test_the_guide_lists_core_and_all_points_and_hours_per_lab():
    guide = (HERE / "INSTRUCTOR_GUIDE.md").read_text()
    points = guide.split("<!-- points:start -->")[1].split("<!-- points:end -->")[0]
    hours = guide.split("<!-- hours:start -->")[1].split("<!-- hours:end -->")[0]
    for lab in authoring.LABS:
        core, optional = _core_and_optional(lab)
        row = next(line for line in points.splitlines() if f"`{lab.name}`" in line)
        assert row.endswith(f"| {core:g} | {optional:g} | {core + optional:g} |"), row
        assert core > 0, lab.name
        assert re.search(rf"^\| `{lab.name}` \|.* \| [\d.]+ h \| [\d.]+ h \|$", hours, re.M), (
            lab.name
        )
    # Compute is measured per cell (benchmarks/bench_labs.py); a cell added since is flagged.
    times = json.loads(worksheet.LAB_TIMES.read_text())["labs"]
    for lab in authoring.LABS:
        untimed = worksheet.lab_minutes(lab, times)["all"]["untimed"]
        row = next(line for line in hours.splitlines() if f"`{lab.name}`" in line)
        assert (f"+{untimed} cells not timed" in row) == (untimed > 0), row
    week = re.search(r"Lab 1, Lab 2 and one of Labs 4 to 6: about ([\d.]+) h to ([\d.]+) h", hours)
    assert week and 5 <= float(week.group(1)) <= float(week.group(2)) <= 12, week
    # The time plan names the labs' real sections.
    plan = guide.split("## Time plan")[1].split("\n## ")[0]
    refs, number = [], None
    for m in re.finditer(r"Lab (\d)|§(\d+), \*([^*]+)\*", plan):  # a § is of the last lab named
        number = m.group(1) or number
        if m.group(2):
            refs.append((number, m.group(2), m.group(3)))
    assert len(refs) >= 6 and "worksheet section" not in plan
    for number, k, title in refs:
        lab = next(x for x in authoring.LABS if x.number == number)
        nb = (ROOT / "notebooks" / "solutions" / f"{lab.name}.ipynb").read_text()
        assert f"## {k}. {title}" in nb, (number, k, title)


def test_every_figure_comes_from_its_labs_current_defaults_and_its_caption_says_so():
    """figures/figures.json, written by make_figures.py, against the lab sources as they are
    now: a lab whose defaults changed fails here until its figure is drawn again."""
    records = json.loads((HERE / "figures" / "figures.json").read_text())
    md = _flat((HERE / "WORKSHEET.md").read_text())
    tex = _flat((HERE / "worksheet.tex").read_text())
    drawn = [s for s in worksheet.SECTIONS if s.figure]
    assert sorted(s.figure for s in drawn) == sorted(records)
    for s in drawn:
        r = records[s.figure]
        defaults = authoring.source_params(authoring.read_source(s.source))
        assert r["lab"] == s.source and r["params"] == defaults, s.figure
        assert not r["methods_overridden"], s.figure
        caption = s.caption_text
        number = s.source.split("_")[0].lstrip("0")
        assert f"Lab {number}'s default run" in caption, s.figure
        assert authoring.FACTS[r["dataset"]]["name"] in caption, s.figure
        if r["drawn_from"] != r["dataset"]:  # a stand-in is named as one
            assert "standing in for" in caption, s.figure
        assert _flat(caption) in md and _flat(worksheet.tex(caption)) in tex, s.figure
    rings = records["agreement.png"]["shows"]["rings"]
    assert f"each of the {rings} probe points" in _flat(worksheet.SECTIONS[-1].caption_text)
    # The Lab 6 answer that reads this picture quotes its number of rings.
    q61 = authoring.questions("06_working_with_embeddings")[0]
    assert f"{rings} rings" in _flat(q61.answer), (rings, q61.answer)

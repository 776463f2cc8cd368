"""The worksheet: both PDFs built with pdflatex from one source, in sync with the Markdown
version and the instructor's guide, every figure made by the kit and present."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "worksheets"
sys.path.insert(0, str(HERE))
import worksheet  # noqa: E402

N_QUESTIONS = sum(len(s.questions) for s in worksheet.SECTIONS)
NEEDS_TEX = pytest.mark.skipif(
    (shutil.which("pdflatex") is None or shutil.which("pdftotext") is None)
    and not __import__("os").environ.get("CI"),
    reason="needs pdflatex and pdftotext (apt-get install texlive-latex-base "
           "texlive-latex-recommended texlive-fonts-recommended poppler-utils; .ci/run does)")


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    return " ".join(out.split())


@NEEDS_TEX
def test_both_pdfs_build_and_only_the_solutions_hold_solutions(tmp_path):
    pdfs = worksheet.build_pdfs(out_dir=tmp_path)
    student, solutions = _text(pdfs["student"]), _text(pdfs["solutions"])
    numbers = [f"{i}.{j}" for i, s in enumerate(worksheet.SECTIONS, 1)
               for j in range(1, len(s.questions) + 1)]
    assert len(numbers) == N_QUESTIONS >= 12
    for n in numbers:
        assert f"Question {n}." in student and f"Question {n}." in solutions
        assert f"Solution {n}." in solutions, n
    assert "Solution" not in student
    # The words of each solution are in the solutions PDF (first few words, hyphenation-safe).
    for s in worksheet.SECTIONS:
        for q in s.questions:
            words = re.sub(r"\\[a-z]+\{|[{}$\\]", "", q.solution).split()[:4]
            assert " ".join(words) in solutions, words
            assert " ".join(words) not in student
    assert "(with solutions)" in solutions and "(with solutions)" not in student


def test_every_included_figure_exists_and_is_made_by_the_kit(tmp_path):
    tex = (HERE / "worksheet.tex").read_text()
    included = re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", tex)
    assert len(included) == 4
    for name in included:
        assert (HERE / "figures" / name).stat().st_size > 10_000, name
    assert set(included) == set(__import__("make_figures").FIGURES)
    # The kit makes them: regenerate them here (PCA only, to be quick) and compare the set.
    subprocess.run([sys.executable, str(HERE / "make_figures.py"), "--out", str(tmp_path),
                    "--reducers", "pca"], check=True, capture_output=True, timeout=600)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(included)


def test_markdown_and_guide_are_in_sync_with_the_source():
    assert worksheet.main(["--check"]) == 0
    md = (HERE / "WORKSHEET.md").read_text()
    assert md.count("**Question ") == N_QUESTIONS and "Solution" not in md


def test_every_question_maps_to_a_notebook_section_that_exists():
    guide = (HERE / "INSTRUCTOR_GUIDE.md").read_text()
    table = guide.split("<!-- questions:start -->")[1].split("<!-- questions:end -->")[0]
    assert len(re.findall(r"^\| \d+\.\d+ ", table, re.M)) == N_QUESTIONS
    for s in worksheet.SECTIONS:
        for q in s.questions:
            name, where = q.notebook.split(",", 1)
            nb = (ROOT / "notebooks" / "solutions" / f"{name.strip()}.ipynb").read_text()
            for number in re.findall(r"sections? ([\d ,and-]+)", where):
                for k in re.findall(r"\d+", number):
                    assert f"## {k}." in nb, (name, k)
            for ref in re.findall(r"(Exercise \d+|Question \d+)", where):
                assert ref in nb, (name, ref)
    for heading in ("Learning goals", "Prerequisites", "Time plan", "Colab", "Variants",
                    "nbgrader", "Common problems"):
        assert heading in guide

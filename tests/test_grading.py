"""The labs through the real nbgrader, as an instructor runs it.

One course folder for the run: ``nbgrader generate_assignment`` on every solution notebook
(its release must equal ``notebooks/student/`` byte for byte), then, per lab, nbgrader's
autograde (its API, in this process) of submissions, small and offline: the solution (full
marks on every test cell, its answers waiting for a human) and, for a lab with a source of its
own, the untouched student notebook (0 points). A variant (Lab 2b, Lab 3) runs its source lab's
code cells with other parameters and another data loader, which its solution's run executes:
its untouched notebook is shown to be the source lab's, cell for cell, instead of being run
again. The solution's run is also the check that every lab executes top to bottom and writes
its files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from labkit.view import processes

from .mediawiki import FakeWiki
from .test_notebooks import LABS, SOLUTIONS, STUDENT, TOKEN, _params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import authoring  # noqa: E402

NBGRADER = [sys.executable, "-m", "nbgrader"]
# Each variant, and the lab whose source it is generated from.
VARIANTS = {lab.name: lab.source for lab in authoring.LABS if lab.name != lab.source}


def _nbgrader(course: Path, *args: str) -> str:
    proc = subprocess.run(
        [*NBGRADER, *args], cwd=course, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc.stderr


def _release(root: Path) -> None:
    """A course in ``root`` whose assignment ``labs`` holds every lab, released by nbgrader."""
    root.mkdir(exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "labkit"\nc.Execute.timeout = 600\n'
    )
    source = root / "source" / "labs"
    source.mkdir(parents=True)
    for lab in LABS:
        # The one difference nbgrader cannot make: the badge opens the student's own file.
        text = (SOLUTIONS / f"{lab}.ipynb").read_text(encoding="utf-8")
        (source / f"{lab}.ipynb").write_text(
            text.replace("/notebooks/solutions/", "/notebooks/student/"), encoding="utf-8"
        )
    _nbgrader(root, "generate_assignment", "labs", "--force")


@pytest.fixture(scope="module")
def course(tmp_path_factory, worker_id):
    """The released course, made once for the whole run (nbgrader takes 15 s): the first test
    worker to need it releases it, and every worker grades in a copy of its own (the gradebook
    is one SQLite file, not for two writers)."""
    root = tmp_path_factory.mktemp("course")
    if worker_id == "master":  # one process: nothing to share
        _release(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent / "released-course"  # this run's, all workers'
    with FileLock(f"{shared}.lock"):
        if not (shared / "release").is_dir():
            shutil.rmtree(shared, ignore_errors=True)  # a worker that failed half-way
            _release(shared)
    shutil.copytree(shared, root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="module")
def wiki():
    with FakeWiki(per_topic=40) as server:
        yield server


@pytest.fixture(autouse=True)
def no_tensorboard_left():
    yield
    from labkit import view

    view.stop_all(everyone=True)


@pytest.mark.slow
def test_released_notebooks_are_the_student_notebooks(course):
    released = sorted((course / "release" / "labs").glob("*.ipynb"))
    assert [p.stem for p in released] == LABS
    for path in released:
        assert path.read_bytes() == (STUDENT / path.name).read_bytes(), (
            f"nbgrader releases {path.name} differently from notebooks/student/"
        )


@pytest.mark.parametrize("lab", LABS)
def test_every_lab_has_three_graded_exercises_and_graded_questions(lab):
    nb = nbformat.read(SOLUTIONS / f"{lab}.ipynb", as_version=4)
    cells = [(c, c.metadata.get("nbgrader")) for c in nb.cells]
    exercises = [
        i for i, (c, g) in enumerate(cells) if g and g["solution"] and c.cell_type == "code"
    ]
    assert len(exercises) >= 3
    for i in exercises:  # each exercise is followed by its locked, graded test
        c, g = cells[i + 1]
        assert g and g["grade"] and g["locked"] and not g["solution"] and g["points"] > 0, (
            f"{lab}: the cell after exercise {cells[i][1]['grade_id']} is not a graded test"
        )
        assert "assert" in c.source and "### BEGIN HIDDEN TESTS" in c.source
    answers = [g for c, g in cells if g and g["solution"] and c.cell_type == "markdown"]
    assert len(answers) >= 2 and all(g["grade"] and g["points"] > 0 for g in answers)
    ids = [g["grade_id"] for _, g in cells if g]
    assert len(ids) == len(set(ids))


@pytest.mark.slow  # not slow, but it shares the course with the slow tests: run it beside them
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_variants_untouched_notebook_is_its_source_labs_but_for_parameters_and_data(
    variant, course
):
    """What lets the autograde below run a variant's solution only: its released notebook's
    code cells are its source lab's, but for the parameters and the cell that loads its data
    set (which the variant's solution run executes), and so are its graded cells' points."""
    source = VARIANTS[variant]

    def released(lab: str) -> list:
        nb = nbformat.read(course / "release" / "labs" / f"{lab}.ipynb", as_version=4)
        return [c for c in nb.cells if c.cell_type == "code"]

    ours, theirs = released(variant), released(source)
    assert len(ours) == len(theirs)
    differ = [(a.id, b.id) for a, b in zip(ours, theirs, strict=True) if a.source != b.source]
    own = {c.id for c in ours if "parameters" in c.metadata.get("tags", [])}
    loader = {c.id for c in ours if "load_dataset(" in c.source or "fetch_" in c.source}
    assert differ and all(a in own | loader for a, _ in differ), differ
    for a, b in zip(ours, theirs, strict=True):
        assert a.metadata.get("nbgrader") == b.metadata.get("nbgrader"), a.id
        assert a.metadata.get("tags") == b.metadata.get("tags"), a.id


def _assert_nothing_left_naming(folder: Path, within: float = 10.0) -> None:
    """No process on this machine names ``folder`` (or a path in it) on its command line,
    within ``within`` seconds: the watchdog of an ended kernel needs a moment."""
    needle = str(folder).encode()
    deadline = time.monotonic() + within
    while True:
        left = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    argv = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if needle in argv and processes.alive(int(proc.name)):
                    left.append(argv.replace(b"\0", b" ").decode(errors="replace"))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == [], f"left running after the kernels ended: {left}"


def _submit(course: Path, student: str, notebook: Path, params: dict) -> None:
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = authoring.set_params(cell.source, params)
    folder = course / "submitted" / student / "labs"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / notebook.name)


def _autograde(course: Path, *students: str) -> None:
    """``nbgrader autograde labs --student=S --force`` for each student, through nbgrader's own
    API (what its formgrader calls) in this process, with the course's nbgrader_config.py:
    the same converter and real kernels, without starting nbgrader (2 s) for every lab. The
    command itself runs in the ``course`` fixture (generate_assignment)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from sqlalchemy.exc import SAWarning
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for student in students:
        with warnings.catch_warnings():  # nbgrader's own use of SQLAlchemy's sessions
            warnings.simplefilter("ignore", SAWarning)
            result = api.autograde("labs", student, force=True, create=True)
        assert result["success"], f"autograde of {student} failed:\n{result.get('error')}"


def _names(lab: str) -> set[str]:
    """The parameters a lab's notebook has."""
    nb = nbformat.read(SOLUTIONS / f"{lab}.ipynb", as_version=4)
    return set(authoring.source_params(nb))


def _scores(course: Path, student: str, lab: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="labkit") as gb:
        nb = gb.find_submission_notebook(lab, "labs", student)
        return {
            g.name: (g.cell_type, g.score, g.max_score, g.needs_manual_grade) for g in nb.grades
        }


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_autograde_gives_the_solution_full_marks_and_a_blank_notebook_none(
    lab, course, wiki, tmp_path, monkeypatch
):
    params = _params(lab, tmp_path, wiki)
    _submit(course, f"solution-{lab}", SOLUTIONS / f"{lab}.ipynb", params)
    students = [f"solution-{lab}"]
    if lab not in VARIANTS:  # a variant's untouched notebook is its source lab's (test below)
        # The untouched notebook only has to score 0: the smallest run that reaches every cell.
        quick = {"EPOCHS": 1, "METHODS": ["pca"], "TOUR_FRAMES": 4}
        _submit(
            course,
            f"blank-{lab}",
            course / "release" / "labs" / f"{lab}.ipynb",
            {
                **params,
                **{k: v for k, v in quick.items() if k in _names(lab)},
                "OUT": params["OUT"] + "-blank",
            },
        )
        students.append(f"blank-{lab}")
    # The kernels inherit these: a token that must not leak, and where the data sets go.
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    _autograde(course, *students)
    # nbclient shut the kernels down: nothing they started (Lab 1's two TensorBoards, each
    # lab's own) is left running, holding a port, on the grading machine.
    _assert_nothing_left_naming(Path(params["OUT"]).parent)

    solved = _scores(course, f"solution-{lab}", lab)
    tests = {k: v for k, v in solved.items() if v[0] == "code"}
    answers = {k: v for k, v in solved.items() if v[0] == "markdown"}
    assert len(tests) >= 3 and len(answers) >= 2
    assert {k: s for k, (_, s, _, _) in tests.items()} == {
        k: m for k, (_, _, m, _) in tests.items()
    }, "a test cell failed on the solution"
    assert all(manual for *_, manual in answers.values())  # the model answers await a human
    if lab not in VARIANTS:
        blank = _scores(course, f"blank-{lab}", lab)
        assert sum(s or 0 for _, s, _, _ in blank.values()) == 0
        assert not any(manual for *_, manual in blank.values())
        # A student running the blank notebook top to bottom meets its first error at the first
        # exercise, where the blank asks for their code: every cell before it runs cleanly.
        ran = nbformat.read(course / "autograded" / f"blank-{lab}" / "labs" / f"{lab}.ipynb", 4)
        first_error = next(
            (c, o)
            for c in ran.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        )
        first_exercise = next(c for c in ran.cells if "exercise" in c.metadata.get("tags", []))
        assert first_error[0].id == first_exercise.id, (lab, first_error[0].id)
        assert first_error[1]["ename"] == "NotImplementedError"
        shutil.rmtree(course / "autograded" / f"blank-{lab}", ignore_errors=True)

    # The solution ran top to bottom, wrote every file its lab promises, and leaked no token.
    graded = course / "autograded" / f"solution-{lab}" / "labs" / f"{lab}.ipynb"
    nb = nbformat.read(graded, as_version=4)
    errors = [
        (c.id, o["ename"])
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
    assert TOKEN not in json.dumps(nb), "the ngrok token reached a notebook output"
    for name in nb.metadata["labkit"]["outputs"]:
        assert (Path(params["OUT"]) / name).stat().st_size > 0, f"{lab} did not write {name}"


def _guide_block(heading: str) -> str:
    """The first ``bash`` block after ``heading`` in the instructor's guide."""
    guide = (ROOT / "worksheets" / "INSTRUCTOR_GUIDE.md").read_text(encoding="utf-8")
    after = guide[guide.index(heading) :]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start : after.index("```", start)]


@pytest.mark.slow
def test_the_guides_class_grading_trains_once_and_scores_alike(course, wiki, tmp_path):
    """The guide's commands for grading a class, run as written in a course of two students
    who handed in the same lab: the first trains and fills the cache in ``.labkit``, the
    second loads every run from it, both get the same score, and neither starts the
    TensorBoards Lab 1 opens (``LABKIT_VIEWERS=off``)."""
    lab = "01_projector_mnist"
    graded = tmp_path / "course"
    shutil.copytree(course, graded, ignore=shutil.ignore_patterns("submitted", "autograded"))
    params = _params(lab, tmp_path, wiki)
    for student in ("ada", "bob"):
        _submit(
            graded,
            student,
            SOLUTIONS / f"{lab}.ipynb",
            {**params, "OUT": f"{params['OUT']}-{student}"},
        )
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_RUN_CACHE"}  # the guide's own
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    script = _guide_block("**Grading a class in minutes.**")
    registered = sorted(processes.registry().glob("*.json"))
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=graded,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    def printed(student: str) -> str:
        """What the graded notebook's cells printed."""
        path = graded / "autograded" / student / "labs" / f"{lab}.ipynb"
        cells = nbformat.read(path, as_version=4).cells
        return json.dumps([c.get("outputs", []) for c in cells if c.cell_type == "code"])

    def loaded(student: str) -> int:
        """How many trainings the notebook loaded from the cache: one line each, or one line
        for the many a labkit.repeat loaded."""
        text = printed(student)
        tallied = re.findall(r"(\d+) of the trainings were loaded from the run cache", text)
        return text.count("loaded the run trained on") + sum(map(int, tallied))

    entries = list((graded / ".labkit" / "runs" / ".cache").glob("*.npz"))
    assert len(entries) >= 2, entries  # the lab's runs, each kept once
    # Ada trains each run once (a run the lab asks for twice is loaded the second time);
    # Bob trains none: he loads every one Ada stored, and the same repeats.
    assert loaded("bob") - loaded("ada") == len(entries)
    assert "loaded the run trained on" not in printed("ada")
    for student in ("ada", "bob"):  # the lab's two TensorBoards, neither started
        assert printed(student).count("TensorBoard not started (LABKIT_VIEWERS=off)") == 2
    assert sorted(processes.registry().glob("*.json")) == registered  # none added
    assert _scores(graded, "ada", lab) == _scores(graded, "bob", lab)
    tests = {k: v for k, v in _scores(graded, "bob", lab).items() if v[0] == "code"}
    assert tests and all(score == top for _, score, top, _ in tests.values())

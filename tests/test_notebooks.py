"""Every solution notebook, executed top to bottom by a real Jupyter kernel, small and offline.

Parameters are injected after the cell tagged `parameters`, as papermill does; the data are
digits, IDX and CIFAR files written here, and the loopback MediaWiki server.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .colab import copy_checkout
from .fakedata import write_cifar10, write_mnist
from .mediawiki import FakeWiki, write_news_csv

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
STUDENT = ROOT / "notebooks" / "student"
LABS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
TOKEN = "2zzNOTEBOOKtokenMUSTnotLEAK_4242424242"

sys.path.insert(0, str(ROOT))
import generate_notebooks  # noqa: E402


def _inject(nb, params: dict):
    """Papermill's convention: a cell tagged `injected-parameters` after `parameters`."""
    where = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in params.items()), id="injected-parameters"
    )
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(where + 1, cell)


def _generate(*args: str) -> tuple[int, str]:
    """``python generate_notebooks.py ARGS``, run as its ``main`` in this process (which has
    already imported what the script imports): the exit code, and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            code = generate_notebooks.main(list(args))
        except SystemExit as refused:  # argparse's refusals
            code = refused.code
    return code, printed.getvalue()


def _execute(path: Path, params: dict, cwd: Path, timeout: int = 600):
    nb = nbformat.read(path, as_version=4)
    _inject(nb, params)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def _params(lab: str, tmp: Path, wiki: FakeWiki) -> dict:
    out = str(tmp / "runs" / lab)
    if lab == "01_projector_mnist":
        write_mnist(tmp / "data", n_train=600, n_test=300)
        # t-SNE and PCA only: UMAP is tested in tests/test_analysis.py, and a machine's first
        # kernel to fit it compiles numba's code for about 17 s.
        return {
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 2,
            "PROBE_SIZE": 200,
            "REDUCERS": ["pca", "tsne"],
            "OUT": out,
        }
    if lab == "03_projector_cifar10":
        write_cifar10(tmp / "data", per_batch=60, n_test=200)
        return {
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 2,
            "PROBE_SIZE": 100,
            "REDUCERS": ["pca", "tsne"],
            "OUT": out,
        }
    if lab == "02_wikipedia_topics":
        return {
            "TOPICS": ["Astronomy", "Cooking", "Basketball"],
            "API_URL": wiki.url,
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 4,
            "REDUCER": "pca",
            "OUT": out,
        }
    if lab == "02b_bbc_news":
        (tmp / "data").mkdir(exist_ok=True)
        write_news_csv(tmp / "data" / "bbc.csv")
        return {
            "CSV": str(tmp / "data" / "bbc.csv"),
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 4,
            "REDUCER": "pca",
            "OUT": out,
        }
    if lab == "04_layers_neural_collapse":
        return {"EPOCHS": 4, "OUT": out}  # 100 % training accuracy comes by epoch 3
    if lab == "05_grand_tour_alignment":
        # UMAP is checked in Lab 1's run: here PCA spares a kernel numba's compile time.
        return {"EPOCHS": 3, "TOUR_FRAMES": 20, "REDUCER": "pca", "OUT": out}
    if lab == "06_working_with_embeddings":
        return {"EPOCHS": 3, "OUT": out}
    raise AssertionError(f"no test parameters for {lab}")


@pytest.fixture(autouse=True)
def no_tensorboard_left():
    """A student notebook stops at its exercise, before its clean-up cell: stop what it started."""
    yield
    from labkit import serve

    serve.stop_all(everyone=True)


@pytest.fixture(scope="module")
def wiki():
    with FakeWiki(per_topic=40) as server:
        yield server


def test_every_lab_is_covered():
    assert sorted(lab.name for lab in generate_notebooks.LABS) == LABS
    assert len(LABS) == 7
    sources = sorted(p.stem for p in (ROOT / "notebooks" / "source").glob("*.py"))
    assert sorted({lab.source for lab in generate_notebooks.LABS}) == sources


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A git repository of this checkout, where the student notebooks run as a student's do."""
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def test_student_notebook_stops_at_the_first_exercise_and_writes_outside_notebooks(checkout, wiki):
    """Run from notebooks/student/ with the default folders: data and runs land in the
    repository's root (ignored by git), and git sees nothing new under notebooks/. One lab
    is enough here: every lab's set-up cell is the same, and nbgrader's autograde of every
    blank student notebook (tests/test_grading.py) shows each stops at its first exercise."""
    lab = "01_projector_mnist"
    nb = nbformat.read(STUDENT / f"{lab}.ipynb", as_version=4)
    params = _params(lab, checkout, wiki)  # writes the fake data sets into checkout/data
    for key in ("DATA_DIR", "OUT"):  # the notebook's own defaults
        params.pop(key, None)
    _inject(nb, params)
    first = next(i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", []))
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(checkout / "notebooks" / "student")}},
    )
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "NotImplementedError"
    failed = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert failed == [first]
    # The title cell says what just happened, and what the student does next.
    assert generate_notebooks.HOW_TO_RUN in nb.cells[0].source
    assert f"stops with a `{info.value.ename}` at the first exercise" in nb.cells[0].source
    assert "`raise NotImplementedError()`" in nb.cells[0].source
    assert "raise NotImplementedError()" in nb.cells[first].source
    default_out = _default_params(lab)["OUT"]
    assert (checkout / default_out / "figures").is_dir()
    setup = next(c for c in nb.cells if "labkit.home(" in c.source)
    assert f"this lab's run in {checkout / default_out}" in "".join(
        o.get("text", "") for o in setup.outputs
    )
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status == "", f"running {lab} left files git sees:\n{status}"


def _default_params(lab: str) -> dict:
    spec = next(x for x in generate_notebooks.LABS if x.name == lab)
    return {
        **generate_notebooks.source_params(generate_notebooks.read_source(spec.source)),
        **spec.params,
    }


@pytest.mark.parametrize("lab", LABS)
def test_student_differs_from_solution_only_where_nbgrader_blanks_it(lab):
    sol = nbformat.read(SOLUTIONS / f"{lab}.ipynb", as_version=4)
    stu = nbformat.read(STUDENT / f"{lab}.ipynb", as_version=4)
    assert [c.id for c in sol.cells] == [c.id for c in stu.cells]
    roles = {"exercise": 0, "test": 0, "answer": 0}
    for a, b in zip(sol.cells, stu.cells, strict=True):
        tags = a.metadata.get("tags", [])
        if "exercise" in tags:
            roles["exercise"] += 1
            assert "### BEGIN SOLUTION" in a.source and "### END SOLUTION" in a.source
            assert "raise NotImplementedError()" in b.source and "BEGIN SOLUTION" not in b.source
        elif "test" in tags:
            roles["test"] += 1
            assert "### BEGIN HIDDEN TESTS" in a.source and "HIDDEN TESTS" not in b.source
            assert b.metadata["editable"] is False and b.metadata["deletable"] is False
        elif "answer" in tags:
            roles["answer"] += 1
            assert b.source == "YOUR ANSWER HERE" and len(a.source) > 80
        elif a.id == "title":  # each version's badge opens its own file
            assert a.source.replace("/notebooks/solutions/", "/notebooks/student/") == b.source
            assert f"/notebooks/solutions/{lab}.ipynb)" in a.source
        else:
            assert a.source == b.source
    assert roles["exercise"] >= 3 and roles["test"] == roles["exercise"] and roles["answer"] >= 2


@pytest.mark.parametrize("lab", LABS)
def test_committed_notebooks_are_clean_labs(lab):
    for folder in (SOLUTIONS, STUDENT):
        nb = nbformat.read(folder / f"{lab}.ipynb", as_version=4)
        nbformat.validate(nb)
        text = (folder / f"{lab}.ipynb").read_text()
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert "colab-badge.svg" in nb.cells[0].source
        assert nb.cells[1].metadata["tags"] == ["parameters"]
        # Every parameter typed (papermill --help-notebook shows it), and a full
        # language_info, so `jupyter nbconvert --to script` writes a .py file.
        assigned = [line for line in nb.cells[1].source.splitlines() if " = " in line]
        assert assigned and all(re.match(r"^[A-Z_]+: [\w\[\] |]+ = ", a) for a in assigned)
        assert nb.metadata["language_info"]["file_extension"] == ".py"
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )
        # No secret in a committed notebook: no token assignment, nothing token-shaped.
        assert not re.search(r"(?i)(authtoken|ngrok_token|api_key|password)\s*=\s*['\"]", text)
        unchecked = re.sub(r'"checksum": "[0-9a-f]{32}"', "", text)  # nbgrader's, not secrets
        assert not re.search(r"['\"][A-Za-z0-9_]{32,}['\"]", unchecked)
        # Reads like a lab: explanations between the calls.
        kinds = [c.cell_type for c in nb.cells]
        assert kinds.count("markdown") >= 5 and "Question" in text


def test_generate_check_passes_and_catches_edits(tmp_path):
    # The committed notebooks equal a fresh generation byte for byte: generating is
    # deterministic, and nobody edited a built notebook by hand. (The command itself, in a
    # process of its own, as an instructor or CI types it.)
    check = [sys.executable, str(ROOT / "generate_notebooks.py"), "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0
    out = tmp_path / "nb"
    assert _generate("--out", str(out))[0] == 0
    assert [p.read_bytes() for p in sorted((out / "solutions").iterdir())] == [
        p.read_bytes() for p in sorted(SOLUTIONS.iterdir())
    ]
    edited = out / "student" / "04_layers_neural_collapse.ipynb"
    edited.write_text(edited.read_text().replace("deep MLP", "deep net"))
    code, printed = _generate("--check", "--out", str(out))
    assert code == 1 and "04_layers_neural_collapse" in printed


def test_a_variant_changes_parameters_in_one_place(tmp_path):
    code, printed = _generate(
        "--lab",
        "02_wikipedia_topics",
        "--variant",
        "music",
        "--set",
        'TOPICS=["Jazz", "Opera", "Hip hop"]',
        "--set",
        "EPOCHS=15",
        "--out",
        str(tmp_path),
    )
    assert code == 0, printed
    nb = nbformat.read(
        tmp_path / "variants" / "music" / "solutions" / "02_wikipedia_topics.ipynb", as_version=4
    )
    assert 'TOPICS: list[str] = ["Jazz", "Opera", "Hip hop"]' in nb.cells[1].source
    assert "EPOCHS: int = 15" in nb.cells[1].source
    code, printed = _generate(
        "--lab", "02_wikipedia_topics", "--variant", "x", "--set", "EPOCH=3", "--out", str(tmp_path)
    )
    assert code == 2 and "no parameter EPOCH" in printed


def test_a_fashion_variant_names_fashion_mnist_everywhere_a_reader_looks(tmp_path):
    """Title, prose, expected accuracy, OUT, file name and badge, student and solution."""
    run = [
        "--out",
        str(tmp_path),
        "--lab",
        "01_projector_mnist",
        "--variant",
        "fashion",
        "--set",
        "DATASET=fashion-mnist",
    ]
    assert _generate(*run)[0] == 0
    folder = tmp_path / "variants" / "fashion"
    for version in ("solutions", "student"):
        path = folder / version / "01_projector_mnist.ipynb"
        nb = nbformat.read(path, as_version=4)
        # What a reader sees; the model answers (solutions only) also quote the lab's two
        # default data sets, MNIST and CIFAR-10, by name.
        prose = "\n".join(
            c.source
            for c in nb.cells
            if c.cell_type == "markdown" and "answer" not in c.metadata.get("tags", [])
        )
        assert (
            nb.cells[0].source.startswith("# Lab 1: ")
            and "Fashion-MNIST" in nb.cells[0].source.splitlines()[0]
            and "(variant: fashion)" in nb.cells[0].source
        )
        assert "MNIST" not in prose.replace("Fashion-MNIST", ""), "prose still names MNIST"
        assert "handwritten" not in prose, "prose still speaks of handwritten digits"
        assert generate_notebooks.FACTS["fashion-mnist"]["expected"] in prose
        answers = {c.id: c.source for c in nb.cells if "answer" in c.metadata.get("tags", [])}
        if version == "solutions":  # the model answers say which data sets they speak of
            # (Lab 3's own CIFAR-10 answers are left out; the MNIST ones say they are MNIST's)
            mnist_only = {"a-epoch-0", "a-between", "a-views"}
            assert mnist_only < set(answers) and not any("cifar10" in a for a in answers)
            for cell, text in answers.items():
                written = "MNIST" if cell in mnist_only else "MNIST and CIFAR-10"
                assert text.startswith(
                    f"*(A model answer written for {written}: check it "
                    f"against what your run on Fashion-MNIST shows.)*"
                ), cell
        params = nb.cells[1].source
        assert 'DATASET: str = "fashion-mnist"' in params
        assert 'OUT: str = "runs/mnist-fashion"' in params
        _, badge = _install_and_badge(nb)
        assert badge.endswith(f"/notebooks/variants/fashion/{version}/01_projector_mnist.ipynb")
    made = json.loads((folder / "variant.json").read_text())
    assert made == {"lab": "01_projector_mnist", "set": {"DATASET": "fashion-mnist"}}
    # A committed variant is rebuilt and checked with the labs.
    assert _generate("--out", str(tmp_path))[0] == 0  # every lab, and the variant
    assert _generate("--out", str(tmp_path), "--check")[0] == 0
    stale = folder / "student" / "01_projector_mnist.ipynb"
    stale.write_text(stale.read_text().replace("Fashion", "Fishing"))
    code, printed = _generate("--out", str(tmp_path), "--check")
    assert code == 1 and "variants/fashion/student" in printed


def _install_and_badge(nb) -> tuple[str, str]:
    setup = next(c.source for c in nb.cells if 'KIT_VERSION = "' in c.source)
    kit = re.search(r'^KIT = "([^"]+)"', setup, re.M).group(1)
    badge = re.search(
        r"\]\((https://colab\.research\.google\.com/github/[^)]+)\)", nb.cells[0].source
    )
    return kit, badge.group(1) if badge else ""


def test_repo_and_ref_reach_every_install_line_and_badge(tmp_path):
    out = ["--out", str(tmp_path)]
    fork = ["--repo", "https://github.com/ada/labkit-fork.git", "--ref", "fall-2026"]
    assert _generate(*out, *fork)[0] == 0
    variant = ["--lab", "04_layers_neural_collapse", "--variant", "deeper", "--set", "DEPTH=8"]
    assert _generate(*out, *fork, *variant)[0] == 0
    files = sorted(tmp_path.rglob("*.ipynb"))
    assert len(files) == 2 * len(LABS) + 2
    colab = "https://colab.research.google.com/github/ada/labkit-fork/blob/fall-2026/notebooks/"
    for path in files:
        kit, badge = _install_and_badge(nbformat.read(path, as_version=4))
        assert kit == "git+https://github.com/ada/labkit-fork@fall-2026"
        assert badge == colab + path.relative_to(tmp_path).as_posix()  # its own file
    assert _generate(*out, *fork, "--check")[0] == 0
    assert _generate(*out, "--check")[0] == 1


@pytest.mark.slow
def test_without_repo_the_origin_on_github_else_the_committed_url(tmp_path):
    clone = copy_checkout(tmp_path / "clone")
    script = [
        sys.executable,
        str(clone / "generate_notebooks.py"),
        "--lab",
        "01_projector_mnist",
        "--out",
        str(tmp_path / "nb"),
    ]
    notebook = tmp_path / "nb" / "student" / "01_projector_mnist.ipynb"
    committed = re.search(
        r'^Repository = "https://github\.com/([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M
    ).group(1)
    subprocess.run(script, check=True, capture_output=True)
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == f"git+https://github.com/{committed}@main" and f"/{committed}/blob/main/" in badge
    subprocess.run(
        ["git", "remote", "add", "origin", "git@github.com:bob/labkit.git"], cwd=clone, check=True
    )
    subprocess.run(script, check=True, capture_output=True)
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == "git+https://github.com/bob/labkit@main" and "/bob/labkit/blob/main/" in badge
    subprocess.run(
        ["git", "remote", "set-url", "origin", "https://gitlab.com/bob/labkit.git"],
        cwd=clone,
        check=True,
    )
    proc = subprocess.run(
        [*script, "--repo", "https://gitlab.com/bob/labkit.git"],
        capture_output=True,
        text=True,
        check=True,
    )
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == "git+https://gitlab.com/bob/labkit.git@main" and badge == ""
    assert "no Colab badge" in proc.stderr


def test_the_set_up_cell_warns_when_the_installed_kit_is_another_version(tmp_path):
    nb = nbformat.read(STUDENT / "06_working_with_embeddings.ipynb", as_version=4)
    install = next(i for i, c in enumerate(nb.cells) if 'KIT_VERSION = "' in c.source)
    setup = next(i for i, c in enumerate(nb.cells) if "labkit.home(" in c.source)
    nb.cells = nb.cells[: setup + 1]
    nb.cells[install].source = re.sub(
        r'KIT_VERSION = "[^"]+"', 'KIT_VERSION = "9.9.9"', nb.cells[install].source
    )
    _inject(nb, {"OUT": str(tmp_path / "runs" / "x"), "DATA_DIR": str(tmp_path / "data")})
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in nb.cells[setup + 1].outputs)
    import labkit

    assert (
        f"Warning: this notebook was written for labkit 9.9.9, but labkit "
        f"{labkit.__version__} is installed"
    ) in text
    assert f"this lab's run in {tmp_path / 'runs' / 'x'}" in text


def test_nbconvert_writes_a_python_script(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "script",
            "--output-dir",
            str(tmp_path),
            str(STUDENT / "01_projector_mnist.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / "01_projector_mnist.py").read_text()
    assert "EPOCHS: int = 10" in script and "labkit.home(DATA_DIR)" in script


def test_a_faulty_source_is_refused_with_the_file_and_cell_named(tmp_path):
    good = (ROOT / "notebooks" / "source" / "06_working_with_embeddings.py").read_text()
    lab = generate_notebooks.Lab("06_working_with_embeddings", "06_working_with_embeddings")
    source = generate_notebooks.KitSource("https://github.com/a/b")
    cases = {
        'id="search-check" test points=3': (
            'id="search-check" test',
            "cell search-check: a test or answer cell needs",
        ),
        '# %% id="search" exercise': (
            '# %% id="search" exercise points=2',
            "an exercise or question takes no points",
        ),
        '# %% id="search-check"': ('# %% id="search"', "cell ids are used twice: search"),
        '# %% [markdown] id="title"': ("# %% [markdown]", "every cell needs id="),
        '# %% [markdown] id="similar-kit"': (
            '# %% [markdown] id="similar-kit" optional',
            "cell similar-kit: `optional` goes on a section's heading cell (## or ###) or on "
            "a question cell",
        ),
    }
    for old, (new, message) in cases.items():
        assert old in good, old
        (tmp_path / "06_working_with_embeddings.py").write_text(good.replace(old, new, 1))
        with pytest.raises(generate_notebooks.SourceError, match=re.escape(message)):
            generate_notebooks.build_solution(lab, source, "x.ipynb", sources=tmp_path)
    (tmp_path / "06_working_with_embeddings.py").write_text(good)
    with pytest.raises(generate_notebooks.SourceError, match="no parameter EPOCH; the par"):
        generate_notebooks.build_solution(
            lab, source, "x.ipynb", overrides={"EPOCH": 3}, sources=tmp_path
        )
    with pytest.raises(
        generate_notebooks.SourceError, match="no parameters cell for DATASET='digits'"
    ):
        generate_notebooks.build_solution(
            generate_notebooks.Lab("02_wikipedia_topics", "02_wikipedia_topics"),
            source,
            "x.ipynb",
            overrides={"DATASET": "digits"},
        )

"""Every solution notebook, executed top to bottom by a real Jupyter kernel, small and offline.

Parameters are injected after the cell tagged `parameters`, as papermill does; the data are
digits, IDX and CIFAR files written here, and the loopback MediaWiki server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shutil
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
import authoring  # noqa: E402


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
            code = authoring.main(list(args))
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
            "METHODS": ["pca", "tsne"],
            "SEEDS": 2,
            "OUT": out,
        }
    if lab == "03_projector_cifar10":
        write_cifar10(tmp / "data", per_batch=60, n_test=200)
        return {
            "DATA_DIR": str(tmp / "data"),
            # 300 training images: the hand-written loop takes 3 steps an epoch, too few to
            # learn in the default 2 epochs.
            "HAND_EPOCHS": 6,
            "EPOCHS": 2,
            "PROBE_SIZE": 100,
            "METHODS": ["pca", "tsne"],
            "SEEDS": 2,
            "OUT": out,
        }
    if lab == "02_wikipedia_topics":
        return {
            "TOPICS": ["Astronomy", "Cooking", "Basketball"],
            "API_URL": wiki.url,
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 4,
            "METHOD": "pca",
            "OUT": out,
        }
    if lab == "02b_bbc_news":
        (tmp / "data").mkdir(exist_ok=True)
        write_news_csv(tmp / "data" / "bbc.csv")
        return {
            "CSV": str(tmp / "data" / "bbc.csv"),
            "DATA_DIR": str(tmp / "data"),
            "EPOCHS": 4,
            "METHOD": "pca",
            "OUT": out,
        }
    if lab == "04_layers_neural_collapse":
        return {"EPOCHS": 4, "OUT": out}  # 100 % training accuracy comes by epoch 3
    if lab == "05_grand_tour_alignment":
        # UMAP is checked in Lab 1's run: here PCA spares a kernel numba's compile time.
        return {"EPOCHS": 3, "TOUR_FRAMES": 20, "METHOD": "pca", "SEEDS": 2, "OUT": out}
    if lab == "06_working_with_embeddings":
        # Fewer repeats and a shorter long run: the answers' own run is checked on its own.
        return {"EPOCHS": 3, "SEEDS": 2, "DRAWS": 2, "LONG_EPOCHS": 6, "OUT": out}
    raise AssertionError(f"no test parameters for {lab}")


@pytest.fixture(autouse=True)
def no_tensorboard_left():
    """A student notebook stops at its exercise, before its clean-up cell: stop what it started."""
    yield
    from labkit import view

    view.stop_all(everyone=True)


@pytest.fixture(scope="module")
def wiki():
    with FakeWiki(per_topic=40) as server:
        yield server


def test_every_lab_is_covered():
    assert sorted(lab.name for lab in authoring.LABS) == LABS
    assert len(LABS) == 7
    sources = sorted(p.stem for p in (ROOT / "notebooks" / "source").glob("*.py"))
    assert sorted({lab.source for lab in authoring.LABS}) == sources


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
    assert authoring.HOW_TO_RUN in nb.cells[0].source
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
    spec = next(x for x in authoring.LABS if x.name == lab)
    return {
        **authoring.source_params(authoring.read_source(spec.source)),
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


@pytest.mark.slow
def test_generate_check_passes_and_catches_edits(tmp_path):
    # The committed notebooks equal a fresh generation byte for byte: generating is
    # deterministic, and nobody edited a built notebook by hand. (The command itself, in a
    # process of its own, as an instructor or CI types it.)
    check = [sys.executable, str(ROOT / "generate_notebooks.py"), "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0
    # A copy of the committed notebooks with one edit is out of date, and named.
    out = tmp_path / "nb"
    shutil.copytree(ROOT / "notebooks", out, ignore=shutil.ignore_patterns("source"))
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


@pytest.mark.slow
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
        assert authoring.FACTS["fashion-mnist"]["expected"] in prose
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


def _script_of(clone: Path, monkeypatch):
    """The clone's own generator (``authoring``, what its ``generate_notebooks.py``
    runs), imported as a package of its own (for the test's length): it reads the clone's files
    and the clone's git remote (everything from its ``ROOT``), without a new process paying the
    script's imports for every call."""
    name = "authoring_of_a_clone"
    package = clone / "authoring"
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, script)  # its modules import each other by name
    for sub in [m for m in sys.modules if m.startswith(f"{name}.")]:
        monkeypatch.delitem(sys.modules, sub)
    spec.loader.exec_module(script)
    assert clone.resolve() == script.ROOT
    return script


def test_without_repo_the_origin_on_github_else_the_committed_url(tmp_path, monkeypatch):
    clone = copy_checkout(tmp_path / "clone")
    script = _script_of(clone, monkeypatch)
    args = ["--lab", "01_projector_mnist", "--out", str(tmp_path / "nb")]
    notebook = tmp_path / "nb" / "student" / "01_projector_mnist.ipynb"
    committed = re.search(
        r'^Repository = "https://github\.com/([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M
    ).group(1)

    def generate(*extra: str) -> str:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            assert script.main([*args, *extra]) == 0
        return printed.getvalue()

    generate()
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == f"git+https://github.com/{committed}@main" and f"/{committed}/blob/main/" in badge
    subprocess.run(
        ["git", "remote", "add", "origin", "git@github.com:bob/labkit.git"], cwd=clone, check=True
    )
    generate()
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == "git+https://github.com/bob/labkit@main" and "/bob/labkit/blob/main/" in badge
    subprocess.run(
        ["git", "remote", "set-url", "origin", "https://gitlab.com/bob/labkit.git"],
        cwd=clone,
        check=True,
    )
    printed = generate("--repo", "https://gitlab.com/bob/labkit.git")
    kit, badge = _install_and_badge(nbformat.read(notebook, as_version=4))
    assert kit == "git+https://gitlab.com/bob/labkit.git@main" and badge == ""
    assert "no Colab badge" in printed


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
    lab = authoring.Lab("06_working_with_embeddings", "06_working_with_embeddings")
    source = authoring.KitSource("https://github.com/a/b")
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
        with pytest.raises(authoring.SourceError, match=re.escape(message)):
            authoring.build_solution(lab, source, "x.ipynb", sources=tmp_path)
    (tmp_path / "06_working_with_embeddings.py").write_text(good)
    with pytest.raises(authoring.SourceError, match="no parameter EPOCH; the par"):
        authoring.build_solution(lab, source, "x.ipynb", overrides={"EPOCH": 3}, sources=tmp_path)
    with pytest.raises(authoring.SourceError, match="no parameters cell for DATASET='digits'"):
        authoring.build_solution(
            authoring.Lab("02_wikipedia_topics", "02_wikipedia_topics"),
            source,
            "x.ipynb",
            overrides={"DATASET": "digits"},
        )


# The numbers Lab 6's model answers quote, read from the lab's own variables after its
# default run (a cell appended to the notebook).
_LAB6_FACTS = """
import json as _json
_u = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
_wrong = ~snaps.correct(-1)
_truth_share = [(true_labels[cosine_neighbours(emb, i, 8)] == true_labels[i]).mean()
                for i in np.flatnonzero(flipped)]
_zero = np.flatnonzero(agreement == 0)
_odd = [i for i in _zero if i not in set(candidates["index"])]
_ten = lambda i: np.argsort(-(_u(emb) @ _u(emb)[i]), kind="stable")[1:11]
_t = confident.attrs["thresholds"]
_missed = [i for i in np.flatnonzero(flipped) if i not in set(confident["index"])]
_p = snaps.probabilities[-1]
_g = {int(r["cluster"]): r for _, r in clusters.iterrows()}
_score = lambda name, k: scores.set_index(["ranking", "k"]).loc[(name, k)].round(3).tolist()
_named = lambda name: next(c for c, r in _g.items() if r["main_confusion"] == name)
_in = lambda c: members.index[members == c].to_numpy()
F = {
    "rings": int(_wrong.sum()), "ringed_flipped": int((_wrong & flipped).sum()),
    "n": snaps.n_probe, "n_flipped": n_flipped,
    "truth_median": float(np.median(_truth_share)) * 8,
    "genuine": len(genuine),
    "genuine_mixed": int(((agreement[genuine] > 0) & (agreement[genuine] < 1)).sum()),
    "genuine_alone": [int(i) for i in genuine if agreement[i] == 0],
    "disagree": workflows.disagreement(snaps)["wrong"].tolist(),
    "point0": [snaps.label_names[0], bool(flipped[0])],
    "after": workflows.similar(snaps, 0, k=8)[["label", "cosine"]].values.tolist(),
    "before": workflows.similar(snaps, 0, k=8, epoch=0)[["label", "cosine"]].values.tolist(),
    "median_cos": [median_cosine(snaps.layer()[0]), median_cosine(emb)],
    "mistake": [snaps.titles[query], snaps.label_names[query], predicted,
                float(_p[query].max()), share_predicted, bool(flipped[query])],
    "suspects": [[int(i), float(agreement[i]), bool(flipped[i])] for i in suspects],
    "n_candidates": len(candidates), "candidates": candidates["index"].tolist(),
    "zero": len(_zero), "zero_candidates": int(np.isin(_zero, candidates["index"]).sum()),
    "odd": [[snaps.titles[i], snaps.label_names[i], snaps.class_names[pred[i]],
             [snaps.label_names[j] for j in cosine_neighbours(emb, i, 8)],
             int((snaps.labels[_ten(i)] == pred[i]).sum())] for i in _odd],
    "kit_flipped_45": int(flipped[candidates["index"].to_numpy()[:45]].sum()),
    "flipped_true": int(np.sum(pred[flipped] == true_labels[flipped])),
    "flipped_flipped": int(np.sum(pred[flipped] == snaps.labels[flipped])),
    "median_p": [float(np.median(p_label[flipped])), float(np.median(p_label[~flipped]))],
    "genuine_candidates": [[r + 1, int(i)] for r, i in enumerate(candidates["index"])
                           if not flipped[i]],
    "nbrs_206": [snaps.label_names[i] for i in cosine_neighbours(emb, 206, 8)],
    "scores": {f"{name}@{k}": _score(name, k) for name in rankings for k in (45, 90)},
    "thresholds": [[snaps.class_names[j], t] for j, t in enumerate(_t)],
    "confident": confident["index"].tolist(),
    "missed": [[int(i), snaps.label_names[i], snaps.class_names[pred[i]],
                float(_p[i, pred[i]]), float(_t[pred[i]])] for i in _missed],
    "groups": [[r["main_confusion"], int(r["size"]), float(r["flipped"])] for r in _g.values()],
    "group_27": [[snaps.label_names[i], snaps.class_names[pred[i]], bool(flipped[i])]
                 for i in _in(_named("2 -> 7"))],
    "group_61": [[int(i), snaps.label_names[i], snaps.class_names[pred[i]]]
                 for i in _in(_named("6 -> 1")) if not flipped[i]],
    "group_51": [[int(i), snaps.label_names[i], snaps.class_names[pred[i]]]
                 for i in _in(_named("5 -> 1")) if not flipped[i]],
    "pattern": [_g[cluster]["main_confusion"], len(genuine_in[cluster]), a_name, b_name,
                [int(i) for i in query_index]],
    "pool": [data.n_pool, int(np.sum(data.pool_truth(np.arange(data.n_pool)) == true_class)),
             int(np.sum((data.pool_truth(np.arange(data.n_pool)) == true_class)
                        & (pool_pred == read_as)))],
    "found": found.values.tolist(),
    "mined_classes": np.bincount(data.pool_truth(mined), minlength=data.n_classes).tolist(),
    "comparison": comparison.values.tolist(),
    "spread": {c: spread.runs[c].tolist() for c in spread.runs.columns},
    "spread_paired": [spread.paired(f"mined: {w}", f"random: {w}").tolist()
                      for w in ("pattern", "overall")],
    "challenge": [both.paired(a, b).tolist() for a, b in (
        ("yours: overall", "random: overall"), ("yours: pattern", "random: pattern"),
        ("yours: overall", "mined: overall"), ("yours: pattern", "mined: pattern"))],
    "yours_spent": your_annotator.spent, "threads": torch.get_num_threads(),
    "memorised": {c: [None if pd.isna(v) else float(v) for v in memorised[c]]
                  for c in memorised.columns},
    "n_train": long_run.n_probe, "n_train_flips": n_train_flips,
    "checked_flips": int(on_train[checked].sum()),
    "cleaning": {n: cleaning.summary.loc[n].tolist() for n in cleaning.runs.columns},
    "cleaning_paired": [cleaning.paired(names[1], names[0]).tolist(),
                        cleaning.paired(names[2], names[0]).tolist(),
                        cleaning.paired(names[2], names[1]).tolist()],
    "held_out": int(is_a.sum()),
    "group_tables": {e: group_tables.loc[e].reset_index().values.tolist()
                     for e in ("epoch 0", "last epoch")},
    "group_readings": [[[int(i), snaps.class_names[pred[i]]] for i in np.flatnonzero(g == j)]
                       for g in (groups_last,) for j in range(SUB_K)],
    "flips_found": {m: [None if v is pd.NA else int(v) for v in row]
                    for m, row in flips_found.iterrows()},
    "yours": int(yours),
    "p0_top": [float(np.median(snaps.probabilities[0].max(1))),
               float(snaps.probabilities[0].max())],
    "map": [[r["title"], float(r["confidence"]), float(r["variability"]), bool(r["flipped"])]
            for _, r in workflows.cartography(snaps).iterrows()],
}
print("FACTS" + _json.dumps(F))
"""


def _lab6_facts(tmp_path: Path) -> tuple[dict, dict]:
    """Lab 6's solution notebook on its defaults (THREADS = 1: one CPU thread, as its answers
    say), with the facts cell appended: the facts, and the model answers by cell id."""
    nb = nbformat.read(SOLUTIONS / "06_working_with_embeddings.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_LAB6_FACTS, id="facts"))
    _inject(nb, {"OUT": str(tmp_path / "runs" / "workflows"), "DATA_DIR": str(tmp_path / "d")})
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    answers = {
        c.id: " ".join(c.source.split()) for c in nb.cells if "answer" in c.metadata.get("tags", [])
    }
    return json.loads(printed.split("FACTS", 1)[1]), answers


def _pct(x: float) -> str:
    return f"{x:.0%}".replace("%", " %")


def _series(items: list) -> str:
    """#1, #2 and #3, as the answers list them."""
    names = [f"#{i}" for i in items]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@pytest.mark.slow
def test_06_working_with_embeddings_answers_quote_its_default_run(tmp_path):
    F, A = _lab6_facts(tmp_path)
    d = F["disagree"]
    assert F["ringed_flipped"] == F["n_flipped"] and F["flipped_flipped"] == 0
    said = {
        "a-disagree": [
            f"there are {F['rings']} rings",
            f"{_pct(F['rings'] / F['n'])} of the {F['n']} probe points",
            f"and {F['ringed_flipped']} of them are the labels the kit changed",
            f"a median of {F['truth_median']:.0f} show its true digit",
            f"The {F['rings'] - F['ringed_flipped']} others",
            f"{F['genuine_mixed']} of them have their own label on 1 to 7",
            f"and {len(F['genuine_alone'])} ("
            + ", ".join(f"#{i}" for i in F["genuine_alone"])
            + ") on none",
            f"disagrees with {d[0]} points ({_pct(d[0] / F['n'])}",
            f"after one epoch with {d[1]}, after two with {d[2]}",
            f"stays between {min(d[3:])} and {max(d[3:])}",
            f"cannot fall below {F['n_flipped']}",
        ],
    }
    assert F["rings"] - F["ringed_flipped"] == F["genuine"]
    after, before = F["after"], F["before"]
    assert {lab for lab, _ in after} == {F["point0"][0]} and not F["point0"][1]
    n3 = sum(lab == "3" for lab, _ in before)
    said["a-cosine"] = [
        f"point 0 is a {F['point0'][0]} (not one of the changed labels)",
        f"all eight neighbours are {F['point0'][0]}s",
        f"cosines between {after[-1][1]:.2f} and {after[0][1]:.2f}",
        f"At epoch 0 {['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven'][n3]} of "
        f"the eight are 3s",
        f"{before[-1][1]:.2f} to {before[0][1]:.2f}",
        f"the median cosine over all pairs is {F['median_cos'][0]:.2f} at epoch 0 against "
        f"{F['median_cos'][1]:.2f} after training",
    ]
    title, label, predicted, p, share, was_flipped = F["mistake"]
    assert share == 1.0 and was_flipped
    said["a-mistake"] = [
        f"it is {title}, labelled {label} and predicted {predicted} with probability {p:.2f}",
        f"all 8 of its nearest neighbours are {predicted}s (share 100 %)",
    ]
    assert all(a == 0 for _, a, _ in F["suspects"])
    assert set(i for i, _, _ in F["suspects"]) <= set(F["candidates"])
    (odd,) = F["odd"]
    genuine_suspects = [i for i, _, f in F["suspects"] if not f]
    said["a-suspects"] = [
        "all 10 (" + ", ".join(f"#{i}" for i, _, _ in F["suspects"]) + ")",
        f"among the kit's {F['n_candidates']} candidates",
        f"of {F['zero']} points with agreement 0, and {F['zero_candidates']} of those",
        f"The other one, {odd[0]}, is labelled {odd[1]} and read as a {odd[2]}",
        "half of its 8 nearest are 1s",
        f"only {odd[4]} of its 10 nearest carry the model's {odd[2]}",
        f"{F['kit_flipped_45']} of its first 45 are wrong labels",
        f"#{genuine_suspects[0]}, a genuine 8",
    ]
    assert len(F["odd"]) == F["zero"] - F["zero_candidates"] and odd[4] < 6
    assert odd[3].count("1") == 4
    assert F["median_p"][0] < 0.02 and F["median_p"][1] > 0.8
    s = F["scores"]
    first_genuine = F["genuine_candidates"][0][0]
    said["a-loss"] = [
        f"predicts the true class for {F['flipped_true']} of the {F['n_flipped']}",
        # Medians of probabilities move in the third decimal from one CPU's bf16 to another's.
        "median probability under 0.02 (over 0.8 for the other points)",
        f"So {F['genuine'] - len(F['genuine_candidates'])} of the model's {F['genuine']} genuine",
        f"the {len(F['genuine_candidates'])} that are (such as #206",
        f"the first at rank {first_genuine}",
        f"precision and recall {s['loss alone@45'][0]:.3f} against the kit's "
        f"{s['kit candidates@45'][0]:.3f}",
        "five genuine mistakes are among the kit's first 45",
        f"the kit's list ends after {F['n_candidates']} entries",
        f"at k = 90 its precision is {s['loss alone@90'][0]:g}, the kit's "
        f"{s['kit candidates@90'][0]:.3f}",
    ]
    assert set(F["nbrs_206"]) == {"8"} and 206 in [i for _, i in F["genuine_candidates"]]
    assert s["loss alone@45"][0] == s["loss alone@45"][1] and F["kit_flipped_45"] == 40
    assert s["kit candidates@45"][0] == s["kit candidates@45"][1]
    t = dict(F["thresholds"])
    low, high = min(t, key=t.get), max(t, key=t.get)
    conf = F["confident"]
    assert set(conf) <= set(F["candidates"]) and conf[-1] == 206
    assert all(p_pred < t_pred for *_, p_pred, t_pred in F["missed"])
    ex = next(m for m in F["missed"] if m[0] == 400)
    said["a-confident"] = [
        f"from {t[low]:.2f} for the {low}s",
        f"to {t[high]:.2f} for the {high}s",
        f"names {len(conf)} candidates, all of them kit candidates",
        f"and {len(conf) - 1} of them are changed labels",
        f"its precision at k = 45 is {s['confident learning@45'][0]:.3f}",
        f"scored on its {len(conf)} entries",
        f"its recall is only {s['confident learning@45'][1]:.3f}, against "
        f"{s['loss alone@45'][1]:.3f} for the loss and {s['kit candidates@45'][1]:.3f} for the kit",
        f"It misses {len(F['missed'])} changed labels",
        f"#400, labelled {ex[1]} and read as a {ex[2]} with {ex[3]:.2f}, under the "
        f"{ex[2]}s' {ex[4]:.2f}",
    ]
    assert s["confident learning@45"][0] == max(v[0] for k, v in s.items() if k.endswith("@45"))
    groups = F["groups"]
    g27, g61, g51 = F["group_27"], F["group_61"], F["group_51"]
    as_1 = [i for i, _, p in g61 if p == "1"]
    said["a-clusters"] = [
        f"the {F['rings']} disagreements form {len(groups)} groups of "
        f"{min(g[1] for g in groups)} to {max(g[1] for g in groups)} points",
        "in five of them 83 % to 100 %",
        f'{sum(p == "7" for _, p, _ in g27)} of the {len(g27)} points of the group named "2 -> 7"',
        "labelled "
        + ", ".join(list(dict.fromkeys(lab for lab, _, _ in g27))[:-1])
        + f" or {list(dict.fromkeys(lab for lab, _, _ in g27))[-1]}",
        "(ten of the twelve were changed)",
        f'"6 -> 1" ({next(g[1] for g in groups if g[0] == "6 -> 1")} points, only '
        f"{_pct(next(g[2] for g in groups if g[0] == '6 -> 1'))} changed), holds {len(g61)} "
        f"genuine mistakes, {len(as_1)} of them",
        f'the group "5 -> 1" ({_pct(next(g[2] for g in groups if g[0] == "5 -> 1"))} changed)',
        "the 5s " + _series([i for i, lab, p in g51 if (lab, p) == ("5", "1")]) + " read as 1s",
    ]
    flips = sorted(g[2] for g in groups)
    assert flips[-5:] == [0.83, 0.83, 1.0, 1.0, 1.0] and flips[-6] < 0.83
    assert sum(f for *_, f in g27) == 10 and len(g27) == 12
    assert {i for i, _, p in g61 if p == "1"} == {39, 377, 64, 181, 184, 217, 379}
    name, n_genuine, a, b, query = F["pattern"]
    n_pool, pool_a, pool_ab = F["pool"]
    (m_items, m_a, m_ab, m_wrong), (r_items, r_a, r_ab, r_wrong) = F["found"]
    (_, right0, *_, acc0), (_, right_m, *_, acc_m), (_, right_r, *_, acc_r) = F["comparison"]
    mc = F["mined_classes"]
    sp, (pp, po) = F["spread"], F["spread_paired"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    said["a-mining"] = [
        f'the group "{name}" holds the most genuine mistakes ({n_genuine})',
        f"{a}s read as {b}s: {_series(query)}",
        f"Of the {m_items} pool items (of {n_pool}) most like the query, {m_a} are {a}s "
        f"({_pct(m_a / m_items)}), {m_ab} of them {a}s the current model reads as {b}s",
        f"the model gets {m_wrong} of the {m_items} wrong",
        f"of {r_items} random items {r_a} are {a}s",
        f"the model gets {r_wrong} wrong",
        "The other mined items are nine 1s, three 3s, a 4 and a 6",
        f"{right_m:.0f} of the {F['held_out']} other probe {a}s right with the mined labels "
        f"({right0:.0f} before, {right_r:.0f} with",
        f"{acc_m:.1%} of the true probe labels ({acc0:.1%} before, {acc_r:.1%} with".replace(
            "%", " %"
        ),
        f"the mined model gets {mean(sp['mined: pattern']):.1f} of the {F['held_out']} right on "
        f"average and the random control {mean(sp['random: pattern']):.1f}",
        f"a paired difference of +{pp[0]:.1f} {a}s (standard deviation {pp[1]:.1f}, from "
        f"{pp[2]:.1f} to +{pp[3]:.1f}), ahead in {pp[4]:.0f} of the {pp[5]:.0f} seeds",
        f"Overall {mean(sp['mined: overall']):.1%} against {mean(sp['random: overall']):.1%}, "
        f"+{100 * po[0]:.1f} points (standard deviation {100 * po[1]:.1f}, from "
        f"{100 * po[2]:.1f} to +{100 * po[3]:.1f}), ahead in {po[4]:.0f} of {po[5]:.0f}".replace(
            "%", " %"
        ),
        f"The single run's gaps ({right_m - right_r:.0f} {a}s, {100 * (acc_m - acc_r):.1f} points)",
        f"the five draws at seed 0 average {sp['random: overall'][0]:.1%}, spread "
        f"{100 * sp['random: overall, std over draws'][0]:.1f} points".replace("%", " %"),
    ]
    # "by one or two 8s of 40 in most seeds", "a fifth of a point with a spread of almost a
    # point", "overstated both gains":
    assert 1 <= pp[0] <= 2 and pp[4] >= 3 and 0.15 <= 100 * po[0] < 0.25 and 0.8 < 100 * po[1] < 1
    assert right_m - right_r > 2 * pp[0] and acc_m - acc_r > 2 * po[0]
    (yo_r, yp_r, yo_m, yp_m) = F["challenge"]
    said["a-challenge"] = [
        f"+{100 * yo_r[0]:.1f} points overall (standard deviation {100 * yo_r[1]:.1f}, ahead in "
        f"{yo_r[4]:.0f} of {yo_r[5]:.0f} seeds) and +{yp_r[0]:.1f} {a}s on the pattern (standard "
        f"deviation {yp_r[1]:.1f}, ahead in {yp_r[4]:.0f} of {yp_r[5]:.0f})",
        f"+{100 * yo_m[0]:.1f} points overall (standard deviation {100 * yo_m[1]:.1f}, ahead in "
        f"{yo_m[4]:.0f} of {yo_m[5]:.0f} seeds) and {yp_m[0]:.1f} {a}s on",
    ]
    # "the same count at every seed", "the one comparison in this section that held in every
    # seed":
    assert yp_m[:4] == [0.0, 0.0, 0.0, 0.0] and yo_m[4] == yo_m[5] == 5
    assert max(pp[4], po[4], yo_r[4], yp_r[4]) < 5
    assert F["yours_spent"] == m_items and F["threads"] == 1  # THREADS = 1 by default
    assert r_ab == 0 and len(query) == 3
    assert [mc[1], mc[3], mc[4], mc[6], mc[8]] == [9, 3, 1, 1, m_a] and sum(mc) == m_items
    g0, gl = F["group_tables"]["epoch 0"], F["group_tables"]["last epoch"]
    (_, n0, *_, ink0), (_, n1, c1, r1, *_), (_, n2, c2, r2, _, _, ink2) = gl
    (single,) = F["group_readings"][1]
    narrow = F["group_readings"][2]
    ones = [i for i, read in narrow if read == "1"]
    others = {c: sum(read == c for _, read in narrow) for c in ("7", "1", "3", "5")}
    assert gl[0][2:4] == [0, n0] and (c1, r1) == (1, 0) and set(query) <= set(ones)
    assert others["5"] == 1 and sum(others.values()) + r2 == n2
    (_, e0n0, _, e0r0, _, e0q0, e0i0), (_, e0n1, _, e0r1, _, e0q1, e0i1), g0_2 = g0
    said["a-groups"] = [
        f"the epoch-0 groups ({e0n0}, {e0n1} and {g0_2[1]} images)",
        f"it reads {e0r0}, {e0r1} and {g0_2[3]} of them as 8s",
        f"mean pixel {e0i0}, {e0i1} and {g0_2[6]}",
        f"One group of {n0} holds round",
        f"a single image, #{single[0]}, a {single[1]} whose label the kit changed",
        f"a group of {n2} holds narrow, slanted 8s: only {r2} of them are read as 8s",
        f"the others as 7s ({others['7']}), 1s ({others['1']}), 3s ({others['3']}) and a 5",
        f"{c2} of its labels are changed ones",
        f"Its ink ({ink2} against {ink0})",
    ]
    assert [e0q0, e0q1, g0_2[5]] == [1, 1, 1] and gl[2][5] == len(query) == 3
    ff, nf = F["flips_found"], F["n_flipped"]
    last, first = {m: v[-1] for m, v in ff.items()}, {m: v[1] for m, v in ff.items()}
    flips = [r for r in F["map"] if r[3]]
    corner = [r for r in F["map"] if r[1] < 0.1 and r[2] < 0.05]
    (outside,) = [r for r in flips if r not in corner]
    said["a-dynamics"] = [
        f"confident learning's ordering finds {last['confident_learning']} of the {nf} flips "
        f"in its first {nf}",
        f"self-confidence and cartography {last['self_confidence']}, AUM {last['aum']}, "
        f"the margin and the neighbours {last['margin']} (your agreement ranking {F['yours']})",
        f"After one epoch the neighbours lead with {first['neighbours']}, ahead of AUM and the "
        f"margin ({first['aum']})",
        f"At epoch 0 the neighbours already find {ff['neighbours'][0]}",
        f"confidence and confident learning find {ff['self_confidence'][0]} and the margin "
        f"{ff['margin'][0]}",
        f"On the data map {sum(r in corner for r in flips)} of the {nf} flips",
        f"which holds only {len(corner) - sum(r in corner for r in flips)} other items",
        f"the one flip outside it, {outside[0]}, sits at confidence {outside[1]:.2f}",
    ]
    assert last["confident_learning"] == max(last.values()) and ff["aum"][0] is None
    assert last["self_confidence"] == last["cartography"] and last["margin"] == last["neighbours"]
    assert max(first.values()) == first["neighbours"] and first["aum"] == first["margin"]
    assert ff["confident_learning"][0] == ff["self_confidence"][0] < 4.5 > ff["margin"][0]
    assert F["p0_top"][1] < 0.3  # the untrained head: about the same for every class
    m, nt, nft = F["memorised"], F["n_train"], F["n_train_flips"]
    m = {k.removeprefix("flips found: "): v for k, v in m.items()}
    fl, cl, fit = m["loss, flipped labels"], m["loss, clean labels"], m["flipped labels fitted"]
    peak = max(range(len(fl)), key=fl.__getitem__)
    best = {
        r: max(range(1, len(m[r])), key=lambda e, r=r: (m[r][e], -e))
        for r in ("neighbours", "self_confidence", "aum")
    }
    worst_nb = min(
        range(best["neighbours"], len(m["neighbours"])), key=lambda e: (m["neighbours"][e], e)
    )
    said["a-memorise"] = [
        f"({nft} of the {nt} training labels flipped)",
        f"the clean labels' mean loss falls from {cl[0]:.2f} to {cl[peak]:.2f} by epoch {peak}",
        f"the flipped ones' rises from {fl[0]:.2f} to {fl[peak]:.2f}",
        f"only {fit[peak]:.1%} of the flipped items".replace("%", " %"),
        f"their loss falls to {fl[10]:.2f} at epoch 10, {fl[15]:.2f} at 15, {fl[20]:.2f} at 20 "
        f"and {fl[30]:.2f} at epoch 30",
        f"climbs to {fit[10]:.0%} at epoch 10, {fit[15]:.0%} at 15, {fit[20]:.0%} at 20 and "
        f"{fit[30]:.0%} at 30".replace("%", " %"),
        f"the neighbours find {m['neighbours'][best['neighbours']]:.0f} of the {nft} flips at "
        f"epoch {best['neighbours']}, the loss {m['self_confidence'][best['self_confidence']]:.0f}"
        f" at epoch {best['self_confidence']}",
        f"down to {m['neighbours'][30]:.0f} and {m['self_confidence'][30]:.0f} at epoch 30 (the "
        f"neighbours {m['neighbours'][worst_nb]:.0f} at epoch {worst_nb})",
        f"The area under the margin reaches {m['aum'][best['aum']]:.0f} at epoch {best['aum']} "
        f"and keeps {m['aum'][30]:.0f} at epoch 30",
    ]
    assert fit[peak] == min(fit) and len(fl) == 31
    c, (re_g, or_g, _) = F["cleaning"], F["cleaning_paired"]
    given, rechecked, oracle = c.values()
    said["a-clean"] = [
        f"The first {nft} items by the area under the margin hold {F['checked_flips']} of the "
        f"{nft} flips",
        f"{given[0]:.1%} with the labels as given (standard deviation {100 * given[1]:.1f} "
        f"points), {rechecked[0]:.1%} after re-checking ({100 * rechecked[1]:.1f}) and "
        f"{oracle[0]:.1%} with every label right ({100 * oracle[1]:.1f})".replace("%", " %"),
        f"Re-checking gains +{100 * re_g[0]:.1f} points over the labels as given (standard "
        f"deviation {100 * re_g[1]:.1f}, ahead in {re_g[4]:.0f} of {re_g[5]:.0f} seeds), against "
        f"+{100 * or_g[0]:.1f} for the oracle (standard deviation {100 * or_g[1]:.1f}, ahead in "
        f"{or_g[4]:.0f} of {or_g[5]:.0f})",
        f"a spread of {100 * rechecked[1]:.1f} points instead of {100 * given[1]:.1f}",
    ]
    # "about three quarters of the oracle's gain", "smaller than its spread", "10 %":
    assert 0.7 <= re_g[0] / or_g[0] <= 0.8 and re_g[0] < re_g[1] and round(nft / nt, 2) == 0.1
    for cell, phrases in said.items():
        for phrase in phrases:
            assert phrase in A[cell], f"{cell} should say {phrase!r}:\n{A[cell]}"


def test_the_quoted_numbers_check_finds_a_number_the_run_did_not_print():
    from . import lab_numbers

    nb = nbformat.v4.new_notebook()
    run = nbformat.v4.new_code_cell("print(x)", id="run")
    run.outputs = [nbformat.v4.new_output("stream", text="NC1 0.1234, radius 6.45\n")]
    nb.cells = [
        run,
        nbformat.v4.new_markdown_cell("NC1 0.123 and 0.12, radius 6.5 (`lr=1e-3`)", id="a-ok"),
        nbformat.v4.new_markdown_cell("a silhouette of 0.67, NC1 0.1235", id="a-stale"),
        nbformat.v4.new_markdown_cell("-0.5 is the simplex's cosine", id="a-constant"),
        nbformat.v4.new_markdown_cell("0.99 in another run", id="a-findings"),
    ]
    lab_numbers.QUOTES["test"] = lab_numbers.Quotes(skip=("a-findings",), elsewhere={"-0.5": ""})
    try:
        assert lab_numbers.unmatched("test", nb) == {"a-stale": ["0.67", "0.1235"]}
    finally:
        del lab_numbers.QUOTES["test"]
    # Every cell the check names is a cell of its lab.
    for stem, quotes in lab_numbers.QUOTES.items():
        ids = {c.metadata["id"] for c in authoring.read_source(stem).cells}
        assert set(quotes.cells) | set(quotes.skip) <= ids, stem


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a code cell defines (assigns, imports, defs, parameters) and those it reads."""
    import ast

    tree = ast.parse(source)
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.alias):
            defined.add((node.asname or node.name).split(".")[0])
    return defined, read


@pytest.mark.parametrize("lab", LABS)
def test_the_core_path_needs_nothing_an_optional_part_defines(lab):
    """A student who leaves out every optional part runs on: no core code cell reads a name
    that only an optional cell has defined before it."""
    nb = nbformat.read(SOLUTIONS / f"{lab}.ipynb", as_version=4)
    core, optional_only, found = set(), set(), []
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith(("%", "!")):
            continue
        defined, read = _names(cell.source)
        if "optional" in cell.metadata.get("tags", []):
            optional_only |= defined - core
            continue
        found += [f"{cell.get('id')} reads {n}" for n in sorted(read & optional_only - defined)]
        core |= defined
        optional_only -= defined
    assert any("optional" in c.metadata.get("tags", []) for c in nb.cells), lab
    assert not found, f"{lab}: core cells read names only optional cells define: {found}"


@pytest.mark.parametrize("stem", ["01_projector_mnist", "02_wikipedia_topics"])
def test_the_clean_up_line_runs_once_uncommented(stem, tmp_path):
    """The clean-up cell is a commented line the student uncomments: it must run as it is."""
    cell = next(c for c in authoring.read_source(stem).cells if c.metadata["id"] == "stop-servers")
    line = cell.source.strip().removeprefix("# ")
    env = {**__import__("os").environ, "LABKIT_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", f"import labkit\n{line}"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr

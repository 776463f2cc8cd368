"""The Colab path, end to end: from the generated notebook to an explorable embedding.

Each test builds a fresh Colab-like environment (tests/colab.py), generates the notebooks with
``--repo`` pointing at a git repository of this checkout, and runs lab 01 in a real kernel of
that environment: the set-up cell's real ``pip install`` from the repository, training on
``digits``, the TensorBoard cell, the explorer. Only Google's side is a stand-in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .colab import copy_checkout, make_colab_runtime, make_venv
from .test_notebooks import _generate, _inject

TOKEN = "2colabTOKENnotForLogs_0123456789abcdef"
LAB = "01_projector_mnist"
PARAMS = {"DATASET": "digits", "EPOCHS": 2, "PROBE_SIZE": 200, "METHODS": ["pca"]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("labkit-repo"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """Made once: each test gets a copy, as fresh as a new Colab runtime."""
    return make_venv(tmp_path_factory.mktemp("colab-base") / "venv")


@pytest.fixture
def colab(tmp_path, monkeypatch, venv):
    runtime = make_colab_runtime(tmp_path / "colab", venv)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "colab" / "jupyter"))
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)  # only Colab's secrets hold it
    yield runtime
    for event in runtime.agent_events():  # the kernel's exit stops the agent; make sure
        if event["event"] == "start":
            with contextlib.suppress(ProcessLookupError):
                os.kill(event["pid"], signal.SIGKILL)
    from labkit import view

    view.stop_all(everyone=True)


def _notebook(repo: Path, out: Path, *, url: str | None = None) -> nbformat.NotebookNode:
    code, printed = _generate(
        "--out", str(out), "--repo", url or repo.as_uri(), "--ref", "main", "--lab", LAB
    )
    assert code == 0, printed
    nb = nbformat.read(out / "solutions" / f"{LAB}.ipynb", as_version=4)
    _inject(nb, PARAMS)
    return nb


CHECK = (
    "import json, labkit, torch\n"
    "from google.colab import output\n"
    "print('CHECK ' + json.dumps({'labkit': labkit.__file__, 'torch': torch.__file__,\n"
    "      'colab_calls': output.calls, 'out': str(OUT), 'data_dir': str(DATA_DIR)}))"
)


@contextlib.contextmanager
def _session(nb, colab, cwd: Path):
    """Run every cell, then a cell asking what the test wants to know from inside the kernel,
    and keep the kernel for what the student does next (run one cell again)."""
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    client = NotebookClient(
        nb, timeout=600, kernel_name=colab.kernel_name, resources={"metadata": {"path": str(cwd)}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)

        def again(cell) -> None:
            client.execute_cell(cell, nb.cells.index(cell))

        yield again


def _texts(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        for key in ("text/plain", "text/html"):
            parts.append("".join(out.get("data", {}).get(key, "")))
    return "".join(parts)


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _check(nb) -> dict:
    line = next(x for x in _texts(nb.cells[-1]).splitlines() if x.startswith("CHECK "))
    return json.loads(line[len("CHECK ") :])


def _common_checks(nb, colab, repo: Path) -> dict:
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert "Traceback" not in json.dumps(nb)
    check = _check(nb)
    # The kit was installed by the set-up cell into the fresh environment, from the repository...
    assert Path(check["labkit"]).is_relative_to(colab.site_packages)
    direct = json.loads(
        next(colab.site_packages.glob("labkit-*.dist-info/direct_url.json")).read_text()
    )
    assert direct["url"] == repo.as_uri() and direct["vcs_info"]["requested_revision"] == "main"
    # ... and what Colab already had was kept, not downloaded again.
    assert not Path(check["torch"]).is_relative_to(colab.site_packages)
    kept = ("torch", "torchvision", "tensorboard", "numpy")
    assert not [p for name in kept for p in colab.site_packages.glob(f"{name}*")]
    setup = _texts(_cell(nb, "labkit.home("))
    assert "Warning" not in setup  # the installed kit is the version the notebook expects
    # Files land in Colab's /content (LABKIT_HOME here), not beside the notebook.
    assert check["out"] == str(colab.home / "runs" / "mnist")
    assert check["data_dir"] == str(colab.home / "data")
    for name in ("mantis.csv", "tensorboard/projector_config.pbtxt", "figures/methods.png"):
        assert (colab.home / "runs" / "mnist" / name).stat().st_size > 0
    # The explorer is a widget (jupyter-scatter inside ipywidgets), with Colab's custom widget
    # manager switched on first.
    explorer = _cell(nb, "labkit.explore(")
    views = [
        o
        for o in explorer.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1
    assert ["enable_custom_widget_manager"] in check["colab_calls"]
    return check


@pytest.mark.slow
def test_on_colab_tensorboard_is_inline_until_a_token_opens_a_protected_tunnel(
    repo, colab, tmp_path
):
    """The path the notebook lays out: run all without a token (TensorBoard inline, three
    steps to a tunnel), then add the secret and run the TensorBoard cell again."""
    nb = _notebook(repo, tmp_path / "nb")
    with _session(nb, colab, tmp_path / "nb" / "solutions") as again:
        check = _common_checks(nb, colab, repo)
        cell = _cell(nb, "open_tensorboard(")
        tensorboard = _texts(cell)
        # TensorBoard inline through Colab's port proxy, and the three steps to a tunnel.
        proxied = [c for c in check["colab_calls"] if c[0] == "serve_kernel_port_as_iframe"]
        # Two: the kit's logs, then the projector files the student wrote by hand.
        assert len(proxied) == 2 and all(p[2] == "/#projector" for p in proxied)
        assert 'data-standin="colab-port-proxy"' in tensorboard
        for step in (
            "1. get a token",
            "dashboard.ngrok.com",
            "2. in Colab, click the key icon",
            "NGROK_AUTHTOKEN",
            "'Notebook access'",
            "3. run this cell again",
            "Safari",
            "explorer",
        ):
            assert step in tensorboard, step
        assert colab.agent_events() == []  # no token: no ngrok agent was started

        # Steps 2 and 3: the secret, then the same cell again in the same session.
        colab.set_secret("NGROK_AUTHTOKEN", TOKEN)
        again(cell)
        again(nb.cells[-1])
    tensorboard = _texts(cell)
    assert "TensorBoard is public at https://" in tensorboard and ".ngrok-free.app" in tensorboard
    assert "user: labkit" in tensorboard and "password: " in tensorboard
    assert "data-standin" not in tensorboard  # the tunnel replaced the inline view
    calls = _check(nb)["colab_calls"][len(check["colab_calls"]) :]
    assert not [c for c in calls if c[0] == "serve_kernel_port_as_iframe"]
    events = colab.agent_events()
    start = next(e for e in events if e["event"] == "start")
    tunnel = next(e for e in events if e["event"] == "tunnel")
    # The agent got the token through its environment, never on its command line ...
    assert start["env_token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in " ".join(start["argv"])
    user, password = tunnel["options"]["basic_auth"][0].split(":")
    assert user == "labkit" and f"password: {password}" in tensorboard
    # ... and the token is in no output and no file the kit wrote.
    assert TOKEN not in json.dumps(nb)
    for path in [*colab.home.rglob("*"), *(colab.folder / "home").rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_an_unreachable_repository_stops_the_set_up_with_one_sentence(repo, colab, tmp_path):
    url = (tmp_path / "no-such-repository").as_uri()
    nb = _notebook(repo, tmp_path / "nb", url=url)
    with pytest.raises(CellExecutionError):
        NotebookClient(
            nb,
            timeout=300,
            kernel_name=colab.kernel_name,
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute()
    error = next(
        o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    )
    assert error["ename"] == "SetupError"
    message = error["evalue"]
    assert error["traceback"] == [message]  # the sentence alone, no Python traceback
    assert message.startswith(f"Could not install labkit from git+{url}@main (")
    assert "does not appear to be a git repository" in message
    assert message.endswith("python generate_notebooks.py --repo URL --ref REF.")
    assert message.count(". ") == 0 and "\n" not in message  # one sentence
    assert not any(colab.site_packages.glob("labkit*"))

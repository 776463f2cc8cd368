"""A Colab runtime, as far as one can be built here, for the tests of the Colab path.

What is real: a fresh Python environment that already holds what Colab preinstalls (torch,
torchvision, tensorboard, ... from the site-packages of the environment running the tests) but
not labkit; pip >= 24, as on Colab; a Jupyter kernel in that environment; and a git repository
of this checkout that the notebooks install the kit from (``file://``). What stands in for
Google: the ``google.colab`` package and the ngrok agent in ``tests/standin/`` (see its README).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "standin"
GIT = [
    "git",
    "-c",
    "user.name=labkit tests",
    "-c",
    "user.email=tests@labkit.invalid",
    "-c",
    "commit.gpgsign=false",
]


def copy_checkout(dest: Path) -> Path:
    """This checkout as it is now (tracked and untracked-but-not-ignored files) in ``dest``,
    committed to a fresh git repository on ``main``; returns ``dest``."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "labkit"], cwd=dest, check=True)
    return dest


@dataclass
class ColabRuntime:
    """A kernel named ``kernel_name`` that believes it runs on Colab."""

    folder: Path
    python: Path
    kernel_name: str
    home: Path  # LABKIT_HOME: Colab's /content
    secrets: Path  # the stand-in's store of Colab secrets
    ngrok_record: Path  # what the stand-in ngrok agent saw

    @property
    def site_packages(self) -> Path:
        return next((self.folder / "venv" / "lib").glob("python3*/site-packages"))

    def set_secret(self, name: str, value: str) -> None:
        self.secrets.write_text(json.dumps({name: value}), encoding="utf-8")

    def agent_events(self) -> list[dict]:
        if not self.ngrok_record.exists():
            return []
        return json.loads(self.ngrok_record.read_text())["events"]


def running_site_packages() -> list[str]:
    """The site-packages folders the running interpreter imports from, in its order.

    In a virtual environment these are the environment's (and the base interpreter's only
    where the environment was made with ``--system-site-packages``); in a conda environment
    or the system interpreter, the interpreter's own.
    """
    folders = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    folders += site.getsitepackages()
    return [f for f in dict.fromkeys(folders) if os.path.isdir(f)]


def make_venv(venv: Path) -> Path:
    """A fresh environment over the running environment's site-packages, with pip >= 24;
    returns it.

    Colab's preinstalled packages are the running environment's site-packages; labkit is not
    among them once the venv shadows it (the editable install is only a fallback on sys.path).
    ``--system-site-packages`` would not do: from inside a virtual environment it shows the
    base interpreter's packages, not the environment's (no ipykernel for the kernel there).
    """
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    # A .pth line that starts with `import` runs at start-up; addsitedir appends each folder
    # after the venv's own site-packages (what the set-up cell installs wins, as on Colab) and
    # reads the folder's own .pth files (the editable install of labkit among them).
    adds = "; ".join(f"site.addsitedir({folder!r})" for folder in running_site_packages())
    (site_packages / "colab_preinstalled.pth").write_text(f"import site; {adds}\n")
    # pip >= 24 accepts `name @ git+file:///...`, as Colab's pip does.
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        + ["--disable-pip-version-check", "pip>=24"],
        check=True,
        capture_output=True,
    )
    return venv


def make_colab_runtime(folder: Path, venv: Path) -> ColabRuntime:
    """Build the environment, the stand-ins and a kernelspec under ``folder``.

    ``venv``, made by :func:`make_venv`, is copied rather than made again: a venv finds its
    packages relative to its ``bin/python``, so the copy is a fresh environment of its own.
    The caller points ``JUPYTER_PATH`` at ``folder / "jupyter"`` to make the kernel known.
    """
    shutil.copytree(venv, folder / "venv", symlinks=True)
    python = folder / "venv" / "bin" / "python"

    ipython = folder / "ipython" / "profile_default" / "startup"
    ipython.mkdir(parents=True)
    # Colab's kernel imports google.colab at start-up: that is how notebooks tell they are there.
    (ipython / "00-colab.py").write_text("import google.colab\n")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    agent = bin_dir / "ngrok"
    agent.write_text(f"#!{sys.executable}\n" + (STANDIN / "ngrok").read_text())
    agent.chmod(0o755)
    home = folder / "content"
    home.mkdir()
    (folder / "home").mkdir()

    runtime = ColabRuntime(
        folder, python, "colab-standin", home, folder / "secrets.json", folder / "ngrok-record.json"
    )
    spec = folder / "jupyter" / "kernels" / runtime.kernel_name
    spec.mkdir(parents=True)
    env = {
        "PYTHONPATH": str(STANDIN),
        "IPYTHONDIR": str(folder / "ipython"),
        "LABKIT_HOME": str(home),
        "HOME": str(folder / "home"),
        "PYNGROK_NGROK_PATH": str(agent),
        "STANDIN_COLAB_SECRETS": str(runtime.secrets),
        "STANDIN_NGROK_RECORD": str(runtime.ngrok_record),
    }
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Colab (stand-in)",
                "language": "python",
                "env": env,
            }
        )
    )
    return runtime

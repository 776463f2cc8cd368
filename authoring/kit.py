"""Where the kit comes from: the git repository and ref the notebooks install it from on Colab
and link to (their "Open in Colab" badge), and the two cells every lab starts with."""

from __future__ import annotations

import re
import subprocess
import textwrap
from dataclasses import dataclass

from .course import ROOT

DEFAULT_REF = "main"


@dataclass(frozen=True)
class KitSource:
    """The git repository and ref the notebooks install the kit from (Colab) and link to."""

    repo: str  # e.g. https://github.com/you/labkit, or file:///path/to/a/clone
    ref: str = DEFAULT_REF
    version: str = ""  # labkit's version in this checkout: the set-up cell checks it

    @property
    def pip_url(self) -> str:
        return f"git+{self.repo}@{self.ref}"

    @property
    def github(self) -> str | None:
        """``owner/name`` when the repository is on GitHub (Colab opens notebooks from there)."""
        m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.repo)
        return m.group(1) if m else None


def github_https(url: str) -> str | None:
    """``https://github.com/owner/name`` for any spelling of a GitHub remote, else None."""
    m = re.fullmatch(
        r"(?:https://|ssh://git@|git@)github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?", url.strip()
    )
    return f"https://github.com/{m.group(1)}/{m.group(2)}" if m else None


def committed_repo() -> str:
    """The repository URL committed in pyproject.toml (``[project.urls] Repository``)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Repository = "([^"]+)"', text, re.M).group(1)


def origin_repo() -> str | None:
    """The ``origin`` remote of this checkout, when it is a GitHub repository."""
    try:
        url = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return github_https(url)


def kit_version() -> str:
    text = (ROOT / "labkit" / "_version.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def kit_source(repo: str | None = None, ref: str | None = None) -> KitSource:
    repo = (repo or origin_repo() or committed_repo()).rstrip("/")
    return KitSource(github_https(repo) or repo, ref or DEFAULT_REF, kit_version())


def _dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def badge(source: KitSource, path: str) -> str:
    """The "Open in Colab" badge for the notebook at ``path`` (relative to the repository)."""
    if source.github is None:
        return (
            f"*(No Colab badge: Colab opens notebooks from GitHub, and these were made "
            f"for {source.repo}.)*"
        )
    url = f"https://colab.research.google.com/github/{source.github}/blob/{source.ref}/{path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def install(source: KitSource) -> str:
    """Colab only: install the kit, and say in one sentence what to do if that fails."""
    return _dedent(f"""
        # @title Install the kit (on Colab only; about a minute) {{ display-mode: "form" }}
        # Elsewhere, install it once from the repository's root:
        #   pip install -r requirements.txt -e .
        import sys

        KIT = "{source.pip_url}"  # where the course keeps the kit
        KIT_VERSION = "{source.version}"

        if "google.colab" in sys.modules:
            import os
            import subprocess

            class SetupError(Exception):
                def _render_traceback_(self):  # Jupyter shows this message, no traceback
                    return [str(self)]

            # pip keeps what Colab already has (torch, torchvision, tensorboard, ...).
            pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-color",
                                  f"labkit @ {{KIT}}"], capture_output=True, text=True,
                                 env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
            if pip.returncode != 0:  # git's own words say best what went wrong
                said = [line.strip() for line in pip.stderr.splitlines() if line.strip()]
                why = next((line for line in said if line.startswith("fatal:")),
                           said[-1] if said else "")
                if "could not read Username" in why:
                    why = "the repository does not exist, or is private"
                raise SetupError(f"Could not install labkit from {{KIT}} ({{why}}): students, "
                                 f"send this message to your instructor; instructors, regenerate "
                                 f"the notebooks with python generate_notebooks.py --repo URL "
                                 f"--ref REF.")
    """)


SETUP = _dedent("""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from IPython.display import Image, display

    import labkit
    from labkit import align, metrics, plots, workflows

    if labkit.__version__ != KIT_VERSION:
        print(f"Warning: this notebook was written for labkit {KIT_VERSION}, but labkit "
              f"{labkit.__version__} is installed. On Colab: Runtime > Restart session, then run "
              f"all again; elsewhere: pip install -e . in the repository. If the warning stays, "
              f"tell your instructor.")

    # Data sets and runs go to one place, never beside the notebook: the repository's root
    # when you run from a checkout, /content on Colab, or LABKIT_HOME when you set it.
    DATA_DIR, OUT = labkit.home(DATA_DIR), labkit.home(OUT)
    (OUT / "figures").mkdir(parents=True, exist_ok=True)
    print(f"labkit {labkit.__version__}: data sets in {DATA_DIR}, this lab's run in {OUT}")
""")

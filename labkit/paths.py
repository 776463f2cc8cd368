"""Where the kit's files go: one predictable place for data sets and runs.

A notebook runs with its own folder as the working directory, so ``"data"`` and ``"runs"``
would land beside the notebook (inside ``notebooks/student/`` in a checkout). :func:`home`
is the folder they belong in instead:

1. ``LABKIT_HOME``, when set (a shared class folder, a scratch disk);
2. ``/content`` on Colab (the folder its file browser shows);
3. the root of the labkit checkout the working directory is in (``data/`` and ``runs/``
   there are ignored by git);
4. otherwise the working directory itself.

>>> labkit.home("runs", "mnist")          # doctest: +SKIP
PosixPath('/home/me/labkit/runs/mnist')
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["COLAB_HOME", "HOME_VAR", "home", "in_colab", "in_ipython"]

HOME_VAR = "LABKIT_HOME"
COLAB_HOME = Path("/content")


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def in_ipython() -> bool:
    """True where IPython runs the code (a notebook's kernel, the IPython shell)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _checkout_root(start: Path) -> Path | None:
    # A labkit checkout holds the package beside the notebooks; the nearest one wins.
    for folder in (start, *start.parents):
        if (folder / "labkit" / "__init__.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def home(*parts: str | os.PathLike) -> Path:
    """The kit's home folder, joined with ``parts`` (an absolute part replaces the home)."""
    if os.environ.get(HOME_VAR, "").strip():
        base = Path(os.environ[HOME_VAR].strip()).expanduser()
    elif in_colab():
        base = COLAB_HOME
    else:
        cwd = Path.cwd()
        base = _checkout_root(cwd.resolve()) or cwd
    return base.joinpath(*parts).absolute()

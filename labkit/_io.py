"""Atomic file writes: a crash or Ctrl-C mid-export never leaves a half-written file.

Everything the kit writes goes to a temporary file in the same folder first and is then
renamed over the target. A rename within one file system is atomic, so readers see either
the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    >>> with atomic_write("out.txt") as f:   # doctest: +SKIP
    ...     f.write("all or nothing")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
        open_kwargs.setdefault("newline", "")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty, strict JSON (NaN becomes null), atomically."""
    with atomic_write(path) as f:
        json.dump(_strict(obj), f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")


def _strict(obj: Any) -> Any:
    # JSON has no NaN/Infinity; null is what other tools read without complaint.
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _strict(obj.item())
    return obj


def check_run_folder(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise a clear error, before any work, if ``folder`` cannot become a run folder."""
    from .errors import ConfigError, RunExistsError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder; choose another --out")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise RunExistsError(
            f"{folder} already holds a run; choose another --out, or pass "
            f"--overwrite (overwrite=True) to replace it"
        )
    parent = next((p for p in (folder.parent, *folder.parent.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create the run folder {folder}: {parent} is not a folder "
            f"this user can write to; choose another --out"
        )
    return folder


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder beside ``folder`` and rename it into place when the block succeeds.

    Readers see the old folder or the new one, never a mix: an error or Ctrl-C inside the
    block leaves ``folder`` as it was and removes the half-built one. With ``overwrite`` an
    existing folder is replaced whole (nothing of the old run stays listed beside the new).
    """
    import shutil
    import uuid

    folder = check_run_folder(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    building = folder.parent / f".{folder.name}.partial-{tag}"
    building.mkdir()
    try:
        yield building
        if folder.exists():
            old = folder.parent / f".{folder.name}.replaced-{tag}"
            os.rename(folder, old)
            try:
                os.rename(building, folder)
            except BaseException:
                os.rename(old, folder)  # put the previous run back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(building, folder)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)

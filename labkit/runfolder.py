"""Run folders: built whole beside their place, and replaced only when the kit wrote them.

A run folder is built under a hidden name beside ``--out`` and renamed into place when
everything is written, so readers see the earlier run or the new one, never a mix, and an
error or Ctrl-C leaves the earlier one as it was.

``--overwrite`` deletes the earlier folder, so the kit must be able to prove it wrote it:
each run folder holds a manifest, :data:`MANIFEST`, listing every file and folder the kit
put there. A folder is replaced only when its manifest is the kit's and nothing else is in
it; a folder of the user's own files, a run folder the user added a file to, ``runs/``
itself (every run and the run cache), the working directory, the kit's home and the folders
above them are never replaced: each is one sentence, and nothing is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from . import interrupts
from ._io import write_json
from .errors import ConfigError, RunExistsError

__all__ = ["MANIFEST", "build", "check"]

MANIFEST = ".labkit-run.json"
_WRITER = "labkit"  # the manifest's "written_by": what makes it the kit's


def _listing(folder: Path) -> set[str]:
    """Every file and folder under ``folder``, as POSIX paths relative to it (links are
    listed, not followed)."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        found.update((rel / name).as_posix() for name in (*dirs, *files))
    return found


def _manifest(folder: Path) -> set[str] | None:
    """The paths ``folder``'s manifest says the kit wrote, or None when it has none of the
    kit's (absent, a link, unreadable, or not in the kit's form)."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != _WRITER:
        return None
    files = record.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)


def _protected(folder: Path) -> str | None:
    """Why ``folder`` may never be a run folder (replaced or renamed), or None."""
    from . import store
    from .paths import home

    here = folder.resolve()
    if here == home("runs").resolve():
        return "is the folder of all runs (and of the run cache)"
    # A folder at or above the working directory, the kit's home, the user's home or the run
    # cache would take them with it when the run is renamed into place.
    for what, place in (
        ("the working directory", Path.cwd()),
        ("the kit's home folder (labkit.home())", home()),
        ("your home folder", Path.home()),
        ("the run cache", store.folder()),
    ):
        place = place.resolve()
        if here == place or here in place.parents:
            return f"is {what}" if here == place else f"holds {what} ({place})"
    return None


def _describe(names: set[str], limit: int = 3) -> str:
    shown = sorted(n for n in names if "/" not in n) or sorted(names)
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


def check(folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``folder`` as a :class:`Path` when it can become a run folder, before any work; a
    :class:`ConfigError` (or :class:`RunExistsError`) saying why not, with nothing touched."""
    folder = Path(folder)
    _check_name(folder)
    if folder.is_symlink():
        raise ConfigError(
            f"--out {folder} is a symbolic link (to {os.readlink(folder)}); name a real "
            f"folder, e.g. the link's target"
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder; choose another --out")
    why = _protected(folder)
    if why:
        raise ConfigError(
            f"--out {folder} {why}, so it cannot be a run folder; name a new folder for "
            f"the run, e.g. --out runs/NAME"
        )
    if folder.is_dir():
        present = _listing(folder)
        if present:
            _check_replaceable(folder, present, overwrite)
    parent = next((p for p in (folder.parent, *folder.parent.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create the run folder {folder}: {parent} is not a folder "
            f"this user can write to; choose another --out"
        )
    return folder


def _check_name(folder: Path) -> None:
    """Every part of ``folder`` within the file system's limit (checked before anything
    else looks the folder up, which would fail with the OS's bare "File name too long")."""
    base = next((p for p in folder.absolute().parents if p.is_dir()), Path("/"))
    limit = os.pathconf(base, "PC_NAME_MAX")
    for part in folder.parts:
        if len(os.fsencode(part)) > limit:
            raise ConfigError(
                f"--out {folder}: the name {part[:20]}... is {len(os.fsencode(part))} bytes "
                f"long, and this file system allows at most {limit}; choose a shorter name"
            )


def _check_replaceable(folder: Path, present: set[str], overwrite: bool) -> None:
    written = _manifest(folder)
    if written is None and {"summary.json", "snapshots/meta.json"} <= present:
        raise RunExistsError(
            f"{folder} looks like a run, but has no manifest of the kit's ({MANIFEST}) to "
            f"prove the kit wrote all of it, so --overwrite leaves it alone; delete it "
            f"yourself if you no longer need it, or choose another --out"
        )
    if written is None:
        raise RunExistsError(
            f"{folder} is not empty and is not a run folder the kit wrote (it holds "
            f"{_describe(present)}); --overwrite replaces only a run folder, so choose "
            f"another --out"
        )
    foreign = present - written - {MANIFEST}
    if foreign:
        raise RunExistsError(
            f"{folder} holds a run and files the kit did not write there "
            f"({_describe(foreign)}); move them out, or choose another --out"
        )
    if not overwrite:
        raise RunExistsError(
            f"{folder} already holds a run; choose another --out, or pass "
            f"--overwrite (overwrite=True) to replace it"
        )


@contextlib.contextmanager
def build(folder: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a run folder beside ``folder`` and rename it into place when the block succeeds.

    An error or Ctrl-C inside the block leaves ``folder`` as it was and removes the
    half-built one. With ``overwrite`` an earlier run folder is replaced whole (nothing of the
    old run stays listed beside the new), and only one :func:`check` proves the kit wrote.
    """
    folder = check(folder, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    # The hidden names carry the start of the run's name (to tell whose they are) and stay
    # within the file system's limit however long the name is.
    stem = folder.name[:64]
    building = folder.parent / f".{stem}.partial-{tag}"
    building.mkdir()
    try:
        yield building
        interrupts.check()  # a Ctrl-C a library swallowed on the way still stops the run
        write_json(
            building / MANIFEST,
            {"written_by": _WRITER, "files": sorted(_listing(building))},
        )
        if folder.exists():
            old = folder.parent / f".{stem}.replaced-{tag}"
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

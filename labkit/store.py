"""The disk store that the run cache and the projection cache share: one folder of entries
named by a hash of what went into them, written whole and trimmed by least recent use.

The folder is ``home("runs", ".cache")``, shared by every notebook with the same
``LABKIT_HOME``; the environment variable ``LABKIT_RUN_CACHE`` names another. Finished runs
(:mod:`labkit.training.runcache`) are ``.npz`` files at its top; arrays (the projections of
:func:`labkit.reduce.project` and their trustworthiness) are ``.npy`` files in a folder per
kind, by :func:`array_key`, with :func:`store_array` and :func:`load_array`. Nothing in it is
a pickle: numpy reads every entry with ``allow_pickle=False``. An entry that cannot be read is
a miss with a warning, and is removed. The least recently used entries go when the folder
grows past :data:`MAX_BYTES`. Clear it with :func:`clear` or by deleting the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from ._io import atomic_write
from ._version import __version__
from .paths import home

__all__ = [
    "CACHE_VAR",
    "MAX_BYTES",
    "array_key",
    "clear",
    "folder",
    "load_array",
    "source_hash",
    "store_array",
]

CACHE_VAR = "LABKIT_RUN_CACHE"
MAX_BYTES = 2 * 1024**3  # Lab 1's default MNIST run is about 14 MB: over a hundred runs
FORMAT = 1  # the layout of an entry; a new layout is a new key


def folder() -> Path:
    """Where entries live: ``$LABKIT_RUN_CACHE``, else ``home("runs", ".cache")``."""
    named = os.environ.get(CACHE_VAR, "").strip()
    return Path(named).expanduser().absolute() if named else home("runs", ".cache")


@cache
def processor() -> str:
    """The CPU's model name: two CPUs of one architecture may run other kernels (oneDNN
    picks them by model), whose sums differ in the last bits."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


@cache
def source_hash(modules: tuple[str, ...]) -> str:
    """A hash of the source of these modules of the kit (names under ``labkit.``)."""
    import importlib
    import inspect

    h = hashlib.blake2b(digest_size=16)
    for name in modules:
        path = Path(inspect.getfile(importlib.import_module(f"labkit.{name}")))
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def array_key(
    arrays: list[np.ndarray | None], settings: dict, *, code: tuple[str, ...], libraries: list[str]
) -> str:
    """The hash of a computation of numpy ``arrays`` (None counts as absent) with
    ``settings``, on this machine, with these versions of the kit (the source of its modules
    named in ``code``, as :func:`source_hash` takes them), numpy and the
    ``libraries`` (distribution names: ``["scikit-learn"]``) that compute it, and this many
    threads (t-SNE's gradients are summed by all of them)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = [__version__, source_hash(code), np.__version__]
    for name in libraries:
        try:
            versions.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} missing")
    ident = {
        "format": FORMAT,
        "settings": settings,
        "versions": versions,
        "python": sys.version_info[:2],
        "machine": [platform.machine(), processor()],
        "threads": [os.environ.get("OMP_NUM_THREADS"), os.cpu_count(), torch.get_num_threads()],
    }
    h = hashlib.sha256()
    h.update(json.dumps(ident, sort_keys=True, default=repr).encode())
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def damaged(path: Path, what: str, why: str, then: str) -> None:
    """A miss, said in a warning; the entry goes, so what is computed now takes its place."""
    warnings.warn(f"the cached {what} {path} {why}; {then}", stacklevel=4)
    with contextlib.suppress(OSError):
        path.unlink()


def used(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the least-recently-used trim keeps it


def store_array(kind: str, key: str, array: np.ndarray, *, max_bytes: int = MAX_BYTES) -> None:
    """Keep ``array`` under ``kind/key`` (atomically); a folder that cannot be written is a
    warning, and the array is only not kept."""
    path = folder() / kind / f"{key}.npy"
    try:
        with atomic_write(path, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
    except OSError as err:
        warnings.warn(f"the {kind} could not be kept in the cache ({err})", stacklevel=3)
        return
    trim(max_bytes, keep=path)


def load_array(kind: str, key: str) -> np.ndarray | None:
    """The array kept under ``kind/key``, or None; a damaged one is a miss with a warning."""
    path = folder() / kind / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        return damaged(
            path, kind, f"could not be read ({type(err).__name__}: {err})", "computing it again"
        )
    used(path)
    return array


def _stored() -> list[Path]:
    """Every entry: the runs, and the arrays in the kinds' folders below."""
    return [*folder().glob("*.npz"), *folder().glob("*/*.npy")]


def trim(max_bytes: int, keep: Path) -> None:
    """Remove the least recently used entries until the folder holds at most ``max_bytes``
    (the entry just written stays, however large)."""
    entries = []
    for path in _stored():
        with contextlib.suppress(OSError):
            st = path.stat()
            entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        if path == keep:
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size


def clear() -> int:
    """Remove every entry (runs and projections); returns how many."""
    removed = 0
    for path in _stored():
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed

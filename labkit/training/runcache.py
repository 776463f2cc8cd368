"""Finished runs and their projections, kept by what went into them: the same training (or
t-SNE or UMAP of the same embedding) is done once.

The kit's training is deterministic for the same inputs on the same device, so a run that
nbgrader's autograde, *Run all* or a variant asks for again is loaded instead of trained
again. An entry's key is a hash of everything that changes the result (:func:`run_key`):
the data's tensors and probe, the model's class, code, architecture and initial weights, the
training's settings, the device and precision, and the versions of the kit (the source
of the modules training runs, :data:`TRAINING_MODULES`), torch and numpy. An entry holds
what training computed (the probe's embeddings and probabilities, the head's weights, the
history, the final weights); the probe's labels, titles and pictures come from the data
again.

Entries are ``.npz`` files (no pickle) in the kit's disk store (:mod:`labkit.store`: where
it is, how it is trimmed and cleared), written to a temporary name and renamed, so a reader
never sees half an entry and two processes training one key at once leave one whole entry.
An entry is checked before it is used: it names the key it was stored under and the dtype
and shape of every weight, and what it recorded must fit as :meth:`labkit.Snapshots.load`
checks a save (:func:`labkit.snapshots.record_problem`, the one set of checks). One that
cannot be read or does not fit is a miss with a warning, and is removed.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import platform
import sys
import time
import types
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import store as disk
from .._io import atomic_write
from .._version import __version__
from ..data import LabData
from ..snapshots import record_problem
from .settings import TrainSettings

__all__ = ["TRAINING_MODULES", "Entry", "load", "run_key", "store"]


# -- the key ----------------------------------------------------------------------------------


# Where a loaded run is announced: None prints one line per run; a list (inside `tallied`)
# collects them, for a caller that runs many (labkit.repeat) and says so once at the end.
_TALLY: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("tally", default=None)


@contextlib.contextmanager
def tallied() -> Iterator[list[str]]:
    """Inside the block, runs loaded from the cache are listed (their files), not announced."""
    loaded: list[str] = []
    token = _TALLY.set(loaded)
    try:
        yield loaded
    finally:
        _TALLY.reset(token)


def announce(entry: Entry) -> None:
    """Say that ``entry`` was loaded rather than trained (or list it, inside ``tallied``)."""
    tally = _TALLY.get()
    if tally is not None:
        tally.append(str(entry.path))
        return
    print(
        f"loaded the run trained on {entry.when} from the cache ({entry.path}); "
        f"cache=False (--no-cache) to train again"
    )


def _update_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # numpy has no bfloat16; the bits are what count
    h.update(t.numpy().reshape(-1).view(np.uint8).data)


def _update_code(h, code: types.CodeType) -> None:
    """A function's compiled code without its file name and line numbers: a class defined in
    a notebook keeps its key from one kernel to the next, and changes it when edited."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _update_code(h, const)
        else:
            h.update(repr(const).encode())


def _update_classes(h, model: nn.Module) -> None:
    """The code of every module class in ``model`` that is not torch's own (a student's
    ``forward`` is part of what is trained)."""
    seen: set[type] = set()
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls in seen or cls.__module__.startswith("torch.") or cls is object:
                continue
            seen.add(cls)
            h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
            for name, value in sorted(vars(cls).items()):
                func = getattr(value, "__func__", value)  # staticmethod/classmethod
                if isinstance(func, property):
                    func = func.fget
                code = getattr(func, "__code__", None)
                if code is not None:
                    h.update(name.encode())
                    _update_code(h, code)
                    _update_bound(h, func)


def _update_bound(h, func) -> None:
    """The values a function closes over and its defaults (a ``scale`` from an enclosing
    function is part of what ``forward`` computes). Their repr: where it names an address,
    the key changes from one process to the next, a miss and never a wrong hit."""
    cells = []
    for cell in func.__closure__ or ():
        try:
            cells.append(repr(cell.cell_contents))
        except ValueError:  # a cell not filled yet
            cells.append("<empty>")
    h.update(repr((cells, func.__defaults__, func.__kwdefaults__)).encode())


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return disk.processor()


# The kit's modules whose code decides what is kept: a change to one of them computes again;
# a change anywhere else (the explorer, the course builder, a message) leaves the cache whole,
# so a fixed typo does not cost a class its cache. The model's own classes are hashed with
# the model (their code, the kit's models included).
TRAINING_MODULES = (
    "training.loop",
    "training.device",
    "training.batches",
    "training.record",
    "training.runcache",
    "training.settings",
    "hooks",
    "models",
)


def run_key(model: nn.Module, data: LabData, settings: TrainSettings) -> str:
    """The hash of everything that changes what ``train(model, data, ...)`` returns.

    ``model`` as it is before training (its initial weights count), ``data`` on any device,
    ``settings`` the run's settings resolved for them (:meth:`TrainSettings.resolved`: the
    layers by name, the batch size, the device and the precision that train).
    """
    # SHA-256: CPUs with SHA extensions (most x86 and ARM ones of recent years) compute it
    # in hardware, twice blake2b's speed here on the 0.2 GB of MNIST's training split that
    # every train() call hashes.
    h = hashlib.sha256()
    ident = {
        "format": disk.FORMAT,
        "settings": settings.record(),
        "versions": [
            __version__,
            disk.source_hash(TRAINING_MODULES),
            torch.__version__,
            np.__version__,
        ],
        "python": sys.version_info[:2],
        "machine": [platform.machine(), _device_name(settings.device)],
        "threads": torch.get_num_threads(),  # a CPU's sums are ordered by its threads
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "architecture": repr(model),
        "data": [data.name, data.kind, data.probe_split, data.mirror, list(data.class_names)],
    }
    h.update(json.dumps(ident, sort_keys=True, default=str).encode())
    _update_classes(h, model)
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        _update_tensor(h, t)
    for t in (data.x_train, data.y_train, data.x_test, data.y_test, data.probe_index):
        _update_tensor(h, t)  # label noise changes y_train and y_test
    return h.hexdigest()


# -- entries ----------------------------------------------------------------------------------


@dataclass
class Entry:
    """What a finished run computed (see :class:`labkit.training.record.Recorder`) and its
    weights."""

    embeddings: dict[str, np.ndarray]
    probabilities: np.ndarray
    head_weights: list[np.ndarray]
    head_bias: list[np.ndarray]
    history: list[dict]
    meta: dict
    state: dict[str, torch.Tensor]
    trained_at: float  # seconds since the epoch, when it was stored
    path: Path | None = None

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.trained_at))


def store(key: str, entry: Entry, *, max_bytes: int = disk.MAX_BYTES) -> Path | None:
    """Write ``entry`` under ``key`` atomically and drop the oldest entries past
    ``max_bytes``. Returns its path, or None where the weights cannot be stored (a dtype
    numpy lacks) or the folder cannot be written (the run is still returned, only not kept).
    """
    arrays: dict[str, np.ndarray] = {"probabilities": entry.probabilities}
    layers = list(entry.embeddings)
    for i, name in enumerate(layers):
        arrays[f"embedding_{i}"] = entry.embeddings[name]
    for i, w in enumerate(entry.head_weights):
        arrays[f"head_weight_{i}"] = w
    for i, b in enumerate(entry.head_bias):
        arrays[f"head_bias_{i}"] = b
    names = list(entry.state)
    for i, name in enumerate(names):
        t = entry.state[name].detach().cpu()
        if t.dtype == torch.bfloat16:
            return None
        arrays[f"state_{i}"] = t.numpy()
    about = {
        "key": key,  # an entry copied under another key is not taken for that run
        "layers": layers,
        "state": names,
        # What the arrays must be when they are read back: load checks them against it.
        "tensors": [
            [arrays[f"state_{i}"].dtype.str, arrays[f"state_{i}"].shape] for i in range(len(names))
        ],
        "probabilities": entry.probabilities.shape,
        "heads": [len(entry.head_weights), len(entry.head_bias)],
        "history": entry.history,
        "meta": entry.meta,
        "trained_at": entry.trained_at,
    }
    arrays["about"] = np.frombuffer(json.dumps(about).encode("utf-8"), dtype=np.uint8)
    path = disk.folder() / f"{key}.npz"
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as err:
        warnings.warn(f"the run could not be kept in the cache ({err})", stacklevel=3)
        return None
    disk.trim(max_bytes, keep=path)
    return path


def load(
    key: str,
    *,
    model_state: dict[str, torch.Tensor] | None = None,
    n_probe: int | None = None,
    n_classes: int | None = None,
) -> Entry | None:
    """The entry stored under ``key``, or None. An entry that cannot be read, or does not
    fit what it says it holds (the shape of a weight, the probe's size, its history, its
    epochs; the checks :meth:`labkit.Snapshots.load` makes), or does not fit the run asking
    for it (``model_state``: the model's weights, by name, dtype and shape; ``n_probe``,
    ``n_classes``), is a miss with a warning, and is removed, so the run trained now takes
    its place."""
    path = disk.folder() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        about = json.loads(bytes(arrays["about"]).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return disk.damaged(
            path, "run", f"could not be read ({type(err).__name__}: {err})", "training again"
        )
    problem = _misfit(key, about, arrays)
    if problem:
        return disk.damaged(path, "run", f"does not fit its run ({problem})", "training again")
    n_weights, n_bias = about["heads"]
    entry = Entry(
        embeddings={n: arrays[f"embedding_{i}"] for i, n in enumerate(about["layers"])},
        probabilities=arrays["probabilities"],
        head_weights=[arrays[f"head_weight_{i}"] for i in range(n_weights)],
        head_bias=[arrays[f"head_bias_{i}"] for i in range(n_bias)],
        history=about["history"],
        meta=about["meta"],
        state={n: torch.from_numpy(arrays[f"state_{i}"]) for i, n in enumerate(about["state"])},
        trained_at=float(about["trained_at"]),
        path=path,
    )
    problem = _unlike(entry, model_state, n_probe, n_classes)
    if problem:
        return disk.damaged(path, "run", f"does not fit its run ({problem})", "training again")
    disk.used(path)
    return entry


def _unlike(
    entry: Entry,
    model_state: dict[str, torch.Tensor] | None,
    n_probe: int | None,
    n_classes: int | None,
) -> str | None:
    """How ``entry`` differs from the run that asks for it, or None. The key already holds
    all of it; this catches an entry whose content was changed under its name."""
    if model_state is not None:
        if list(entry.state) != list(model_state):
            return "its weights are not named as the model's are"
        for name, want in model_state.items():
            got = entry.state[name]
            if got.shape != want.shape or got.dtype != want.dtype:
                return (
                    f"the weight {name} is {got.dtype} {tuple(got.shape)}, the model's is "
                    f"{want.dtype} {tuple(want.shape)}"
                )
    n, c = entry.probabilities.shape[1:]
    if n_probe is not None and n != n_probe:
        return f"it holds {n} probe samples, the run's probe has {n_probe}"
    if n_classes is not None and c != n_classes:
        return f"it holds {c} classes, the run's data has {n_classes}"
    return None


_ABOUT = {
    "key": str,
    "layers": list,
    "state": list,
    "tensors": list,
    "probabilities": list,
    "heads": list,
    "trained_at": (int, float),
}


def _misfit(key: str, about, arrays: dict[str, np.ndarray]) -> str | None:
    """Why an entry's ``about`` and ``arrays`` do not make the run stored under ``key``,
    or None."""
    if not isinstance(about, dict):
        return "its description is not a JSON object"
    for name, kind in _ABOUT.items():
        if not isinstance(about.get(name), kind) or isinstance(about.get(name), bool):
            return f"its description has no {name!r} of the right kind"
    try:
        time.localtime(about["trained_at"])  # the time the message about a hit shows
    except (OverflowError, OSError, ValueError):
        return f"its description says it was trained at {about['trained_at']!r}"
    if about["key"] != key:
        return f"it was stored for another run ({about['key'][:12]}...)"
    names, tensors = about["state"], about["tensors"]
    if len(names) != len(tensors):
        return f"{len(names)} weights named for {len(tensors)} described"
    for i, (name, described) in enumerate(zip(names, tensors, strict=True)):
        a = arrays.get(f"state_{i}")
        if a is None:
            return f"the weights of {name!r} are missing"
        if [a.dtype.str, list(a.shape)] != described:
            return (
                f"the weights of {name!r} are {a.dtype.str} {list(a.shape)}, stored as {described}"
            )
    shape = about["probabilities"]
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        return f"its description gives the probabilities the shape {shape!r}"
    heads = about["heads"]
    if len(heads) != 2 or not all(isinstance(h, int) and h >= 0 for h in heads):
        return f"its description counts the head's weights as {heads!r}"
    wanted = [
        *(f"embedding_{i}" for i in range(len(about["layers"]))),
        *(f"head_weight_{i}" for i in range(heads[0])),
        *(f"head_bias_{i}" for i in range(heads[1])),
        "probabilities",
    ]
    missing = [name for name in wanted if name not in arrays]
    if missing:
        return f"it lacks {', '.join(missing)}"
    found = record_problem(
        *shape,
        embeddings={name: arrays[f"embedding_{i}"] for i, name in enumerate(about["layers"])},
        probabilities=arrays["probabilities"],
        head_weights=_stacked(arrays, "head_weight", heads[0]),
        head_bias=_stacked(arrays, "head_bias", heads[1]),
        history=about.get("history"),
        meta=about.get("meta"),
    )
    return found and found[1]


def _stacked(arrays: dict[str, np.ndarray], prefix: str, count: int) -> list | None:
    """The ``count`` arrays ``prefix_0 ..``, as the snapshots' one array holds them."""
    return [arrays[f"{prefix}_{i}"] for i in range(count)] if count else None

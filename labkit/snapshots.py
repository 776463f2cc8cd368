"""``Snapshots``: the embeddings of the probe set at every epoch, and everything needed to read
them.

It is the one object the exporters, metrics and plots consume. ``save``/``load`` round-trip
exactly: arrays go to an uncompressed ``.npz`` (raw float32 bytes), the rest to JSON.

    snaps.embeddings["embed"]   # float32 [epochs + 1, n_probe, dim]; [0] is before training
                                # (other dtypes are converted to float32 on construction)
    snaps.predictions           # int64   [epochs + 1, n_probe]
    snaps.labels                # int64   [n_probe]
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write, write_json
from .checks import is_whole
from .errors import ConfigError, LabkitError, LayerNotFound

__all__ = ["Snapshots", "SnapshotsError"]


class SnapshotsError(LabkitError, ValueError):
    """A snapshots folder that cannot be read as one save; the message names the file."""


FORMAT_VERSION = 1
_ARRAYS = "arrays.npz"
_META = "meta.json"
_OPTIONAL_ARRAYS = ("head_weights", "head_bias", "thumbnails", "flipped")


@dataclass
class Snapshots:
    """Probe-set embeddings per layer and epoch, with labels, predictions and history.

    ``history`` holds one dict per epoch (0 .. N) with ``train_loss``, ``train_acc`` (running
    means over that epoch's batches; ``None`` at epoch 0), ``test_loss`` and ``test_acc``.
    ``head_weights[e]`` is the classifier's weight matrix after epoch ``e`` (for NC3).

    Every argument is checked when it is made (and when it is loaded or saved): labels and
    predictions are class indices, lengths agree with ``labels``, epochs with
    ``predictions``; anything else is a :class:`ConfigError` naming the argument. Lists
    and tuples where arrays belong are converted. Embeddings may hold NaN or infinity
    (a layer can overflow while the loss stays finite): they are what the network computed,
    and the exports that cannot hold them say so.
    """

    embeddings: dict[str, np.ndarray]
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    titles: list[str]
    class_names: list[str]
    history: list[dict] = field(default_factory=list)
    probe_index: np.ndarray | None = None
    head_weights: np.ndarray | None = None
    head_bias: np.ndarray | None = None
    thumbnails: np.ndarray | None = None
    snippets: list[str] | None = None
    meta: dict = field(default_factory=dict)
    flipped: np.ndarray | None = None  # bool [n_probe]: labels the data's label_noise changed

    def __post_init__(self) -> None:
        # Lists where arrays belong are what the user meant: they are converted. Anything
        # else that does not fit (a label that is no class, lengths that disagree) is one
        # sentence naming the argument, here rather than in a plot or an export much later.
        problem = _problem(vars(self))
        if problem:
            raise ConfigError(f"Snapshots: {problem[1]}")
        # float32 by contract, whatever the caller passed: what save, the Mantis CSV and
        # the projector write and read back is exactly what is held (float64 embeddings
        # would be written as float64 text and read back rounded).
        self.embeddings = {
            name: np.asarray(emb, dtype=np.float32) for name, emb in self.embeddings.items()
        }
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.predictions = np.asarray(self.predictions, dtype=np.int64)
        self.titles, self.class_names = list(self.titles), list(self.class_names)
        for name, dtype in (
            ("probe_index", np.int64),
            ("head_weights", np.float32),
            ("head_bias", np.float32),
            ("flipped", bool),
        ):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        if self.thumbnails is not None:
            self.thumbnails = np.asarray(self.thumbnails)
        if self.snippets is not None:
            self.snippets = list(self.snippets)

    # -- reading ---------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Captured layer names, shallow to deep (``snaps.layer(name)`` is one's embeddings)."""
        return list(self.embeddings)

    @property
    def epochs(self) -> int:
        """Number of training epochs N (snapshots exist for 0 .. N)."""
        return self.predictions.shape[0] - 1

    @property
    def n_probe(self) -> int:
        return len(self.labels)

    @property
    def penultimate(self) -> str | None:
        return self.meta.get("penultimate") or (self.layer_names[-1] if self.layer_names else None)

    def layer(self, name: str | None = None) -> np.ndarray:
        """Embeddings ``[epochs + 1, n, dim]`` of ``name`` (default: the penultimate layer)."""
        name = name or self.penultimate
        if name is None or name not in self.embeddings:
            raise LayerNotFound(
                f"layer {name!r} was not captured; captured: {', '.join(self.layer_names)}"
            )
        return self.embeddings[name]

    @property
    def label_names(self) -> list[str]:
        """Class name of every probe sample."""
        return [self.class_names[i] for i in self.labels]

    def correct(self, epoch: int = -1) -> np.ndarray:
        """Boolean mask: the model's prediction at ``epoch`` equals the label."""
        return self.predictions[epoch] == self.labels

    def subset(self, items: Sequence[int] | np.ndarray) -> Snapshots:
        """These snapshots for the probe items ``items`` only (indices into the probe, in
        their order): every per-item array and list is taken at them."""
        items = np.asarray(items, np.int64)
        take = lambda a: None if a is None else np.asarray(a)[items]  # noqa: E731
        return replace(
            self,
            embeddings={name: emb[:, items] for name, emb in self.embeddings.items()},
            labels=self.labels[items],
            predictions=self.predictions[:, items],
            probabilities=self.probabilities[:, items],
            titles=[self.titles[i] for i in items],
            probe_index=take(self.probe_index),
            thumbnails=take(self.thumbnails),
            snippets=None if self.snippets is None else [self.snippets[i] for i in items],
            flipped=take(self.flipped),
        )

    def coarse(self, groups: dict[str, Sequence[int | str]]) -> Snapshots:
        """The same snapshots labelled by groups of classes: a coarse label the model was
        never told, such as digits with a closed loop against the rest.

        ``groups`` maps each group's name to its classes (names or indices); every class is
        in exactly one group. Labels and predictions become group indices (in the order of
        ``groups``), the probability of a group is the sum of its classes'; the embeddings
        are shared, not copied. The head's weights are left out: they belong to the classes.
        """
        if not isinstance(groups, dict) or len(groups) < 2:
            raise ConfigError(
                f"coarse() takes a dict of at least two groups, {{name: [classes]}}; got {groups!r}"
            )
        group_of = np.full(len(self.class_names), -1)
        for g, (name, members) in enumerate(groups.items()):
            for c in [members] if isinstance(members, (str, int)) else members:
                i = self._class_index(c)
                if group_of[i] >= 0:
                    raise ConfigError(
                        f"class {self.class_names[i]!r} is in two groups, "
                        f"{list(groups)[group_of[i]]!r} and {name!r}; put it in one"
                    )
                group_of[i] = g
        if (group_of < 0).any():
            left = [self.class_names[i] for i in np.flatnonzero(group_of < 0)]
            raise ConfigError(
                f"the classes {', '.join(map(repr, left))} are in no group; put every class "
                f"in one group"
            )
        probabilities = np.zeros((*self.probabilities.shape[:2], len(groups)), np.float32)
        for g in range(len(groups)):
            probabilities[..., g] = self.probabilities[..., group_of == g].sum(axis=-1)
        return replace(
            self,
            labels=group_of[self.labels],
            predictions=group_of[self.predictions],
            probabilities=probabilities,
            class_names=list(groups),
            head_weights=None,
            head_bias=None,
            meta={
                **self.meta,
                "coarse": {
                    name: [self.class_names[i] for i in np.flatnonzero(group_of == g)]
                    for g, name in enumerate(groups)
                },
            },
        )

    def _class_index(self, c: int | str) -> int:
        if isinstance(c, str) and c in self.class_names:
            return self.class_names.index(c)
        whole = isinstance(c, (int, np.integer)) and not isinstance(c, bool)
        if whole and 0 <= c < len(self.class_names):
            return int(c)
        raise ConfigError(
            f"no class {c!r}; the classes are 0..{len(self.class_names) - 1}: "
            f"{', '.join(self.class_names)}"
        )

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}: {v.shape[2]}" for k, v in self.embeddings.items())
        acc = self.history[-1].get("test_acc") if self.history else None
        acc_s = f", final test acc {acc:.3f}" if acc is not None else ""
        return (
            f"Snapshots({self.meta.get('dataset', '?')}/{self.meta.get('model', '?')}: "
            f"epochs 0..{self.epochs}, {self.n_probe} probe samples, "
            f"layers {{{dims}}}{acc_s})"
        )

    # -- saving ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``arrays.npz`` and ``meta.json`` into ``folder``.

        Everything is checked and serialised before anything is written, both files are
        written into a temporary folder beside ``folder`` and only then moved into place: a
        refused field (a ``datetime`` in ``meta``) or a full disk leaves an earlier save in
        ``folder`` as it was, byte for byte. Other files in ``folder`` are left alone.
        """
        folder = Path(folder)
        checked = replace(self)  # the checks and conversions of construction, on what is held now
        # The same id in both files: a folder whose two files come from two saves (one of
        # them interrupted) is caught when it is loaded.
        save_id = uuid.uuid4().hex
        doc = _meta_doc(checked, save_id)
        arrays = {f"emb/{name}": np.ascontiguousarray(a) for name, a in checked.embeddings.items()}
        arrays.update(
            labels=checked.labels,
            predictions=checked.predictions,
            probabilities=checked.probabilities,
        )
        if checked.probe_index is not None:
            arrays["probe_index"] = checked.probe_index
        for key in _OPTIONAL_ARRAYS:
            if getattr(checked, key) is not None:
                arrays[key] = getattr(checked, key)
        arrays["save_id"] = np.array(save_id)

        def write(into: Path) -> None:
            with atomic_write(into / _ARRAYS, "wb") as f:
                np.savez(f, **arrays)
            write_json(into / _META, doc)

        _write_beside(folder, write)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Snapshots:
        """Read what :meth:`save` wrote (a run folder's ``snapshots/`` or the run folder).

        Every field is checked as construction checks it: a damaged one is a
        :class:`SnapshotsError` naming the file and the field."""
        folder = Path(folder)
        if not (folder / _META).exists() and (folder / "snapshots" / _META).exists():
            folder = folder / "snapshots"
        if not (folder / _META).exists():
            raise FileNotFoundError(
                f"no snapshots in {folder} (expected {_META} and {_ARRAYS}); "
                f"create them with `python -m labkit run --out {folder}`"
            )
        meta = _read_meta(folder)
        arrays = _read_arrays(folder, meta)
        fields = {
            "embeddings": {name: arrays[f"emb/{name}"] for name in meta["layers"]},
            "labels": arrays["labels"],
            "predictions": arrays["predictions"],
            "probabilities": arrays["probabilities"],
            "titles": meta.get("titles"),
            "class_names": meta.get("class_names"),
            "history": meta.get("history"),
            "probe_index": arrays.get("probe_index"),
            "head_weights": arrays.get("head_weights"),
            "head_bias": arrays.get("head_bias"),
            "thumbnails": arrays.get("thumbnails"),
            "flipped": arrays.get("flipped"),
            "snippets": meta.get("snippets"),
            "meta": meta.get("meta", {}),
        }
        problem = _problem(fields)
        if problem:
            field, why = problem
            name = _META if re.match(r"\w+", field)[0] in _META_FIELDS else _ARRAYS
            raise SnapshotsError(f"{folder / name} is damaged ({why}){_AGAIN}")
        return cls(**fields)

    def equals(self, other: Snapshots) -> bool:
        """True when every array is bit-identical and the metadata is equal; how long each
        epoch took (``history[e]["seconds"]``) does not count."""
        if self.layer_names != other.layer_names:
            return False
        pairs = [(self.embeddings[k], other.embeddings[k]) for k in self.layer_names]
        pairs += [
            (getattr(self, k), getattr(other, k))
            for k in ("labels", "predictions", "probabilities", "probe_index", *_OPTIONAL_ARRAYS)
        ]
        for a, b in pairs:
            if (a is None) != (b is None):
                return False
            if a is not None and (
                a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes()
            ):
                return False

        def untimed(history: list[dict]) -> list[dict]:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

        return (self.titles, self.class_names, untimed(self.history), self.snippets, self.meta) == (
            other.titles,
            other.class_names,
            untimed(other.history),
            other.snippets,
            other.meta,
        )


_AGAIN = "; write it again (python -m labkit run --overwrite, or snaps.save)"
# The fields meta.json holds; the others are arrays.npz's.
_META_FIELDS = {"titles", "class_names", "history", "snippets", "meta"}


def _read_meta(folder: Path) -> dict:
    """``meta.json`` of a save, checked to be one this labkit can read."""
    import json

    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list):
            raise ValueError("not the metadata of a save")
        if not all(isinstance(name, str) for name in meta["layers"]):
            raise ValueError("layers should be a list of layer names")
        missing = [key for key in ("titles", "class_names", "history") if key not in meta]
        if missing:
            raise ValueError(f"it has no {' and no '.join(missing)}")
    except (OSError, ValueError) as err:
        raise SnapshotsError(f"{folder / _META} is damaged ({err}){_AGAIN}") from None
    version = meta.get("format_version", 0)
    if not is_whole(version):
        raise SnapshotsError(
            f"{folder / _META} is damaged (format_version is {version!r}, not a whole "
            f"number){_AGAIN}"
        )
    if version > FORMAT_VERSION:
        raise SnapshotsError(
            f"{folder} was written by a newer labkit "
            f"(format {meta['format_version']}); upgrade labkit to read it"
        )
    return meta


def _read_arrays(folder: Path, meta: dict) -> dict[str, np.ndarray]:
    """``arrays.npz`` of the same save as ``meta``, with every array ``meta`` promises."""
    try:
        with np.load(folder / _ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise SnapshotsError(
            f"{folder / _ARRAYS} is damaged ({type(err).__name__}: {err}){_AGAIN}"
        ) from None
    if "save_id" in arrays and str(arrays["save_id"]) != meta.get("save_id"):
        raise SnapshotsError(
            f"{folder / _ARRAYS} and {folder / _META} come from two different saves{_AGAIN}"
        )
    needed = ("labels", "predictions", "probabilities", *(f"emb/{n}" for n in meta["layers"]))
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise SnapshotsError(f"{folder / _ARRAYS} lacks {', '.join(missing)}{_AGAIN}")
    return arrays


def _meta_doc(snaps: Snapshots, save_id: str) -> dict:
    """What ``meta.json`` holds, every part checked to be JSON that UTF-8 can encode."""
    doc = {
        "format_version": FORMAT_VERSION,
        "save_id": save_id,
        "layers": snaps.layer_names,
        "titles": snaps.titles,
        "class_names": snaps.class_names,
        "history": snaps.history,
        "snippets": snaps.snippets,
        "meta": snaps.meta,
    }
    for name, value in doc.items():
        problem = _json_problem(value, name)
        if problem:
            raise ConfigError(f"cannot save the snapshots: {problem}")
    return doc


def _json_problem(value: Any, name: str) -> str | None:
    """Why ``value`` (called ``name``) cannot be written as JSON in UTF-8, or None. What
    :func:`labkit._io.write_json` converts (numpy numbers, tuples, NaN) is fine."""
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, str):
        return _unencodable(value, name)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _json_problem(str(key), f"a key of {name}") or _json_problem(
                item, f"{name}[{key!r}]"
            )
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        return next(
            (p for i, item in enumerate(value) if (p := _json_problem(item, f"{name}[{i}]"))),
            None,
        )
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        try:
            return _json_problem(value.item(), name)
        except (ValueError, RuntimeError):  # an array of more than one value
            return f"{name} is an array, which JSON cannot hold; give a list (.tolist())"
    return f"{name} is {_described(value)}, which JSON cannot hold; give a str"


def _unencodable(text: str, name: str) -> str | None:
    """Why ``text`` (called ``name``) cannot be written as UTF-8, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (
            f"{name} holds {text[err.start]!r} at position {err.start}, a lone surrogate "
            f"that cannot be encoded as UTF-8; give text without it"
        )
    return None


def _write_beside(folder: Path, write: Callable[[Path], None]) -> None:
    """``write(into)`` into a new folder beside ``folder``, then its files moved into
    ``folder`` (each rename atomic; ``meta.json`` last, whose save id vouches for the arrays).
    A failure in ``write`` leaves ``folder`` untouched."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"cannot save the snapshots in {folder}: it is a file, not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    into = folder.parent / f".{folder.name}.saving-{uuid.uuid4().hex[:8]}"
    into.mkdir()
    try:
        write(into)
        if not folder.exists():
            os.rename(into, folder)
            return
        for name in (_ARRAYS, _META):
            os.replace(into / name, folder / name)
    finally:
        shutil.rmtree(into, ignore_errors=True)


# -- what fits ------------------------------------------------------------------------------
#
# One set of checks for every way snapshots come to be: constructed, loaded from a save, and
# restored from the run cache (labkit.training.runcache checks what an entry recorded with
# record_problem). Each check yields (field, what is wrong) and the first is reported, by the
# caller, as its kind of error: a ConfigError, a SnapshotsError naming the file, a cache miss.
# A generator stops at its first yield, so a check may rely on the ones before it.

Problem = tuple[str, str]


def _described(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} values"
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


_KINDS = {"iu": "whole numbers", "fiu": "numbers", "b": "booleans"}


def _array(field: str, value: Any, kinds: str, shape: tuple, spec: str) -> Iterator[Problem]:
    """``value`` is an array (or a list that makes one) of the dtype ``kinds`` and of
    ``shape`` (None: any size), described as ``spec``."""
    try:
        a = np.asarray(value)
    except (ValueError, TypeError):  # a ragged list
        a = None
    if a is None or a.dtype.kind not in kinds:
        yield field, f"{field} should be {_KINDS[kinds]} [{spec}], got {_described(value)}"
    elif a.ndim != len(shape) or any(
        s is not None and s != t for s, t in zip(shape, a.shape, strict=True)
    ):
        yield field, f"{field} should be {_KINDS[kinds]} [{spec}], got shape {list(a.shape)}"


def _classes(field: str, value: Any, n_classes: int) -> Iterator[Problem]:
    """Every value of the whole-number array ``value`` is a class index."""
    a = np.asarray(value)
    bad = np.flatnonzero((a < 0) | (a >= n_classes))
    if bad.size:
        at = np.unravel_index(bad[0], a.shape)
        yield (
            field,
            (
                f"{field}[{', '.join(str(int(i)) for i in at)}] is {a[at]}, not one of the "
                f"{n_classes} classes (0..{n_classes - 1}) of class_names"
            ),
        )


def _texts(field: str, value: Any, n: int | None) -> Iterator[Problem]:
    """``value`` is a list (or tuple) of ``n`` str (any number where ``n`` is None)."""
    if not isinstance(value, (list, tuple)):
        yield field, f"{field} should be a list of str, got {_described(value)}"
    elif n is not None and len(value) != n:
        yield field, f"{field} has {len(value)} entries for {n} probe samples (labels)"
    else:
        bad = next((i for i, item in enumerate(value) if not isinstance(item, str)), None)
        if bad is not None:
            yield field, f"{field}[{bad}] is {_described(value[bad])}, not a str"
        # Every file the text goes to (the save, the Mantis CSV, the projector) is UTF-8.
        found = next(
            (p for i, t in enumerate(value) if (p := _unencodable(t, f"{field}[{i}]"))), None
        )
        if found:
            yield field, found


def _problem(fields: dict[str, Any]) -> Problem | None:
    """The first field of a :class:`Snapshots` (its constructor's arguments) that does not
    fit the others, or None."""
    return next(_problems(fields), None)


def _problems(f: dict[str, Any]) -> Iterator[Problem]:
    names = f["class_names"]
    yield from _texts("class_names", names, None)
    if not names:
        yield "class_names", "class_names is empty; give the name of every class"
    twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if twice is not None:
        yield "class_names", f"class_names holds {twice!r} twice; give each class once"
    yield from _array("labels", f["labels"], "iu", (None,), "n_probe")
    n = len(f["labels"])
    yield from _classes("labels", f["labels"], len(names))
    yield from _texts("titles", f["titles"], n)
    yield from _array("predictions", f["predictions"], "iu", (None, n), f"epochs + 1, {n}")
    if len(f["predictions"]) == 0:
        yield "predictions", "predictions holds no snapshot; give epoch 0 at least"
    yield from _classes("predictions", f["predictions"], len(names))
    yield from _record_problems(len(f["predictions"]), n, len(names), f)
    if f["probe_index"] is not None:
        yield from _array("probe_index", f["probe_index"], "iu", (n,), str(n))
        if (np.asarray(f["probe_index"]) < 0).any():
            yield "probe_index", "probe_index holds a negative position"
    if f["flipped"] is not None:
        yield from _array("flipped", f["flipped"], "b", (n,), str(n))
    if f["thumbnails"] is not None:  # grey [n, h, w] or colour [n, h, w, channels]
        colour = isinstance(f["thumbnails"], np.ndarray) and f["thumbnails"].ndim == 4
        shape = (n, None, None, None) if colour else (n, None, None)
        spec = f"{n}, height, width{', channels' if colour else ''}"
        yield from _array("thumbnails", f["thumbnails"], "fiu", shape, spec)
    if f["snippets"] is not None:
        yield from _texts("snippets", f["snippets"], n)


def record_problem(
    snapshots: int,
    n_probe: int,
    n_classes: int,
    *,
    embeddings: Any,
    probabilities: Any,
    head_weights: Any,
    head_bias: Any,
    history: Any,
    meta: Any,
) -> Problem | None:
    """Why what a training recorded (see :class:`labkit.training.record.Recorder`) does not fit
    ``snapshots`` epochs (0 .. snapshots - 1) of ``n_probe`` samples in ``n_classes``
    classes, as ``(field, sentence)``; None when it fits. :class:`Snapshots` makes these
    checks when it is made and loaded, and the run cache on every entry it reads."""
    fields = {
        "embeddings": embeddings,
        "probabilities": probabilities,
        "head_weights": head_weights,
        "head_bias": head_bias,
        "history": history,
        "meta": meta,
    }
    return next(_record_problems(snapshots, n_probe, n_classes, fields), None)


def _record_problems(e: int, n: int, c: int, f: dict[str, Any]) -> Iterator[Problem]:
    emb = f["embeddings"]
    if not isinstance(emb, dict):
        yield (
            "embeddings",
            f"embeddings should be a dict {{layer name: array}}, got {_described(emb)}",
        )
    for name, a in emb.items():
        if not isinstance(name, str):
            yield "embeddings", f"embeddings has the layer name {name!r}; layer names are str"
        yield from _array(
            f"embeddings[{name!r}]", a, "fiu", (e, n, None), f"epochs + 1 = {e}, {n}, dim"
        )
    yield from _array(
        "probabilities", f["probabilities"], "fiu", (e, n, c), f"epochs + 1 = {e}, {n}, {c} classes"
    )
    if f["head_weights"] is not None:
        yield from _array(
            "head_weights",
            f["head_weights"],
            "fiu",
            (e, c, None),
            f"epochs + 1 = {e}, {c} classes, dim",
        )
    if f["head_bias"] is not None:
        yield from _array(
            "head_bias", f["head_bias"], "fiu", (e, c), f"epochs + 1 = {e}, {c} classes"
        )
    yield from _history_problems(f["history"], e)
    yield from _meta_problems(f["meta"], e, list(emb))


_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "seconds")


def _history_problems(history: Any, e: int) -> Iterator[Problem]:
    if not isinstance(history, list):
        yield "history", f"history should be a list of {e} dicts, got {_described(history)}"
    if history and len(history) != e:  # an empty one is a history not recorded
        yield "history", f"a history of {len(history)} epochs for {e} snapshots (epochs 0..{e - 1})"
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            yield "history", f"history[{i}] is {_described(row)}, not a dict"
        if "epoch" in row and not (is_whole(row["epoch"]) and row["epoch"] == i):
            yield "history", f"history[{i}]['epoch'] is {row['epoch']!r}, not {i}"
        for key in _METRICS:
            value = row.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                yield "history", f"history[{i}][{key!r}] is {value!r}, not a number"


def _meta_problems(meta: Any, e: int, layers: list) -> Iterator[Problem]:
    if not isinstance(meta, dict):
        yield "meta", f"meta should be a dict, got {_described(meta)}"
    epochs = meta.get("epochs")
    if epochs is not None and not (is_whole(epochs) and epochs == e - 1):
        yield (
            "meta",
            f"meta['epochs'] is {epochs!r}, but there are {e} snapshots (epochs 0..{e - 1})",
        )
    pen = meta.get("penultimate")
    if pen is not None and not (isinstance(pen, str) and pen in layers):
        yield (
            "meta",
            f"meta['penultimate'] is {pen!r}, not a captured layer "
            f"({', '.join(map(str, layers)) or 'none'})",
        )

"""``Snapshots``: the embeddings of the probe set at every epoch, and everything needed to read them.

It is the one object the exporters, metrics and plots consume. ``save``/``load`` round-trip
exactly: arrays go to an uncompressed ``.npz`` (raw float32 bytes), the rest to JSON.

    snaps.embeddings["embed"]   # float32 [epochs + 1, n_probe, dim]; [0] is before training
                                # (other dtypes are converted to float32 on construction)
    snaps.predictions           # int64   [epochs + 1, n_probe]
    snaps.labels                # int64   [n_probe]
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ._io import atomic_write, write_json
from .errors import ConfigError, LabkitError

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
        # float32 by contract, whatever the caller passed: what save, the Mantis CSV and
        # the projector write and read back is exactly what is held (float64 embeddings
        # would be written as float64 text and read back rounded).
        self.embeddings = {
            name: np.asarray(emb, dtype=np.float32) for name, emb in self.embeddings.items()
        }
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        for name in ("head_weights", "head_bias"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        n = len(self.labels)
        for name, emb in self.embeddings.items():
            if emb.ndim != 3 or emb.shape[1] != n:
                raise ValueError(
                    f"embeddings[{name!r}] should be [epochs + 1, {n}, dim], got {emb.shape}"
                )
        if len(self.titles) != n:
            raise ValueError(f"{len(self.titles)} titles for {n} probe samples")

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
            raise KeyError(
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
        """Write ``arrays.npz`` and ``meta.json`` into ``folder`` (each atomically)."""
        folder = Path(folder)
        arrays = {f"emb/{name}": np.ascontiguousarray(a) for name, a in self.embeddings.items()}
        arrays.update(
            labels=self.labels, predictions=self.predictions, probabilities=self.probabilities
        )
        if self.probe_index is not None:
            arrays["probe_index"] = self.probe_index
        for key in _OPTIONAL_ARRAYS:
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        # The same id in both files: a folder whose two files come from two saves (one of
        # them interrupted) is caught when it is loaded.
        save_id = uuid.uuid4().hex
        arrays["save_id"] = np.array(save_id)
        with atomic_write(folder / _ARRAYS, "wb") as f:
            np.savez(f, **arrays)
        write_json(
            folder / _META,
            {
                "format_version": FORMAT_VERSION,
                "save_id": save_id,
                "layers": self.layer_names,
                "titles": self.titles,
                "class_names": self.class_names,
                "history": self.history,
                "snippets": self.snippets,
                "meta": self.meta,
            },
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Snapshots:
        """Read what :meth:`save` wrote (a run folder's ``snapshots/`` or the run folder)."""
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
        return cls(
            embeddings={name: arrays[f"emb/{name}"] for name in meta["layers"]},
            labels=arrays["labels"],
            predictions=arrays["predictions"],
            probabilities=arrays["probabilities"],
            titles=meta["titles"],
            class_names=meta["class_names"],
            history=meta["history"],
            probe_index=arrays.get("probe_index"),
            head_weights=arrays.get("head_weights"),
            head_bias=arrays.get("head_bias"),
            thumbnails=arrays.get("thumbnails"),
            flipped=arrays.get("flipped"),
            snippets=meta.get("snippets"),
            meta=meta.get("meta", {}),
        )

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


def _read_meta(folder: Path) -> dict:
    """``meta.json`` of a save, checked to be one this labkit can read."""
    import json

    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list):
            raise ValueError("not the metadata of a save")
    except (OSError, ValueError) as err:
        raise SnapshotsError(f"{folder / _META} is damaged ({err}){_AGAIN}") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
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
    epochs = len(arrays["predictions"])
    if len(meta.get("history", [])) != epochs:
        raise SnapshotsError(
            f"{folder / _META} has a history of {len(meta.get('history', []))} epochs for "
            f"{epochs} snapshots (epochs 0..{epochs - 1}){_AGAIN}"
        )
    return arrays

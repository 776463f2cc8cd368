"""Data sets as whole tensors, plus the fixed probe set whose embeddings we watch.

Every loader returns a :class:`LabData`. The train and test splits are kept whole in memory
(MNIST is 190 MB as float32, CIFAR-10 600 MB) and normalised once, so the training loop can
batch by indexing a tensor instead of running per-item transforms in Python.

The *probe set* is a fixed, stratified subset of the test split. It is what gets embedded at
every epoch, so its order and its titles never change during a run.

>>> data = load_dataset("digits")            # offline: ships with scikit-learn
>>> data.x_train.shape, data.n_classes, len(data.probe_index)
(torch.Size([1347, 1, 8, 8]), 10, 450)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .errors import LabkitError
from .paths import home

__all__ = ["DATASETS", "IMAGE_DATASETS", "DataError", "LabData", "load_dataset",
           "probe_indices"]

DEFAULT_PROBE_SIZE = 2000

# The data sets whose samples are images (what the 'cnn' model needs).
IMAGE_DATASETS = frozenset({"digits", "mnist", "fashion-mnist", "cifar10"})


class DataError(LabkitError, ValueError):
    """A data set could not be loaded; the message says what to do about it."""


@dataclass
class LabData:
    """A data set held in memory, ready for training and capture.

    ``x_*`` are float32 tensors (images as ``[N, C, H, W]``, vectors as ``[N, D]``), ``y_*``
    int64 class indices. ``probe_index`` indexes the ``probe_split`` (the test split by
    default, or the training split); ``titles``, ``thumbnails``
    (uint8 ``[n, H, W]`` or ``[n, H, W, 3]``), ``snippets`` and ``flipped`` (the probe labels
    that ``label_noise`` changed) describe the probe samples in that order.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    probe_index: torch.Tensor
    titles: list[str]
    kind: str = "image"  # "image", "vector" or "text"
    thumbnails: np.ndarray | None = None
    snippets: list[str] | None = None
    info: dict = field(default_factory=dict)
    flipped: np.ndarray | None = None  # bool [n_probe]: labels changed by label_noise
    probe_split: str = "test"  # the split probe_index indexes: "test" or "train"

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def x_probe(self) -> torch.Tensor:
        x = self.x_train if self.probe_split == "train" else self.x_test
        return x[self.probe_index.to(x.device)]

    @property
    def y_probe(self) -> torch.Tensor:
        y = self.y_train if self.probe_split == "train" else self.y_test
        return y[self.probe_index.to(y.device)]

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> LabData:
        """The same data with its tensors on ``device`` (no copy if already there)."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def __repr__(self) -> str:
        return (
            f"LabData({self.name!r}: train {tuple(self.x_train.shape)}, "
            f"test {tuple(self.x_test.shape)}, {self.n_classes} classes, "
            f"probe {len(self.probe_index)}, on {self.device})"
        )


def probe_indices(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """A stratified, sorted sample of ``size`` indices (all of them if ``size`` >= len)."""
    labels = np.asarray(labels)
    n = len(labels)
    if size <= 0:
        raise ValueError(f"probe size must be positive, got {size}")
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment: class shares as close to the split's as integers allow.
    exact = counts * size / n
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[i] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


# ---------------------------------------------------------------------------------------
# Loaders. Each returns raw arrays; `load_dataset` normalises them and builds the probe.
# ---------------------------------------------------------------------------------------


@dataclass
class _Raw:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    kind: str
    images_uint8: np.ndarray | None = None  # test images as uint8, for thumbnails
    titles: list[str] | None = None  # one per test sample, if the set has real titles
    snippets: list[str] | None = None
    info: dict = field(default_factory=dict)


def _stratified_split(x, y, test_size, seed, class_names=None):
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:  # say which, before scikit-learn's "least populated class" message
        name = (lambda c: class_names[c]) if class_names is not None else (lambda c: c)
        few = ", ".join(f"{name(c)!r} ({k})" for c, k in zip(classes, counts, strict=True)
                        if k < 2)
        raise DataError(f"the classes {few} have fewer than 2 samples; a stratified train/test "
                        f"split needs at least 2 of each: add samples or leave them out")
    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)


def _digits(seed: int, **_) -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[:, None]  # [1797, 1, 8, 8] in [0, 1]
    x_tr, x_te, y_tr, y_te = _stratified_split(images, d.target, 0.25, seed)
    return _Raw(
        x_tr, y_tr, x_te, y_te,
        class_names=[str(c) for c in d.target_names],
        kind="image",
        images_uint8=np.round(x_te[:, 0] * 255).astype(np.uint8),
        info={"source": "sklearn.datasets.load_digits"},
    )


def _blobs(seed: int, n_samples: int = 3000, n_features: int = 32, centers: int = 5,
           cluster_std: float = 6.0, **_) -> _Raw:
    from sklearn.datasets import make_blobs

    # Wide clusters on purpose: an easy but not trivial task, so epochs visibly differ.
    x, y = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers,
                      cluster_std=cluster_std, random_state=seed)
    x_tr, x_te, y_tr, y_te = _stratified_split(x.astype(np.float32), y, 0.3, seed)
    return _Raw(x_tr, y_tr, x_te, y_te, [f"blob {i}" for i in range(centers)], kind="vector",
                info={"source": "sklearn.datasets.make_blobs"})


def _offline_message(what: str, folder: Path, missing: list[str], reason: str) -> str:
    files = ", ".join(missing)
    return (
        f"{what} is not in {folder} and could not be downloaded ({reason}).\n"
        f"  Missing: {files}\n"
        f"  Fix: connect to the internet and run again, or copy those files into {folder} "
        f"(choose the parent folder with --data-dir / data_dir=...),\n"
        f"  or use the offline data set that ships with scikit-learn: --dataset digits "
        f"(load_dataset('digits'))."
    )


def _short(err: object) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."


_IDX_DTYPES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}  # type code -> bytes


def _check_idx(path: Path) -> None:
    """Raise :class:`DataError` naming ``path`` unless it is a whole IDX file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES:
                raise DataError("it does not start with an IDX header")
            dims = np.frombuffer(f.read(4 * head[3]), ">u4")
        if len(dims) != head[3]:
            raise DataError("its header is cut short")
        expected = 4 + 4 * head[3] + int(np.prod(dims, dtype=np.int64)) * _IDX_DTYPES[head[2]]
        size = path.stat().st_size
        if size != expected:
            raise DataError(f"it holds {size} bytes where its header promises {expected}")
    except (DataError, OSError) as err:
        raise DataError(f"{path} is not a usable MNIST file ({err}); delete it to download "
                        f"again, or put a good copy there") from None


def _torchvision_mnist(variant: str):
    def load(data_dir: Path, download: bool, **_) -> _Raw:
        from torchvision import datasets

        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[variant]
        raw = Path(data_dir) / cls.__name__ / "raw"
        needed = [Path(url).stem for url, _md5 in cls.resources]  # uncompressed IDX names
        missing = [f for f in needed if not (raw / f).exists()]
        if missing and not download:
            raise DataError(_offline_message(cls.__name__, raw, missing, "download=False"))
        for name in needed:  # damaged files get their own message, not "missing"
            if name not in missing:
                _check_idx(raw / name)
        try:
            train = cls(str(data_dir), train=True, download=bool(missing))
            test = cls(str(data_dir), train=False, download=False)
        except Exception as err:  # torchvision raises RuntimeError/URLError/OSError offline
            missing = [f for f in needed if not (raw / f).exists()] or needed
            raise DataError(_offline_message(cls.__name__, raw, missing, _short(err))) from None
        names = [str(i) for i in range(10)] if variant == "mnist" else list(train.classes)
        x_tr = train.data.numpy().astype(np.float32)[:, None] / 255.0
        x_te = test.data.numpy().astype(np.float32)[:, None] / 255.0
        return _Raw(x_tr, train.targets.numpy(), x_te, test.targets.numpy(), names,
                    kind="image", images_uint8=test.data.numpy(),
                    info={"source": f"torchvision.datasets.{cls.__name__}"})

    return load


CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            # These are the data set's own pickles, which the user put there or torchvision
            # fetched and checksummed.
            return pickle.load(f, encoding="latin1")
    except Exception as err:  # truncated or garbage: UnpicklingError, EOFError, ValueError...
        raise DataError(f"{path} is damaged ({type(err).__name__}: {_short(err)}); delete it "
                        f"to download again, or put a good copy there") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise DataError(f"{path} is not a CIFAR-10 batch (expected keys 'data' and 'labels', "
                        f"found {sorted(batch) if isinstance(batch, dict) else type(batch)}); "
                        f"delete it to download again") from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: expected data of shape [N, 3072] and N labels, "
                        f"got {data.shape} and {len(labels)}; delete it to download again")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10(data_dir: Path, download: bool, **_) -> _Raw:
    # A local copy is read directly, with no checksum: the python pickles are the format
    # torchvision unpacks to, so a copy from anywhere (or one a test writes) just works.
    folder = Path(data_dir) / CIFAR_FOLDER
    missing = [f for f in _CIFAR_FILES if not (folder / f).exists()]
    if missing:
        if not download:
            raise DataError(_offline_message("CIFAR-10", folder, missing, "download=False"))
        try:
            from torchvision import datasets

            datasets.CIFAR10(str(data_dir), train=True, download=True)
        except Exception as err:
            reason = f"{datasets.CIFAR10.url}: {_short(err)}"
            raise DataError(_offline_message("CIFAR-10", folder, missing, reason)) from None
    parts = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    meta = _unpickle(folder / "batches.meta")
    if not isinstance(meta, dict) or "label_names" not in meta:
        raise DataError(f"{folder / 'batches.meta'} has no 'label_names'; delete it to "
                        f"download again")
    names = list(meta["label_names"])
    return _Raw(x_tr.astype(np.float32) / 255.0, y_tr, x_te.astype(np.float32) / 255.0, y_te,
                names, kind="image", images_uint8=x_te.transpose(0, 2, 3, 1).copy(),
                info={"source": str(folder)})


DATASETS: dict[str, Callable[..., _Raw]] = {
    "digits": _digits,
    "blobs": _blobs,
    "mnist": _torchvision_mnist("mnist"),
    "fashion-mnist": _torchvision_mnist("fashion-mnist"),
    "cifar10": _cifar10,
}


def keep_classes(raw: _Raw, classes: list[int | str], name: str) -> _Raw:
    """``raw`` with only ``classes`` (indices or names), relabelled 0..k-1 in the data set's
    order; test titles keep naming the original test sample."""
    known = list(raw.class_names)
    keep = []
    for c in classes:
        if isinstance(c, str) and c in known:
            keep.append(known.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) \
                and 0 <= c < len(known):
            keep.append(int(c))
        else:
            raise DataError(f"{name} has no class {c!r}; its classes are 0..{len(known) - 1}: "
                            f"{', '.join(known)}")
    keep = sorted(set(keep))
    if len(keep) < 2:
        raise DataError(f"keep at least 2 classes of {name} to classify, got {classes!r}")
    new = np.full(len(known), -1)
    new[keep] = np.arange(len(keep))
    tr, te = np.isin(raw.y_train, keep), np.isin(raw.y_test, keep)
    te_index = np.flatnonzero(te)
    titles = raw.titles or [f"test #{i}" for i in range(len(raw.y_test))]
    return replace(
        raw, x_train=raw.x_train[tr], y_train=new[raw.y_train[tr]], x_test=raw.x_test[te],
        y_test=new[raw.y_test[te]], class_names=[known[c] for c in keep],
        images_uint8=None if raw.images_uint8 is None else raw.images_uint8[te],
        titles=[titles[i] for i in te_index],
        snippets=None if raw.snippets is None else [raw.snippets[i] for i in te_index],
        info={**raw.info, "classes": [known[c] for c in keep]})


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 thumbnails (``[n, H, W]`` or ``[n, H, W, 3]``) of images in [0, 1], ``[n, C, H, W]``."""
    x = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1).copy()


def flip_labels(raw: _Raw, share: float, seed: int) -> tuple[_Raw, dict[str, np.ndarray]]:
    """``raw`` with ``round(share * n)`` labels of each split moved to another class, chosen
    uniformly from ``seed``; and, per split, the mask of the labels that were changed."""
    rng = np.random.default_rng([seed, 0x6C6E])  # its own stream: the split stays as it is
    c = len(raw.class_names)

    def flip(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.array(y, copy=True)
        which = rng.choice(len(y), size=round(share * len(y)), replace=False)
        y[which] = (y[which] + rng.integers(1, c, size=len(which))) % c  # never its own
        mask = np.zeros(len(y), bool)
        mask[which] = True
        return y, mask

    y_train, in_train = flip(raw.y_train)
    y_test, in_test = flip(raw.y_test)
    return replace(raw, y_train=y_train, y_test=y_test), {"train": in_train, "test": in_test}


def register_dataset(name: str, loader: Callable[..., _Raw]) -> None:
    """Make ``load_dataset(name)`` use ``loader`` (used by the text track)."""
    DATASETS[name] = loader


def load_dataset(
    name: str = "digits",
    data_dir: str | Path | None = None,
    probe_size: int | None = None,
    seed: int = 0,
    download: bool = True,
    device: str | torch.device = "cpu",
    classes: list[int | str] | None = None,
    label_noise: float = 0.0,
    probe_split: str = "test",
    **options,
) -> LabData:
    """Load a data set whole, normalise it, and pick a stratified probe set of the test split.

    ``name`` is one of ``DATASETS``. Downloads (torchvision) go to ``data_dir`` and are reused;
    by default that is ``data/`` in :func:`labkit.home` (the checkout's root, ``LABKIT_HOME``,
    or ``/content`` on Colab), wherever the notebook runs. ``probe_size=None`` takes 2000
    points, or the whole test split when it is smaller; a larger number is shrunk to the
    split, with a warning. ``classes`` keeps only those classes (indices or names, e.g.
    ``[0, 1, 2]``), relabelled 0..k-1 in the data set's order: fewer classes, fewer points to
    read. ``label_noise=0.1`` gives 10 % of the training and of the test labels another
    class, drawn from ``seed`` (the same flips on every run); ``data.flipped`` marks the
    probe samples whose label was changed, so label-error methods can be scored.
    ``probe_split="train"`` draws the probe (still fixed and stratified) from the training
    split, to watch what the network does to the data it is fitted on. Extra
    ``options`` go to the loader (e.g. ``n_samples`` for ``blobs``).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    data_dir = Path(data_dir) if data_dir is not None else home("data")
    raw = DATASETS[key](data_dir=data_dir, download=download, seed=seed, **options)
    if classes is not None:
        raw = keep_classes(raw, classes, key)
    if probe_split not in ("test", "train"):
        raise DataError(f"probe_split is 'test' or 'train', got {probe_split!r}")
    if not 0 <= label_noise < 1:
        raise DataError(f"label_noise is the share of labels to flip, from 0 to below 1; "
                        f"got {label_noise}")
    flipped = {"train": np.zeros(len(raw.y_train), bool),
               "test": np.zeros(len(raw.y_test), bool)}
    if label_noise:
        raw, flipped = flip_labels(raw, label_noise, seed)

    x_tr, x_te = raw.x_train.astype(np.float32), raw.x_test.astype(np.float32)
    if raw.kind == "image":
        # Per-channel statistics of the training split only, as the usual Normalize would use.
        axes = (0, 2, 3)
        mean = x_tr.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)
        std = x_tr.std(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32) + 1e-6
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
        norm = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    elif raw.kind == "vector":
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
        norm = {"standardised": True}
    else:  # text features arrive already scaled (TF-IDF rows have unit norm)
        norm = {}

    y_split = raw.y_train if probe_split == "train" else raw.y_test
    if probe_size is None:  # the default: 2000, or the whole split when it is smaller
        probe_size = min(DEFAULT_PROBE_SIZE, len(y_split))
    elif probe_size > len(y_split):
        import warnings

        warnings.warn(f"probe size {probe_size} is more than the {len(y_split)} {probe_split} "
                      f"samples of {key}: the probe set is all {len(y_split)} of them",
                      stacklevel=2)
    probe = probe_indices(y_split, probe_size, seed)
    if probe_split == "train":  # titles, thumbnails and snippets describe test samples only
        titles = [f"train #{i}" for i in probe]
        thumbs = _thumbnails(raw.x_train[probe]) if raw.images_uint8 is not None else None
        snippets = None
    else:
        titles = [raw.titles[i] for i in probe] if raw.titles else [f"test #{i}" for i in probe]
        thumbs = raw.images_uint8[probe] if raw.images_uint8 is not None else None
        snippets = [raw.snippets[i] for i in probe] if raw.snippets else None
    return LabData(
        name=key,
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr)).to(device),
        y_train=torch.as_tensor(raw.y_train, dtype=torch.int64).to(device),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te)).to(device),
        y_test=torch.as_tensor(raw.y_test, dtype=torch.int64).to(device),
        class_names=list(raw.class_names),
        probe_index=torch.as_tensor(probe, dtype=torch.int64),
        titles=titles,
        kind=raw.kind,
        thumbnails=thumbs,
        snippets=snippets,
        info={**raw.info, "normalisation": norm, "seed": seed,
              **({"label_noise": label_noise} if label_noise else {})},
        flipped=flipped[probe_split][probe] if label_noise else None,
        probe_split=probe_split,
    )

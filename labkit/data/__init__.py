"""Data sets as whole tensors, plus the fixed probe set whose embeddings we watch.

:func:`load_dataset` returns a :class:`LabData`; the loader behind each data set returns the
raw arrays (:class:`Raw`) it normalises. The train and test splits are kept whole in memory
(MNIST is 190 MB as float32, CIFAR-10 600 MB) and normalised once, so the training loop can
batch by indexing a tensor instead of running per-item transforms in Python.

The *probe set* is a fixed, stratified subset of the test split (of the training split with
``probe_split="train"``). It is what gets embedded at every epoch, so its order and its titles
never change during a run.

An *unlabelled pool* (``pool=0.3``) is a stratified share of the training split held out of
training, as the unlabelled data a team has stored: ``data.x_pool`` is there to embed and
search, and :class:`labkit.Annotator` gives, within a budget, the true labels of the items one
chooses to label.

>>> data = load_dataset("digits")            # offline: ships with scikit-learn
>>> data.x_train.shape, data.n_classes, len(data.probe_index)
(torch.Size([1347, 1, 8, 8]), 10, 450)
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..checks import check_seed, is_whole
from ..paths import home
from .raw import DataError, Raw

__all__ = [
    "DATASETS",
    "IMAGE_DATASETS",
    "DataError",
    "LabData",
    "Raw",
    "dataset_options",
    "flip_labels",
    "keep_classes",
    "load_dataset",
    "probe_indices",
    "register_dataset",
]

# Every data set's loader, as "module:function" in this package, imported when first used:
# `import labkit` reads no data-set module (no torchvision, no HTTP client) until a data set
# is loaded. A loader takes (data_dir, download, seed) and its own keyword-only options, and
# returns a Raw.
DATASETS: dict[str, str] = {
    "digits": "images:digits",
    "blobs": "synthetic:blobs",
    "mnist": "images:mnist",
    "fashion-mnist": "images:fashion_mnist",
    "cifar10": "images:cifar10",
    "wikipedia": "wikipedia:load",
    "bbc": "bbc:load",
}
_REGISTERED: dict[str, Callable[..., Raw]] = {}  # register_dataset's, for users' own sets

DEFAULT_PROBE_SIZE = 2000

# The data sets whose samples are images (what the 'cnn' model needs).
IMAGE_DATASETS = frozenset({"digits", "mnist", "fashion-mnist", "cifar10"})


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
    # Whether a left-right mirror image is as valid a sample (photographs, not digits or
    # text): train() then mirrors a random half of each training batch.
    mirror: bool = False
    # The unlabelled pool (``pool=``): its inputs, normalised as the test split is, and
    # thumbnails. Its true labels are kept out of sight (no public attribute, not in the
    # repr), so that nobody reads them by accident: an Annotator hands out the ones asked for.
    x_pool: torch.Tensor | None = None
    pool_thumbnails: np.ndarray | None = None
    _pool_labels: np.ndarray | None = field(default=None, repr=False)

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

    @property
    def n_pool(self) -> int:
        """How many items the unlabelled pool holds (0 without one)."""
        return 0 if self.x_pool is None else len(self.x_pool)

    def _pool_index(self, indices) -> np.ndarray:
        """``indices`` as distinct integer positions in the pool, or one sentence why not."""
        if self.x_pool is None:
            raise DataError(
                "this data has no unlabelled pool; load it with load_dataset(..., pool=0.3)"
            )
        idx = np.asarray(indices).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise DataError(
                f"give integer positions in the pool (0 to {self.n_pool - 1}), not {idx.dtype}"
            )
        idx = idx.astype(np.int64)
        bad = idx[(idx < 0) | (idx >= self.n_pool)]
        if bad.size:
            raise DataError(
                f"the pool holds {self.n_pool} items, numbered 0 to {self.n_pool - 1}; "
                f"{bad[0]} is not one of them"
            )
        if len(np.unique(idx)) != len(idx):
            raise DataError("each pool item can be asked for once: the positions repeat")
        return idx

    def pool_truth(self, indices) -> np.ndarray:
        """The true labels (int64 class indices) of the pool items at ``indices``: the answer
        key, to score a choice with. To choose which items to label, ask an
        ``Annotator(data, budget=...)``: it counts what it labels."""
        return self._pool_labels[self._pool_index(indices)].copy()

    def add_from_pool(self, indices) -> LabData:
        """The same data with the pool items at ``indices`` labelled (their true labels) and
        moved to the end of the training split; the pool keeps the others, in order. The test
        split, the probe set and the normalisation stay as they are."""
        idx = self._pool_index(indices)
        keep = np.setdiff1d(np.arange(self.n_pool), idx)
        dev = self.x_train.device
        labels = torch.as_tensor(self._pool_labels[idx], dtype=torch.int64, device=dev)
        return replace(
            self,
            x_train=torch.cat([self.x_train, self.x_pool[idx].to(dev)]),
            y_train=torch.cat([self.y_train, labels]),
            x_pool=self.x_pool[keep],
            pool_thumbnails=None if self.pool_thumbnails is None else self.pool_thumbnails[keep],
            _pool_labels=self._pool_labels[keep],
            info={**self.info, "added_from_pool": self.info.get("added_from_pool", 0) + len(idx)},
        )

    def to(self, device: str | torch.device) -> LabData:
        """The same data with its tensors on ``device`` (no copy if already there)."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            x_pool=None if self.x_pool is None else self.x_pool.to(device),
        )

    def __repr__(self) -> str:
        pool = f", pool {self.n_pool} (unlabelled)" if self.x_pool is not None else ""
        return (
            f"LabData({self.name!r}: train {tuple(self.x_train.shape)}, "
            f"test {tuple(self.x_test.shape)}, {self.n_classes} classes, "
            f"probe {len(self.probe_index)}{pool}, on {self.device})"
        )


def probe_indices(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """A stratified, sorted sample of ``size`` indices (all of them if ``size`` >= len)."""
    labels = np.asarray(labels)
    n = len(labels)
    if size <= 0:
        raise ValueError(f"probe size must be positive, got {size}")
    if size >= n:
        return np.arange(n)
    return _stratified(labels, size, np.random.default_rng(seed))


def _stratified(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` sorted indices drawn class by class from ``rng``, in the classes' shares."""
    n = len(labels)
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


def keep_classes(raw: Raw, classes: list[int | str], name: str) -> Raw:
    """``raw`` with only ``classes`` (indices or names), relabelled 0..k-1 in the data set's
    order; test titles keep naming the original test sample."""
    known = list(raw.class_names)
    keep = []
    for c in classes:
        if isinstance(c, str) and c in known:
            keep.append(known.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(known):
            keep.append(int(c))
        else:
            raise DataError(
                f"{name} has no class {c!r}; its classes are 0..{len(known) - 1}: "
                f"{', '.join(known)}"
            )
    keep = sorted(set(keep))
    if len(keep) < 2:
        raise DataError(f"keep at least 2 classes of {name} to classify, got {classes!r}")
    new = np.full(len(known), -1)
    new[keep] = np.arange(len(keep))
    tr, te = np.isin(raw.y_train, keep), np.isin(raw.y_test, keep)
    te_index = np.flatnonzero(te)
    titles = raw.titles or [f"test #{i}" for i in range(len(raw.y_test))]
    return replace(
        raw,
        x_train=raw.x_train[tr],
        y_train=new[raw.y_train[tr]],
        x_test=raw.x_test[te],
        y_test=new[raw.y_test[te]],
        class_names=[known[c] for c in keep],
        images_uint8=None if raw.images_uint8 is None else raw.images_uint8[te],
        titles=[titles[i] for i in te_index],
        snippets=None if raw.snippets is None else [raw.snippets[i] for i in te_index],
        info={**raw.info, "classes": [known[c] for c in keep]},
    )


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 thumbnails (``[n, H, W]`` or ``[n, H, W, 3]``) of images in [0, 1],
    ``[n, C, H, W]``."""
    x = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1).copy()


def flip_labels(raw: Raw, share: float, seed: int) -> tuple[Raw, dict[str, np.ndarray]]:
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


def hold_out_pool(raw: Raw, share: float, seed: int, true_y: np.ndarray) -> tuple[Raw, np.ndarray]:
    """``raw`` without a stratified ``share`` of its training split, and the indices (into
    that split) of the samples held out as the pool; stratified by the true labels
    ``true_y``, drawn from ``seed`` on a stream of its own (probe and flips stay as they are)."""
    size = round(share * len(raw.y_train))
    if size == 0:
        raise DataError(
            f"pool={share} holds out none of the {len(raw.y_train)} training samples; "
            f"ask for a larger share"
        )
    pool = _stratified(true_y, size, np.random.default_rng([seed, 0x706F6F6C]))
    rest = np.setdiff1d(np.arange(len(raw.y_train)), pool)
    return replace(raw, x_train=raw.x_train[rest], y_train=raw.y_train[rest]), pool


def register_dataset(name: str, loader: Callable[..., Raw]) -> None:
    """Make ``load_dataset(name)`` use ``loader(data_dir, download, seed, **options)``, which
    returns a :class:`Raw` (for a course's own data set)."""
    _REGISTERED[name] = loader


def _loader(key: str) -> Callable[..., Raw]:
    if key in _REGISTERED:
        return _REGISTERED[key]
    module, function = DATASETS[key].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


_COMMON = (
    "data_dir",
    "probe_size",
    "seed",
    "download",
    "device",
    "classes",
    "label_noise",
    "probe_split",
    "normalise",
    "pool",
)


def _key(name: str) -> str:
    """The data set's name as :data:`DATASETS` spells it; an unknown one is one sentence."""
    key = name.lower().replace("_", "-")
    if key not in DATASETS and key not in _REGISTERED:
        known = [*DATASETS, *_REGISTERED]
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(known)}")
    return key


def dataset_options(name: str) -> list[str] | None:
    """The keyword arguments ``load_dataset(name, ...)`` takes: the common ones and the
    loader's own (None when the loader takes any)."""
    key = _key(name)
    params = inspect.signature(_loader(key)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [*_COMMON, *(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY)]


def _check_options(key: str, loader: Callable[..., Raw], options: dict) -> None:
    """Refuse an option the loader does not take, naming the ones it does (a typo such as
    ``n_sample=`` would otherwise be ignored without a word)."""
    params = inspect.signature(loader).parameters
    own = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for name in options:
        if name not in own and not takes_any:
            close = difflib.get_close_matches(name, own + list(_COMMON), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            theirs = f"its own options are {', '.join(own)}" if own else "it has no options"
            raise DataError(
                f"load_dataset({key!r}) takes no option {name!r}{hint}; "
                f"{theirs}, besides {', '.join(_COMMON)}"
            )


def load_dataset(
    name: str = "digits",
    data_dir: str | Path | None = None,
    probe_size: int | str | None = None,
    seed: int = 0,
    *,
    download: bool = True,
    device: str | torch.device = "cpu",
    classes: list[int | str] | None = None,
    label_noise: float = 0.0,
    probe_split: str = "test",
    normalise: bool = True,
    pool: float = 0.0,
    **options,
) -> LabData:
    """Load a data set whole, normalise it, and pick a stratified probe set of the test split.

    ``name`` is one of ``DATASETS``. Downloads (torchvision) go to ``data_dir`` and are reused;
    by default that is ``data/`` in :func:`labkit.home` (the checkout's root, ``LABKIT_HOME``,
    or ``/content`` on Colab), wherever the notebook runs. ``probe_size=None`` takes 2000
    points, or the whole test split when it is smaller, and ``probe_size="all"`` the whole
    split (with ``probe_split="train"``, every training item: to rank its labels); a larger
    number is shrunk to the split, with a warning.
    ``classes`` keeps only those classes (indices or names, e.g. ``[0, 1, 2]``), relabelled
    0..k-1 in the data set's order: fewer classes, fewer points to read.
    ``label_noise=0.1`` gives 10 % of the training and of the test labels another
    class, drawn from ``seed`` (the same flips on every run); ``data.flipped`` marks the
    probe samples whose label was changed, so label-error methods can be scored; the probe
    is drawn on the true labels, so the same call without ``label_noise`` gives the same
    probe images with their true labels.
    ``probe_split="train"`` draws the probe (still fixed and stratified) from the training
    split, to watch what the network does to the data it is fitted on. ``pool=0.3`` holds
    out 30 % of the training split (stratified, from ``seed``) as an unlabelled pool:
    ``data.x_pool`` to embed and search, ``Annotator(data, budget=40).reveal(indices)`` for the
    true labels of the items you choose to label (label noise changes training labels, never
    these; ``data.pool_truth`` is the answer key, to score with), and
    ``data.add_from_pool(indices)`` to train with them. ``normalise=False`` keeps the inputs
    as the loader reads them (images in [0, 1], feature vectors unscaled), for a lab in
    which students standardise the data themselves; by default images are standardised per
    channel and feature vectors per feature, with the training split's statistics only.
    Extra ``options`` go to the loader (e.g. ``n_samples`` for ``blobs``).
    """
    key = _key(name)
    check_seed(seed, DataError)
    named = probe_size is None or probe_size == "all"
    if not named and (not is_whole(probe_size) or probe_size < 1):
        raise DataError(
            f"probe_size is a whole number of at least 1, 'all' (the whole split) or None, "
            f"got {probe_size!r}"
        )
    _check_shares(probe_split, label_noise, pool)
    loader = _loader(key)
    _check_options(key, loader, options)
    data_dir = Path(data_dir) if data_dir is not None else home("data")
    raw = loader(data_dir, download, seed, **options)
    if classes is not None:
        raw = keep_classes(raw, classes, key)
    true_y_train, true_y_test = np.asarray(raw.y_train), np.asarray(raw.y_test)
    flipped = {"train": np.zeros(len(raw.y_train), bool), "test": np.zeros(len(raw.y_test), bool)}
    if label_noise:  # flipped on the whole training split, pool or not: the same flips
        raw, flipped = flip_labels(raw, label_noise, seed)
    raw_pool = None
    if pool:
        x_all = raw.x_train
        raw, pool_index = hold_out_pool(raw, pool, seed, true_y_train)
        raw_pool = (x_all[pool_index].astype(np.float32), true_y_train[pool_index])

    x_tr, x_te, mean, std, norm = _standardise(raw, normalise)
    x_pool = pool_thumbs = pool_labels = None
    if raw_pool is not None:  # normalised as the test split: with the training statistics
        x_pool = torch.from_numpy(np.ascontiguousarray((raw_pool[0] - mean) / std)).to(device)
        pool_labels = raw_pool[1].astype(np.int64)
        pool_thumbs = _thumbnails(raw_pool[0]) if raw.images_uint8 is not None else None

    probe_size = _probe_size(
        probe_size, len(raw.y_train if probe_split == "train" else raw.y_test), probe_split, key
    )
    # Stratified on the true labels: the same probe with or without label noise, so a run
    # with noise and a clean load of the same data set describe the same images.
    probe = probe_indices(true_y_train if probe_split == "train" else true_y_test, probe_size, seed)
    titles, thumbs, snippets = _describe_probe(raw, probe, probe_split)
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
        mirror=raw.mirror,
        info={
            **raw.info,
            "normalisation": norm,
            "seed": seed,
            **({"label_noise": label_noise} if label_noise else {}),
            **({"pool": pool} if pool else {}),
        },
        flipped=flipped[probe_split][probe] if label_noise else None,
        probe_split=probe_split,
        x_pool=x_pool,
        pool_thumbnails=pool_thumbs,
        _pool_labels=pool_labels,
    )


def _check_shares(probe_split: str, label_noise: float, pool: float) -> None:
    if probe_split not in ("test", "train"):
        raise DataError(f"probe_split is 'test' or 'train', got {probe_split!r}")
    if not 0 <= label_noise < 1:
        raise DataError(
            f"label_noise is the share of labels to flip, from 0 to below 1; got {label_noise}"
        )
    if not 0 <= pool < 1:
        raise DataError(
            f"pool is the share of the training split to hold out unlabelled, from 0 to "
            f"below 1; got {pool}"
        )
    if pool and probe_split == "train":
        raise DataError(
            "pool and probe_split='train' both take samples of the training split; "
            "use the pool with a test-split probe"
        )


def _standardise(raw: Raw, normalise: bool):
    """Both splits as float32, standardised with the training split's statistics only:
    ``(x_train, x_test, mean, std, what was done)``."""
    x_tr = raw.x_train.astype(np.float32, copy=False)
    x_te = raw.x_test.astype(np.float32, copy=False)
    if not normalise or raw.kind not in ("image", "vector"):
        # Kept as read; text features arrive already scaled (TF-IDF rows have unit norm).
        return x_tr, x_te, 0.0, 1.0, {}
    if raw.kind == "image":
        # Per-channel statistics, as the usual Normalize would use.
        mean, std = _channel_stats(x_tr)
        norm = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    else:
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
        norm = {"standardised": True}
    return _scaled(x_tr, mean, std), _scaled(x_te, mean, std), mean, std, norm


def _channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's mean and standard deviation over images and pixels, [1, C, 1, 1]
    float32, summed in float64. The squares are summed a chunk of images at a time: the
    whole split's float64 deviations would be twice its size again (0.4 GB for MNIST) and
    take longer to allocate than to compute."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        deviation = x[start : start + chunk] - mean
        squares += np.einsum("nchw,nchw->c", deviation, deviation)
    std = np.sqrt(squares / (x.size // x.shape[1])).reshape(mean.shape)
    return mean.astype(np.float32), std.astype(np.float32) + np.float32(1e-6)


def _scaled(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean) / std`` as one new array (the division in place: no second copy)."""
    out = x - mean
    out /= std
    return out


def _probe_size(probe_size: int | str | None, available: int, split: str, key: str) -> int:
    """The default 2000, or the whole split when it is smaller; ``"all"``, the whole split; a
    larger ask, with a warning."""
    if probe_size is None:
        return min(DEFAULT_PROBE_SIZE, available)
    if probe_size == "all":
        return available
    if probe_size > available:
        import warnings

        warnings.warn(
            f"probe size {probe_size} is more than the {available} {split} "
            f"samples of {key}: the probe set is all {available} of them",
            stacklevel=3,
        )
    return probe_size


def _describe_probe(raw: Raw, probe: np.ndarray, split: str):
    """The probe's titles, thumbnails and snippets (a training-split probe's are plain)."""
    if split == "train":  # titles, thumbnails and snippets describe test samples only
        titles = [f"train #{i}" for i in probe]
        thumbs = _thumbnails(raw.x_train[probe]) if raw.images_uint8 is not None else None
        return titles, thumbs, None
    titles = [raw.titles[i] for i in probe] if raw.titles else [f"test #{i}" for i in probe]
    thumbs = raw.images_uint8[probe] if raw.images_uint8 is not None else None
    snippets = [raw.snippets[i] for i in probe] if raw.snippets else None
    return titles, thumbs, snippets

"""Image data sets: scikit-learn's digits (offline), MNIST and Fashion-MNIST (IDX files),
CIFAR-10 (its python pickles). Local copies are read directly; torchvision only downloads
what is missing. Each loader returns a :class:`Raw`."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .raw import DataError, Raw, offline_message, short_error, stratified_split

__all__ = ["CIFAR_FOLDER", "cifar10", "digits", "fashion_mnist", "mnist"]


def digits(data_dir: Path, download: bool, seed: int) -> Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[:, None]  # [1797, 1, 8, 8] in [0, 1]
    x_tr, x_te, y_tr, y_te = stratified_split(images, d.target, 0.25, seed)
    return Raw(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=[str(c) for c in d.target_names],
        kind="image",
        images_uint8=np.round(x_te[:, 0] * 255).astype(np.uint8),
        info={"source": "sklearn.datasets.load_digits"},
    )


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
        raise DataError(
            f"{path} is not a usable MNIST file ({err}); delete it to download "
            f"again, or put a good copy there"
        ) from None


def _unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1], in one pass over the images (``astype`` and then
    ``/ 255`` makes a second full-size array: 0.2 GB more to write for MNIST)."""
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file :func:`_check_idx` has passed, as a uint8 array of its shape."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims.astype(np.int64))


# The four IDX files, under <data_dir>/<folder>/raw: the names and the layout torchvision's
# MNIST and FashionMNIST download to, so either tool reads what the other fetched.
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MNIST_VARIANTS = {  # name -> (folder and torchvision class, class names)
    "mnist": ("MNIST", [str(i) for i in range(10)]),
    "fashion-mnist": (
        "FashionMNIST",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
        + ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    ),
}


def _download_mnist(variant: str, data_dir: Path) -> None:
    """Fetch the IDX files with torchvision (checksummed, from its mirrors); only called
    when some are missing, because importing torchvision costs a second and a half."""
    from torchvision import datasets

    getattr(datasets, _MNIST_VARIANTS[variant][0])(str(data_dir), train=True, download=True)


def _mnist_like(variant: str):
    folder, names = _MNIST_VARIANTS[variant]

    def load(data_dir: Path, download: bool, seed: int) -> Raw:
        raw = Path(data_dir) / folder / "raw"
        missing = [f for f in _MNIST_FILES.values() if not (raw / f).exists()]
        if missing and not download:
            raise DataError(offline_message(folder, raw, missing, "download=False"))
        for name in _MNIST_FILES.values():  # damaged files get their own message
            if name not in missing:
                _check_idx(raw / name)
        if missing:
            try:
                _download_mnist(variant, Path(data_dir))
            except Exception as err:  # torchvision raises RuntimeError/URLError/OSError
                missing = [f for f in _MNIST_FILES.values() if not (raw / f).exists()] or missing
                raise DataError(offline_message(folder, raw, missing, short_error(err))) from None
            for name in missing:
                _check_idx(raw / name)
        # Read directly, as torchvision would once the files are there.
        arrays = {key: _read_idx(raw / name) for key, name in _MNIST_FILES.items()}
        return Raw(
            _unit(arrays["train_images"][:, None]),
            arrays["train_labels"].astype(np.int64),
            _unit(arrays["test_images"][:, None]),
            arrays["test_labels"].astype(np.int64),
            list(names),
            kind="image",
            images_uint8=arrays["test_images"].copy(),
            info={"source": str(raw)},
        )

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
        raise DataError(
            f"{path} is damaged ({type(err).__name__}: {short_error(err)}); delete it "
            f"to download again, or put a good copy there"
        ) from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise DataError(
            f"{path} is not a CIFAR-10 batch (expected keys 'data' and 'labels', "
            f"found {sorted(batch) if isinstance(batch, dict) else type(batch)}); "
            f"delete it to download again"
        ) from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"{path}: expected data of shape [N, 3072] and N labels, "
            f"got {data.shape} and {len(labels)}; delete it to download again"
        )
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(data_dir: Path, download: bool, seed: int) -> Raw:
    # A local copy is read directly, with no checksum: the python pickles are the format
    # torchvision unpacks to, so a copy from anywhere (or one a test writes) just works.
    folder = Path(data_dir) / CIFAR_FOLDER
    missing = [f for f in _CIFAR_FILES if not (folder / f).exists()]
    if missing:
        if not download:
            raise DataError(offline_message("CIFAR-10", folder, missing, "download=False"))
        try:
            from torchvision import datasets

            datasets.CIFAR10(str(data_dir), train=True, download=True)
        except Exception as err:
            reason = f"{datasets.CIFAR10.url}: {short_error(err)}"
            raise DataError(offline_message("CIFAR-10", folder, missing, reason)) from None
    parts = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    meta = _unpickle(folder / "batches.meta")
    if not isinstance(meta, dict) or "label_names" not in meta:
        raise DataError(
            f"{folder / 'batches.meta'} has no 'label_names'; delete it to download again"
        )
    names = list(meta["label_names"])
    return Raw(
        _unit(x_tr),
        y_tr,
        _unit(x_te),
        y_te,
        names,
        kind="image",
        images_uint8=x_te.transpose(0, 2, 3, 1).copy(),
        info={"source": str(folder)},
        mirror=True,  # a mirrored cat is a cat (not so a mirrored digit)
    )


mnist = _mnist_like("mnist")
fashion_mnist = _mnist_like("fashion-mnist")

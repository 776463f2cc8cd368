"""Image data sets: scikit-learn's digits (offline), MNIST and Fashion-MNIST (IDX files),
CIFAR-10 (its python pickles). Local copies are read directly; torchvision only downloads
what is missing. Each loader returns a :class:`Raw`."""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
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


# IDX element types (the third byte of the header): bytes per element, and what they are.
_IDX_TYPES = {
    0x08: (1, "unsigned bytes"),
    0x09: (1, "signed bytes"),
    0x0B: (2, "16-bit integers"),
    0x0C: (4, "32-bit integers"),
    0x0D: (4, "32-bit floats"),
    0x0E: (8, "64-bit floats"),
}
_IDX_UBYTE = 0x08  # what MNIST's pixels and labels are


def _check_idx(path: Path, ndim: int) -> None:
    """Raise :class:`DataError` naming ``path`` unless it is a whole IDX file of unsigned
    bytes with ``ndim`` dimensions (3 for images, 1 for labels)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_TYPES:
                raise DataError("it does not start with an IDX header")
            dims = np.frombuffer(f.read(4 * head[3]), ">u4")
        if len(dims) != head[3]:
            raise DataError("its header is cut short")
        width, kind = _IDX_TYPES[head[2]]
        expected = 4 + 4 * head[3] + int(np.prod(dims, dtype=np.int64)) * width
        size = path.stat().st_size
        if size != expected:
            raise DataError(f"it holds {size} bytes where its header promises {expected}")
        if head[2] != _IDX_UBYTE:
            raise DataError(
                f"its header says it holds {kind}, type 0x{head[2]:02X}, where MNIST "
                f"files hold unsigned bytes, type 0x08"
            )
        if head[3] != ndim:
            shape = "[images, rows, columns]" if ndim == 3 else "[labels]"
            what = "an MNIST image file" if ndim == 3 else "an MNIST label file"
            raise DataError(
                f"it has {head[3]} dimensions {list(map(int, dims))}, where {what} "
                f"has {ndim}: {shape}"
            )
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


def _idx_ndim(key: str) -> int:
    return 3 if key.endswith("images") else 1


def _check_mnist(arrays: dict[str, np.ndarray], raw: Path, n_classes: int) -> None:
    """Raise :class:`DataError` naming the file(s) unless the four arrays make a data set:
    one label per image, some images in each split, labels that are classes, and test
    images the size of the training images (each file on its own has passed
    :func:`_check_idx`)."""
    fix = "delete it to download again, or put a good copy there"
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_path = raw / _MNIST_FILES[f"{split}_images"]
        labels_path = raw / _MNIST_FILES[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels, where each image needs one label; delete both "
                f"to download again, or put good copies there"
            )
        if len(images) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
            rows, columns = images.shape[1:]
            raise DataError(
                f"{images_path} holds no pixels to learn from ({len(images)} images of "
                f"{rows}x{columns}); {fix}"
            )
        if labels.max() >= n_classes:
            at = int(np.argmax(labels >= n_classes))
            raise DataError(
                f"{labels_path} holds the label {labels[at]} (label #{at}), where the "
                f"classes are 0 to {n_classes - 1}; {fix}"
            )
    train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train != test:
        raise DataError(
            f"{raw / _MNIST_FILES['test_images']} holds images of {test[0]}x{test[1]} "
            f"pixels, where the training images in {raw / _MNIST_FILES['train_images']} "
            f"are {train[0]}x{train[1]}; delete the one that is wrong to download again, "
            f"or put a good copy there"
        )


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
        for key, name in _MNIST_FILES.items():  # damaged files get their own message
            if name not in missing:
                _check_idx(raw / name, _idx_ndim(key))
        if missing:
            try:
                _download_mnist(variant, Path(data_dir))
            except Exception as err:  # torchvision raises RuntimeError/URLError/OSError
                missing = [f for f in _MNIST_FILES.values() if not (raw / f).exists()] or missing
                raise DataError(offline_message(folder, raw, missing, short_error(err))) from None
            for key, name in _MNIST_FILES.items():
                if name in missing:
                    _check_idx(raw / name, _idx_ndim(key))
        # Read directly, as torchvision would once the files are there.
        arrays = {key: _read_idx(raw / name) for key, name in _MNIST_FILES.items()}
        _check_mnist(arrays, raw, len(names))
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
# The files of the official tarball and their md5 sums, as torchvision's CIFAR10 lists them
# (train_list, test_list, meta): written out, because importing torchvision costs a second
# and a half and it only downloads.
_CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_CIFAR_FILES = list(_CIFAR_MD5)


def _array_from_buffer(buffer, dtype, shape, order):
    """What numpy's ``_frombuffer`` does for a protocol-5 pickle: the array of the bytes."""
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


# Everything a CIFAR-10 pickle may name: numpy's array rebuilders, under the module names
# numpy 1 (the official files, pickled by Python 2) and numpy 2 write. Each builds arrays of
# bytes and numbers, and runs nothing else (an object array's items are themselves
# unpickled, by the same rules; such an array is then refused as not pixels).
_reconstruct = np.empty(0).__reduce__()[0]  # numpy's own, without importing numpy.core
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _array_from_buffer,
}


class _CodeInPickle(pickle.UnpicklingError):
    """A pickle asked for a function or class that a CIFAR-10 file never needs."""


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and nothing that can run
    code: ``find_class`` is the one way a pickle gets a function or class to call, and it
    gives only those in ``_CIFAR_GLOBALS``."""

    def find_class(self, module: str, name: str):
        found = _CIFAR_GLOBALS.get((module, name))
        if found is None:
            raise _CodeInPickle(f"{module}.{name}")
        return found


def _unpickle(path: Path, mismatched: list[str]):
    """The contents of one CIFAR-10 pickle, read with :class:`_ArraysOnly`; appends its
    name to ``mismatched`` when its md5 is not the published one.

    The restricted unpickler is the guarantee that nothing in the file runs, whatever the
    file is; so the md5 is not needed for safety, and a mismatch only warns. A copy from
    the official tarball always matches; a mismatch is a file someone made (a course's
    own subset, a test's small batches) or one that was damaged or planted: those are
    read as data, and the warning says to delete them if they are not one's own.
    """
    try:
        content = path.read_bytes()
        if hashlib.md5(content, usedforsecurity=False).hexdigest() != _CIFAR_MD5[path.name]:
            mismatched.append(path.name)
        return _ArraysOnly(io.BytesIO(content), encoding="latin1").load()
    except _CodeInPickle as err:
        raise DataError(
            f"{path} is not CIFAR-10 data: its pickle asks to run {err}, so it was not "
            f"read; delete it to download again, or put a copy from the official tarball "
            f"there"
        ) from None
    except Exception as err:  # truncated or garbage: UnpicklingError, EOFError, ValueError...
        raise DataError(
            f"{path} is damaged ({type(err).__name__}: {short_error(err)}); delete it "
            f"to download again, or put a good copy there"
        ) from None


def _read_cifar_batch(
    path: Path, n_classes: int, mismatched: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path, mismatched)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        found = (
            ", ".join(sorted(map(repr, batch))) or "none"
            if isinstance(batch, dict)
            else f"an object of type {type(batch).__name__}"
        )
        raise DataError(
            f"{path} is not a CIFAR-10 batch (expected keys 'data' and 'labels', "
            f"found {found}); delete it to download again"
        )
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),) or not len(data):
        raise DataError(
            f"{path}: expected data of shape [N, 3072] and N labels, N at least 1, "
            f"got {data.shape} and {labels.shape}; delete it to download again"
        )
    if data.dtype.kind not in "ui" or data.min() < 0 or data.max() > 255:
        raise DataError(
            f"{path}: expected pixels as whole numbers from 0 to 255, got "
            f"{_value_range(data)}; delete it to download again"
        )
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(
            f"{path}: expected labels from 0 to {n_classes - 1} (batches.meta names "
            f"{n_classes} classes), got {_value_range(labels)}; delete it to download again"
        )
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _value_range(a: np.ndarray) -> str:
    if a.dtype.kind not in "uifb":
        return f"an array of {a.dtype}"
    return f"{a.dtype} values from {a.min()} to {a.max()}"


def _read_cifar_names(path: Path, mismatched: list[str]) -> list[str]:
    meta = _unpickle(path, mismatched)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise DataError(
            f"{path} has no 'label_names' (a list of at least two class names); delete it "
            f"to download again"
        )
    return names


def cifar10(data_dir: Path, download: bool, seed: int) -> Raw:
    # A local copy is read directly, through the restricted unpickler (_unpickle says why
    # the md5 sums only warn): the python pickles are the format torchvision unpacks to.
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
    mismatched: list[str] = []
    names = _read_cifar_names(folder / "batches.meta", mismatched)
    parts = [
        _read_cifar_batch(folder / f"data_batch_{i}", len(names), mismatched) for i in range(1, 6)
    ]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / "test_batch", len(names), mismatched)
    if mismatched:
        warnings.warn(
            f"{folder} holds CIFAR-10 files whose md5 is not the published one "
            f"({', '.join(mismatched)}): they were read as data only, so nothing in them "
            f"ran; if you did not make them, delete them to download the real ones",
            stacklevel=3,
        )
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

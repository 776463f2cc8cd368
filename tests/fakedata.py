"""Data sets in their real on-disk formats, written by the tests (nothing is downloaded).

The images are scikit-learn's handwritten digits scaled up, so the files hold learnable
data, not noise.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def digit_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images ``[n, size, size]`` of real handwritten digits, and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(d.images), n)
    out = np.empty((n, size, size), np.uint8)
    for i, j in enumerate(pick):
        small = Image.fromarray((d.images[j] * 255 / 16).astype(np.uint8))
        out[i] = np.asarray(small.resize((size, size), Image.BILINEAR))
    return out, d.target[pick].astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an uncompressed IDX file (the MNIST format): magic, big-endian dims, bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist(
    root: Path, n_train: int = 600, n_test: int = 200, folder: str = "MNIST", seed: int = 0
) -> dict:
    """The four IDX files torchvision's MNIST reads from ``root/<folder>/raw``."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = digit_images(n_train, 28, seed)
    x_te, y_te = digit_images(n_test, 28, seed + 1)
    write_idx(raw / "train-images-idx3-ubyte", x_tr)
    write_idx(raw / "train-labels-idx1-ubyte", y_tr)
    write_idx(raw / "t10k-images-idx3-ubyte", x_te)
    write_idx(raw / "t10k-labels-idx1-ubyte", y_te)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def write_cifar10(root: Path, per_batch: int = 40, n_test: int = 100, seed: int = 0) -> dict:
    """``cifar-10-batches-py/`` as the python pickles (5 train batches, test, meta)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(n):
        labels = rng.integers(0, 10, n)
        # Class-dependent colour so the set is learnable: channel means shift with the label.
        img = rng.integers(0, 120, (n, 3, 32, 32)) + labels[:, None, None, None] * 12
        return np.clip(img, 0, 255).astype(np.uint8), labels.tolist()

    train_x, train_y = [], []
    for i in range(1, 6):
        x, y = batch(per_batch)
        train_x.append(x)
        train_y += y
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(
                {
                    "data": x.reshape(per_batch, -1),
                    "labels": y,
                    "batch_label": f"training batch {i} of 5",
                },
                f,
            )
    x, y = batch(n_test)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(
            {"data": x.reshape(n_test, -1), "labels": y, "batch_label": "testing batch 1 of 1"}, f
        )
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}, f
        )
    return {
        "x_train": np.concatenate(train_x),
        "y_train": np.array(train_y),
        "x_test": x,
        "y_test": np.array(y),
    }


def write_idx_of(path: Path, type_code: int, shape: tuple[int, ...], body: bytes) -> None:
    """An IDX file with any element type in its header (0x08 unsigned byte ... 0x0E double),
    for files that are well-formed IDX but not what MNIST holds."""
    header = struct.pack(">HBB", 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    path.write_bytes(header + body)


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote CIFAR-10's official batches: byte strings as
    Python 2 ``str`` (the BINSTRING opcodes), numpy's rebuilder as numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def write_python2_pickle(path: Path, obj) -> None:
    """``obj`` pickled the way the official CIFAR-10 files are (give it ``bytes`` keys and
    strings, as Python 2's ``str``)."""
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)

"""What every data-set loader returns, and the helpers loaders share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LabkitError

__all__ = ["DataError", "Raw", "offline_message", "short_error", "stratified_split"]


class DataError(LabkitError, ValueError):
    """A data set could not be loaded; the message says what to do about it."""


@dataclass
class Raw:
    """A data set as numpy arrays, before normalisation and the probe set."""

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
    mirror: bool = False  # a left-right mirror image is as valid a sample (photographs)


def stratified_split(x, y, test_size, seed, class_names=None):
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:  # say which, before scikit-learn's "least populated class" message
        name = (lambda c: class_names[c]) if class_names is not None else (lambda c: c)
        few = ", ".join(f"{name(c)!r} ({k})" for c, k in zip(classes, counts, strict=True) if k < 2)
        raise DataError(
            f"the classes {few} have fewer than 2 samples; a stratified train/test "
            f"split needs at least 2 of each: add samples or leave them out"
        )
    try:
        return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as err:  # too few samples for test_size, or a split smaller than the classes
        raise DataError(
            f"{len(y)} samples in {len(classes)} classes cannot be split with "
            f"test_size={test_size} ({short_error(err)}); choose a test_size that leaves "
            f"each split at least one sample of every class"
        ) from None


def offline_message(what: str, folder: Path, missing: list[str], reason: str) -> str:
    files = ", ".join(missing)
    return (
        f"{what} is not in {folder} and could not be downloaded ({reason}).\n"
        f"  Missing: {files}\n"
        f"  Fix: connect to the internet and run again, or copy those files into {folder} "
        f"(choose the parent folder with --data-dir / data_dir=...),\n"
        f"  or use the offline data set that ships with scikit-learn: --dataset digits "
        f"(load_dataset('digits'))."
    )


def short_error(err: object) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."

"""The rules for the numbers users give the kit, declared once: what counts as a whole
number (numpy's too, never a bool), and the range of a seed."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SEED_MAX", "check_seed", "is_whole"]

# numpy's and scikit-learn's generators (the splits, the probe, label noise) take seeds
# below 2**32; load_dataset, train and the command line hold seeds to that range.
SEED_MAX = 2**32 - 1


def is_whole(value: Any) -> bool:
    """An int or a numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_seed(seed: Any, error: type[Exception]) -> None:
    """Raise ``error`` (the caller's kind of mistake) unless ``seed`` is a whole number in
    0..2**32 - 1."""
    if not is_whole(seed) or not 0 <= seed <= SEED_MAX:
        raise error(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")

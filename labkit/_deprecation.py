"""Renamed arguments keep working for a while, with a DeprecationWarning that names the new
spelling."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed"]


def renamed(new_value: Any, old_value: Any, *, new: str, old: str, where: str) -> Any:
    """The value of argument ``new``, or of its old name ``old`` with a DeprecationWarning;
    both at once is an error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{where}: give {new}= only ({old}= is its old name)")
    warnings.warn(
        f"{where}({old}=...) is deprecated: write {where}({new}=...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value

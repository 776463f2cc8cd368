"""Moved to :mod:`labkit.view.explorer`; this name stays so that older code keeps working."""

from .view.explorer import Explorer, explore

__all__ = ["Explorer", "explore"]

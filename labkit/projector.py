"""Moved to :mod:`labkit.export.projector`; this name stays so that older code keeps working."""

from .export.projector import *  # noqa: F403
from .export.projector import PROJECTOR_POINT_LIMIT, SPRITE_LIMIT_PX, tensor_name, write_projector

__all__ = ["PROJECTOR_POINT_LIMIT", "SPRITE_LIMIT_PX", "tensor_name", "write_projector"]

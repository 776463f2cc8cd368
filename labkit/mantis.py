"""Moved to :mod:`labkit.export.mantis`; this name stays so that older code keeps working."""

from .export.mantis import *  # noqa: F403
from .export.mantis import MantisFormatError, MantisTable, read_mantis_csv, write_mantis_csv

__all__ = ["MantisFormatError", "MantisTable", "read_mantis_csv", "write_mantis_csv"]

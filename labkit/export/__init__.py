"""What the kit writes for other tools: TensorBoard's Embedding Projector logs and the Mantis
CSV (written exactly and read back)."""

from .mantis import MantisFormatError, MantisTable, read_mantis_csv, write_mantis_csv
from .projector import write_projector

__all__ = [
    "MantisFormatError",
    "MantisTable",
    "read_mantis_csv",
    "write_mantis_csv",
    "write_projector",
]

"""A stand-in for Google Colab's ``google.colab`` package (see tests/standin/README.md)."""

from . import output, userdata  # noqa: F401  (Colab's package offers both as attributes)

"""The ngrok token: from the ``NGROK_AUTHTOKEN`` environment variable or, on Colab, the
notebook's secrets (key icon, left bar). It is held in a :class:`Secret`, which never shows
its value: not printed, logged, pickled, or written to a file or a notebook output."""

from __future__ import annotations

import os

__all__ = ["Secret", "TOKEN_HELP", "TOKEN_VAR", "ngrok_token"]


TOKEN_VAR = "NGROK_AUTHTOKEN"

TOKEN_HELP = "https://dashboard.ngrok.com/get-started/your-authtoken"


class Secret:
    """A string that does not show itself: ``repr``/``str`` print stars, ``reveal()`` the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source}, ****)"

    __str__ = __repr__

    def __reduce__(self):  # never pickled to disk by accident
        raise TypeError("a Secret cannot be pickled")


def _colab_secret(name: str) -> str | None:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        return None


def ngrok_token() -> Secret | None:
    """The ngrok token: ``NGROK_AUTHTOKEN`` from the environment first, then Colab's secrets."""
    value = os.environ.get(TOKEN_VAR, "").strip()
    if value:
        return Secret(value, "the NGROK_AUTHTOKEN environment variable")
    value = (_colab_secret(TOKEN_VAR) or "").strip()
    if value:
        return Secret(value, "Colab's secrets")
    return None

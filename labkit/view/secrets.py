"""The ngrok token: from the ``NGROK_AUTHTOKEN`` environment variable or, on Colab, the
notebook's secrets (key icon, left bar). It is held in a :class:`Secret`, which never shows
its value: not printed, logged, pickled, or written to a file or a notebook output."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["SECRET_VARS", "Secret", "TOKEN_HELP", "TOKEN_VAR", "ngrok_token", "without_secrets"]


TOKEN_VAR = "NGROK_AUTHTOKEN"

# The tokens a notebook's kernel may hold in its environment: the ngrok token, and those of
# the Jupyter server or JupyterHub that started it. The processes the kit starts for itself
# (TensorBoard) need none of them; the ngrok agent is handed its token on its own.
SECRET_VARS = (TOKEN_VAR, "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTER_TOKEN")

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


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less the :data:`SECRET_VARS`: the environment for a child that needs none."""
    return {name: value for name, value in environ.items() if name not in SECRET_VARS}


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

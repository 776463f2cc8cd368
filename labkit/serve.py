"""Moved to :mod:`labkit.view` (``processes``, ``tensorboard``, ``secrets``, ``tunnel``,
``notebook``); this name stays so that older code and notebooks keep working."""

from .paths import in_colab
from .view.notebook import open_tensorboard
from .view.processes import REGISTRY_VAR, alive, find_free_port, port_free, stop_all
from .view.secrets import TOKEN_HELP, TOKEN_VAR, Secret, ngrok_token
from .view.tensorboard import TensorBoardServer, jupyter_proxy_url, start_tensorboard
from .view.tunnel import Tunnel, open_tunnel, require_token, stop_tunnels

__all__ = [
    "REGISTRY_VAR",
    "TOKEN_HELP",
    "TOKEN_VAR",
    "Secret",
    "TensorBoardServer",
    "Tunnel",
    "alive",
    "find_free_port",
    "in_colab",
    "jupyter_proxy_url",
    "ngrok_token",
    "open_tensorboard",
    "open_tunnel",
    "port_free",
    "require_token",
    "start_tensorboard",
    "stop_all",
    "stop_tunnels",
]

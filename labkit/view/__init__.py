"""Looking at a run: TensorBoard (local, inline, proxied), the ngrok tunnel for Colab, the
token that opens it, the processes the kit started, and the in-notebook explorer."""

from .explorer import Explorer, explore
from .notebook import open_tensorboard
from .processes import find_free_port, stop_all
from .secrets import Secret, ngrok_token
from .tensorboard import TensorBoardServer, jupyter_proxy_url, start_tensorboard
from .tunnel import Tunnel, open_tunnel, require_token, stop_tunnels

__all__ = [
    "Explorer",
    "Secret",
    "TensorBoardServer",
    "Tunnel",
    "find_free_port",
    "jupyter_proxy_url",
    "explore",
    "ngrok_token",
    "open_tensorboard",
    "open_tunnel",
    "require_token",
    "start_tensorboard",
    "stop_all",
    "stop_tunnels",
]

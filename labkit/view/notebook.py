"""``open_tensorboard``: the one call a lab makes to show the projector, wherever the
notebook runs: locally, on a remote Jupyter, or on Colab (inline through Colab's port proxy,
or full-window through an ngrok tunnel when a token is set)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LabkitError
from ..paths import in_colab, in_ipython
from .processes import check_port
from .secrets import TOKEN_HELP, ngrok_token
from .tensorboard import TensorBoardServer, check_logdir, start_tensorboard
from .tunnel import open_tunnel

__all__ = ["VIEWERS_VAR", "open_tensorboard", "viewers_off"]

# Set to "off" where notebooks run with nobody to look at them (nbgrader's autograde,
# papermill): open_tensorboard then starts no server. Grading a class in parallel would
# otherwise start two TensorBoards a notebook, each a second of CPU and a port.
VIEWERS_VAR = "LABKIT_VIEWERS"


COLAB_INLINE = (
    "TensorBoard is shown below, inside the notebook, through Colab's own port proxy: no "
    "tunnel needed. The projector does not load in Safari: use Chrome or Firefox, or the "
    "explorer further down, which works in every browser."
)

COLAB_TOKEN_STEPS = (
    "Optional: for TensorBoard in a full browser window (an ngrok tunnel), add your ngrok "
    "token:\n"
    f"  1. get a token (free account) at {TOKEN_HELP}\n"
    "  2. in Colab, click the key icon in the left bar, add a secret named NGROK_AUTHTOKEN "
    "with the token as its value, and switch on 'Notebook access'\n"
    "  3. run this cell again."
)


def viewers_off() -> bool:
    """Whether ``LABKIT_VIEWERS=off`` asks for no TensorBoard (``on`` or unset: start it)."""
    value = os.environ.get(VIEWERS_VAR, "").strip().lower()
    if value not in ("", "on", "off"):
        raise LabkitError(f"{VIEWERS_VAR} is 'on' or 'off', not {value!r}")
    return value == "off"


def open_tensorboard(
    logdir: str | Path,
    port: int = 6006,
    *,
    tunnel: bool | None = None,
    display: bool = True,
    height: int = 800,
    detach: bool = False,
) -> TensorBoardServer | None:
    """TensorBoard for a notebook, wherever the notebook runs.

    - Locally: served on ``127.0.0.1`` and shown inline (through jupyter-server-proxy where
      it is installed, so a remote Jupyter works too).
    - On Colab with an ngrok token: a full-window HTTPS tunnel protected by a password.
    - On Colab without a token: shown inline through Colab's port proxy, with the steps to
      add a token printed above it. No token is not an error: "Run all" goes on.

    ``tunnel=None`` opens a tunnel on Colab when a token is there (and falls back to the
    inline view, saying why, if the tunnel fails); ``True`` insists, ``False`` never opens one.

    TensorBoard and the tunnel end with the notebook's kernel (a shutdown, a restart, a
    crash). ``detach=True`` keeps TensorBoard running after it, for a Jupyter server that
    outlives its notebooks; ``tb.stop()`` ends it. A tunnel always ends with its kernel.

    With ``LABKIT_VIEWERS=off`` in the environment (autograding: nobody looks) it only
    checks that ``logdir`` holds logs, says so in one line and returns ``None``.
    """
    check_port(port)  # said at once, also where no TensorBoard is to start
    if viewers_off():
        logdir = check_logdir(logdir)
        print(f"TensorBoard not started ({VIEWERS_VAR}=off); its logs are in {logdir}")
        return None
    server = start_tensorboard(logdir, port=port, detach=detach)
    insist = tunnel is True
    if tunnel is None:
        tunnel = in_colab() and ngrok_token() is not None
    if tunnel:
        try:
            server.tunnel = open_tunnel(server.port)
            return server
        except LabkitError as err:
            if insist:
                raise
            print(f"No tunnel: {err}\n")
    if in_colab():
        print(COLAB_INLINE)
        if ngrok_token() is None:
            print(COLAB_TOKEN_STEPS)
    if display and in_ipython():
        server.display(height=height)
    else:
        print(f"TensorBoard: {server.projector_url}")
    return server

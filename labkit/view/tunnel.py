"""An ngrok tunnel to a local port (for TensorBoard in a full window on Colab), with a
password by default. The token goes to the ngrok agent and nowhere else.

>>> tunnel = open_tunnel(tb.port)   # a public URL with a password   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConfigError, LabkitError
from ..paths import in_colab
from .processes import end_with_owner
from .secrets import TOKEN_HELP, TOKEN_VAR, Secret, ngrok_token

__all__ = ["Tunnel", "open_tunnel", "require_token", "stop_tunnels"]


AGENTS_PAGE = "https://dashboard.ngrok.com/agents"


@dataclass
class Tunnel:
    public_url: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def _repr_html_(self) -> str:
        return f'<a href="{self.public_url}" target="_blank">{self.public_url}</a>'


def _no_token_message(port: int = 6006) -> str:
    where = (
        "add a secret named NGROK_AUTHTOKEN in Colab (key icon in the left bar) and "
        "switch on 'Notebook access'"
        if in_colab()
        else "export NGROK_AUTHTOKEN=... in the shell that starts Jupyter"
    )
    return (
        f"no ngrok token found: {where}. Get a token (free account) at {TOKEN_HELP}. "
        f"Running locally? You need no tunnel: open TensorBoard at "
        f"http://127.0.0.1:{port}/."
    )


def require_token(port: int = 6006) -> Secret:
    """The ngrok token, or a :class:`ConfigError` that says where to put one."""
    token = ngrok_token()
    if token is None:
        raise ConfigError(_no_token_message(port))
    return token


def _explain(err: Exception, token: str) -> LabkitError:
    """A person-sized message for what pyngrok raised; the token never appears in it."""
    from pyngrok.exception import PyngrokNgrokInstallError

    text = str(err).replace(token, "****") if token else str(err)
    if isinstance(err, PyngrokNgrokInstallError):
        return LabkitError(
            "could not download the ngrok agent (is this machine offline?). Either connect to "
            "the internet and try again, install ngrok yourself and point pyngrok at it "
            "(PYNGROK_NGROK_PATH=/path/to/ngrok), or skip the tunnel and use TensorBoard "
            f"locally at http://127.0.0.1:6006/. Details: {text}"
        )
    if "ERR_NGROK_4018" in text:
        return LabkitError(
            "ngrok refused the token: the account is not verified or the token is wrong "
            "(ERR_NGROK_4018). Sign up / verify your e-mail at https://dashboard.ngrok.com, "
            f"copy the token from {TOKEN_HELP} into NGROK_AUTHTOKEN, and try again."
        )
    if "ERR_NGROK_108" in text:
        return LabkitError(
            "another ngrok agent is still running with this account (ERR_NGROK_108: free "
            "accounts allow one). Stop it: labkit.stop_tunnels() stops the agents this machine "
            "started, or call open_tunnel(..., replace=True) to stop them and retry; an agent "
            f"on another machine can be stopped at {AGENTS_PAGE}."
        )
    return LabkitError(f"ngrok could not open the tunnel: {text}")


@contextlib.contextmanager
def _environ(name: str, value: str):
    """``os.environ[name] = value`` for the duration of the block, then as it was."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _pyngrok_connect(port: int, token: str, options: dict):
    import inspect

    from pyngrok import conf, ngrok

    params = inspect.signature(conf.PyngrokConfig).parameters
    kwargs = {"config_version": "2"} if "config_version" in params else {}
    config = conf.PyngrokConfig(**kwargs)  # ngrok's tunnels API, where basic_auth is an option
    # pyngrok passes a configured token as `--authtoken TOKEN`, where `ps` shows it to every
    # user of the machine; the agent reads NGROK_AUTHTOKEN from its environment instead.
    config.auth_token = None
    with _environ(TOKEN_VAR, token):
        tunnel = ngrok.connect(str(port), "http", pyngrok_config=config, **options)
    # pyngrok stops its agent when Python exits normally; the watchdog also when the kernel
    # is killed or restarted.
    end_with_owner(ngrok.get_ngrok_process(config).proc.pid)
    return tunnel.public_url


def stop_tunnels() -> None:
    """Stop every ngrok agent this machine started through pyngrok."""
    from pyngrok import ngrok

    ngrok.kill()


def open_tunnel(
    port: int,
    *,
    auth: bool = True,
    username: str = "labkit",
    password: str | None = None,
    replace: bool = False,
    connect: Callable[[int, str, dict], str] | None = None,
) -> Tunnel:
    """Open an ngrok HTTPS tunnel to ``127.0.0.1:port``, protected by basic auth by default.

    The generated password is printed once; it lives only as long as the tunnel. ``connect``
    replaces the pyngrok call (used by the tests, which cannot reach the ngrok service).
    """
    token = require_token(port)
    connect = connect or _pyngrok_connect
    options: dict = {}
    if auth:
        password = password or secrets.token_urlsafe(12)
        options["basic_auth"] = [f"{username}:{password}"]
    for attempt in (1, 2):
        try:
            url = connect(port, token.reveal(), options)
            break
        except Exception as err:  # pyngrok's errors, explained below
            explained = _explain(err, token.reveal())
            if replace and attempt == 1 and "ERR_NGROK_108" in str(err):
                stop_tunnels()
                continue
            raise explained from None
    url = url.replace("http://", "https://", 1)
    tunnel = Tunnel(url, port, username if auth else None, password if auth else None)
    if auth:
        print(
            f"TensorBoard is public at {url}\n  user: {username}   password: {password}\n"
            f"  (shown once; the password dies with the tunnel. Clear this output before "
            f"sharing the notebook.)"
        )
    else:
        print(f"TensorBoard is public at {url} (no password: anyone with the link can see it)")
    return tunnel

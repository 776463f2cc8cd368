"""Open TensorBoard on a log folder: locally on 127.0.0.1, inline in Jupyter (through
jupyter-server-proxy on a remote Jupyter), or on Colab, inline through Colab's port proxy or
full-window through an ngrok tunnel.

>>> tb = start_tensorboard("runs/digits/tensorboard")      # doctest: +SKIP
>>> tb.url
'http://127.0.0.1:6006/'
>>> tb.display()           # inline in Jupyter                # doctest: +SKIP
>>> tunnel = open_tunnel(tb.port)   # on Colab: a public URL with a password   # doctest: +SKIP

The ngrok token comes from the ``NGROK_AUTHTOKEN`` environment variable or, on Colab, from the
notebook's secrets (key icon, left bar). The kit hands it to the ngrok agent and nothing else:
it is never printed, logged, or written to a file or a notebook output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._io import write_json
from .errors import ConfigError, LabkitError
from .paths import in_colab

__all__ = [
    "Secret",
    "TensorBoardServer",
    "Tunnel",
    "find_free_port",
    "in_colab",
    "jupyter_proxy_url",
    "ngrok_token",
    "open_tensorboard",
    "open_tunnel",
    "require_token",
    "start_tensorboard",
    "stop_all",
    "stop_tunnels",
]

TOKEN_VAR = "NGROK_AUTHTOKEN"
TOKEN_HELP = "https://dashboard.ngrok.com/get-started/your-authtoken"
AGENTS_PAGE = "https://dashboard.ngrok.com/agents"


REGISTRY_VAR = "LABKIT_TENSORBOARD_REGISTRY"


def _registry() -> Path:
    """Where the kit notes the TensorBoard processes it started (pid, port, logdir, owner).

    ``LABKIT_TENSORBOARD_REGISTRY`` moves it (the tests keep their own, so they never touch
    a TensorBoard a student's notebook started).
    """
    folder = Path(
        os.environ.get(REGISTRY_VAR)
        or Path(tempfile.gettempdir()) / f"labkit-tensorboard-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _ours(entry: dict) -> bool:
    """Started by this process (this notebook's kernel), or by one that is gone."""
    owner = entry.get("owner")
    return owner is None or owner == os.getpid() or not _alive(owner)


# ---------------------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------------------


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As TensorBoard binds: connections of a stopped server in TIME_WAIT don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(start: int = 6006, host: str = "127.0.0.1", tries: int = 50) -> int:
    """``start`` if it is free, else the next free port above it."""
    for port in range(start, start + tries):
        if _port_free(port, host):
            return port
    raise LabkitError(
        f"no free port in {start}..{start + tries - 1} on {host}; stop other "
        f"TensorBoard instances (`pkill -f tensorboard`) or pass port=..."
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0): treat it as dead.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
        return status != "Z"
    return True


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (OSError, ValueError):
        return None


def _parent_jupyter_server() -> dict | None:
    """The Jupyter server that started this kernel (its ``base_url`` above all), if any."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    parent = os.getppid()
    with contextlib.suppress(OSError, ValueError):
        for info in list_running_servers():
            if info.get("pid") == parent:
                return info
    return None


def jupyter_proxy_url(port: int) -> str | None:
    """``port`` as the browser reaches it through jupyter-server-proxy, or None.

    On a remote Jupyter (JupyterHub, a lab server) ``127.0.0.1`` is the student's own
    machine, where nothing listens; jupyter-server-proxy forwards ``<base_url>proxy/<port>/``
    to the port on the server instead. The base URL is JupyterHub's
    ``JUPYTERHUB_SERVICE_PREFIX``, else that of the Jupyter server that started this kernel.
    """
    if importlib.util.find_spec("jupyter_server_proxy") is None:
        return None
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        server = _parent_jupyter_server()
        if server is None:
            return None
        prefix = server.get("base_url") or "/"
    return f"/{prefix.strip('/')}/proxy/{port}/".replace("//", "/")


@dataclass
class TensorBoardServer:
    """A TensorBoard process serving ``logdir`` on ``host:port``."""

    logdir: Path
    port: int
    pid: int
    host: str = "127.0.0.1"
    reused: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    tunnel: Tunnel | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def projector_url(self) -> str:
        return self.url + "#projector"

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        """GET ``path`` from the server (e.g. ``/data/plugin/projector/runs``)."""
        data = _get(self.url.rstrip("/") + path, timeout)
        if data is None:
            raise LabkitError(f"TensorBoard at {self.url} did not answer {path}")
        return data

    @property
    def proxied_url(self) -> str | None:
        """The address through jupyter-server-proxy (see :func:`jupyter_proxy_url`), or None."""
        return jupyter_proxy_url(self.port)

    def display(self, height: int = 800) -> None:
        """Show the projector inline: through Colab's port proxy on Colab, through
        jupyter-server-proxy where it is installed, else from ``127.0.0.1``."""
        if in_colab():
            from google.colab import output  # type: ignore[import-not-found]

            # What %tensorboard does on Colab: the browser reaches the kernel's port through
            # Colab's own proxy, so no tunnel and no token are needed.
            output.serve_kernel_port_as_iframe(self.port, path="/#projector", height=str(height))
            return
        from IPython.display import IFrame, display

        base = self.proxied_url or self.url
        display(IFrame(base + "#projector", width="100%", height=height))

    def stop(self) -> None:
        """Stop the process and forget it."""
        _kill(self.pid)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        (_registry() / f"{self.port}.json").unlink(missing_ok=True)

    def _repr_html_(self) -> str:
        return (
            f"TensorBoard on <code>{self.logdir}</code>: "
            f'<a href="{self.projector_url}" target="_blank">{self.projector_url}</a>'
        )


def stop_all(*, everyone: bool = False) -> int:
    """Stop the TensorBoards this process (this notebook) started; returns how many.

    Another notebook's TensorBoard keeps running; ``everyone=True`` stops every one the kit
    started on this machine as this user.
    """
    stopped = 0
    for entry_path in _registry().glob("*.json"):
        try:
            entry = json.loads(entry_path.read_text())
            pid = entry["pid"]
        except (ValueError, KeyError, TypeError):
            entry, pid = {}, None
        if not everyone and entry and not _ours(entry):
            continue
        if pid and _alive(pid):
            _kill(pid)
            stopped += 1
        entry_path.unlink(missing_ok=True)
    return stopped


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _projector_ready(host: str, port: int) -> bool:
    data = _get(f"http://{host}:{port}/data/plugins_listing")
    if not data:
        return False
    try:
        listing = json.loads(data)
    except ValueError:
        return False
    return bool(listing.get("projector", {}).get("enabled"))


@contextlib.contextmanager
def _sigint_deferred():
    """Hold SIGINT back for the block (the main thread on POSIX); it is delivered after."""
    import threading

    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _logs_mtime(logdir: Path) -> float:
    files = [p for p in logdir.rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in files), default=0.0)


def start_tensorboard(
    logdir: str | Path,
    port: int = 6006,
    host: str = "127.0.0.1",
    reuse: bool = True,
    timeout: float = 90.0,
) -> TensorBoardServer:
    """Serve ``logdir`` with TensorBoard and wait until its projector is up.

    Uses ``port`` or the next free one. An instance the kit started earlier on the same
    folder is reused if the logs have not changed since it started (TensorBoard re-reads
    projector configs only when runs change), otherwise replaced; instances whose process
    died are forgotten.
    """
    logdir = Path(logdir).resolve()
    if not logdir.is_dir():
        raise LabkitError(
            f"no log folder {logdir}; write one with labkit.write_projector(...) "
            f"or `python -m labkit run`"
        )
    if not any(logdir.rglob("projector_config.pbtxt")) and not any(logdir.rglob("events.*")):
        raise LabkitError(
            f"{logdir} holds no TensorBoard logs (no projector_config.pbtxt, no "
            f"events files); write them with labkit.write_projector(snaps, ...)"
        )

    for entry_path in sorted(_registry().glob("*.json")):
        try:
            entry = json.loads(entry_path.read_text())
        except ValueError:
            entry_path.unlink(missing_ok=True)
            continue
        if not _alive(entry["pid"]):
            entry_path.unlink(missing_ok=True)  # a stale record: the process is gone
            continue
        if Path(entry["logdir"]) == logdir and entry["host"] == host:
            fresh = _logs_mtime(logdir) <= entry["started"]
            if reuse and fresh and _projector_ready(host, entry["port"]):
                return TensorBoardServer(logdir, entry["port"], entry["pid"], host, reused=True)
            if _ours(entry):  # serving outdated logs (or not answering): replace it
                _kill(entry["pid"])
                entry_path.unlink(missing_ok=True)
        elif entry["port"] == port and entry["host"] == host and _ours(entry):
            # Another folder on the port the user asked for, started by this notebook (or
            # by one that is gone): students expect 6006 to show the run they just made.
            # Another live notebook's TensorBoard stays; the next free port is used.
            _kill(entry["pid"])
            entry_path.unlink(missing_ok=True)

    port = find_free_port(port, host)
    log = open(_registry() / f"{port}.log", "wb")  # noqa: SIM115 (the child keeps it open)
    started = time.time()
    server = None
    try:
        # Ctrl-C is held back while the process is created, so it can only land once
        # `server` is known, and the handler below stops the process: never an orphan.
        with _sigint_deferred():
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tensorboard.main",
                    "--logdir",
                    str(logdir),
                    "--host",
                    host,
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            server = TensorBoardServer(logdir, port, proc.pid, host, process=proc)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = (_registry() / f"{port}.log").read_text(errors="replace")[-2000:]
                raise LabkitError(f"TensorBoard exited with code {proc.returncode}:\n{tail}")
            if _projector_ready(host, port):
                write_json(
                    _registry() / f"{port}.json",
                    {
                        "pid": proc.pid,
                        "port": port,
                        "host": host,
                        "logdir": str(logdir),
                        "started": started,
                        "owner": os.getpid(),
                    },
                )
                return server
            time.sleep(0.25)
    except BaseException:  # Ctrl-C while it starts: no orphan left holding the port
        log.close()
        if server is not None:
            server.stop()
        raise
    server.stop()
    raise LabkitError(
        f"TensorBoard on {logdir} did not show its projector within "
        f"{timeout:.0f} s; see {_registry() / f'{port}.log'}"
    )


# ---------------------------------------------------------------------------------------
# ngrok
# ---------------------------------------------------------------------------------------


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
    return tunnel.public_url


def stop_tunnels() -> None:
    """Stop every ngrok agent this machine started through pyngrok."""
    from pyngrok import ngrok

    ngrok.kill()


def open_tunnel(
    port: int,
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


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def open_tensorboard(
    logdir: str | Path,
    port: int = 6006,
    tunnel: bool | None = None,
    display: bool = True,
    height: int = 800,
) -> TensorBoardServer:
    """TensorBoard for a notebook, wherever the notebook runs.

    - Locally: served on ``127.0.0.1`` and shown inline (through jupyter-server-proxy where
      it is installed, so a remote Jupyter works too).
    - On Colab with an ngrok token: a full-window HTTPS tunnel protected by a password.
    - On Colab without a token: shown inline through Colab's port proxy, with the steps to
      add a token printed above it. No token is not an error: "Run all" goes on.

    ``tunnel=None`` opens a tunnel on Colab when a token is there (and falls back to the
    inline view, saying why, if the tunnel fails); ``True`` insists, ``False`` never opens one.
    """
    server = start_tensorboard(logdir, port=port)
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
    if display and _in_ipython():
        server.display(height=height)
    else:
        print(f"TensorBoard: {server.projector_url}")
    return server

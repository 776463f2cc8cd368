"""TensorBoard on a log folder: started on 127.0.0.1 once the projector is ready, shown
inline in Jupyter (through jupyter-server-proxy on a remote Jupyter).

>>> tb = start_tensorboard("runs/digits/tensorboard")      # doctest: +SKIP
>>> tb.url
'http://127.0.0.1:6006/'
>>> tb.display()           # inline in Jupyter                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import write_json
from ..errors import LabkitError
from ..paths import in_colab
from .processes import (
    PORT_MAX,
    check_port,
    end_with_owner,
    entries,
    find_free_port,
    forget_entry,
    http_get,
    identity,
    is_tensorboard,
    kill,
    registry,
    release,
    runs_as_recorded,
    signals_deferred,
    started_here,
    tensorboard_command,
)
from .secrets import without_secrets

if TYPE_CHECKING:
    from .tunnel import Tunnel

__all__ = ["TensorBoardServer", "check_logdir", "jupyter_proxy_url", "start_tensorboard"]


def _parent_jupyter_server() -> dict | None:
    """The Jupyter server that started this kernel (its ``base_url`` above all), if any.

    Read from the ``jpserver-*.json`` files a running server keeps in Jupyter's runtime
    folder, as ``jupyter_server.serverapp.list_running_servers`` reads them: importing
    ``jupyter_server`` itself would cost a student two seconds (jsonschema's grammars)."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    parent = os.getppid()
    with contextlib.suppress(OSError):
        for path in Path(jupyter_runtime_dir()).glob("jpserver-*.json"):
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(info, dict) and info.get("pid") == parent:
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
    """A TensorBoard process serving ``logdir`` on ``host:port``. ``identity`` and ``argv``:
    its start time and command line when it started, which tell it from a later process
    given the same pid."""

    logdir: Path
    port: int
    pid: int
    host: str = "127.0.0.1"
    reused: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    tunnel: Tunnel | None = None
    identity: str | None = field(default=None, repr=False)
    argv: list[str] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def projector_url(self) -> str:
        return self.url + "#projector"

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        """GET ``path`` from the server (e.g. ``/data/plugin/projector/runs``)."""
        data = http_get(self.url.rstrip("/") + path, timeout)
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
        """Stop the process, if it is still this TensorBoard, and forget it."""
        if self.process is not None:
            # A child not yet reaped keeps its pid: no other process can have it.
            running = self.process.poll() is None
        else:  # an earlier one's, reused: its pid may be another process's by now
            running = runs_as_recorded(self.pid, self.identity, self.argv)
        if running:
            kill(self.pid)
        else:
            release(self.pid)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        forget_entry(registry() / f"{self.port}.json", self.pid)

    def _repr_html_(self) -> str:
        return (
            f"TensorBoard on <code>{self.logdir}</code>: "
            f'<a href="{self.projector_url}" target="_blank">{self.projector_url}</a>'
        )


def _projector_ready(host: str, port: int) -> bool:
    data = http_get(f"http://{host}:{port}/data/plugins_listing")
    if not data:
        return False
    try:
        listing = json.loads(data)
    except ValueError:
        return False
    return bool(listing.get("projector", {}).get("enabled"))


def _serves(host: str, port: int, logdir: Path) -> bool:
    """Whether the TensorBoard answering on ``port`` serves ``logdir``: another one may have
    taken the port between our check and our start (two notebooks starting at once)."""
    data = http_get(f"http://{host}:{port}/data/environment")
    try:
        location = json.loads(data).get("data_location") if data else None
    except ValueError:
        return False
    return location is not None and Path(location).resolve() == logdir


def _logs_mtime(logdir: Path) -> float:
    files = [p for p in logdir.rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in files), default=0.0)


def check_logdir(logdir: str | Path) -> Path:
    """``logdir`` as an absolute path, or one sentence saying why TensorBoard would have
    nothing to show there (a damaged projector config included)."""
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
    for config in sorted(logdir.rglob("projector_config.pbtxt")):
        check_projector_config(config)
    return logdir


def check_projector_config(path: Path) -> None:
    """One sentence naming ``path`` unless TensorBoard can read it: read as TensorBoard's
    projector reads it, since a config it cannot parse leaves the projector off, and the
    kit would wait for it in vain."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    try:
        text_format.Parse(path.read_bytes().decode("utf-8"), ProjectorConfig())
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except text_format.ParseError as err:
        where = f"line {err.GetLine()}, column {err.GetColumn()}"
        said = str(err).split(" : ", 1)[-1].rstrip(".")  # without the place, given above
        problem = f"cannot be read as a projector config ({where}: {said})"
    else:
        return
    raise LabkitError(
        f"{path} {problem}, so TensorBoard would show no projector: write it again with "
        f"labkit.write_projector(...) (or `python -m labkit run`), or delete it"
    )


def start_tensorboard(
    logdir: str | Path,
    port: int = 6006,
    host: str = "127.0.0.1",
    *,
    reuse: bool = True,
    detach: bool = False,
    timeout: float = 90.0,
) -> TensorBoardServer:
    """Serve ``logdir`` with TensorBoard and wait until its projector is up.

    Uses ``port`` or the next free one. An instance the kit started earlier on the same
    folder is reused if the logs have not changed since it started (TensorBoard re-reads
    projector configs only when runs change), otherwise replaced; instances whose process
    died are forgotten.

    TensorBoard ends when this process (the notebook's kernel, the command, the script)
    ends, however it ends. ``detach=True`` lets it run on (a long-lived JupyterHub server,
    say): no other notebook's ``stop_all()`` stops it then; ``tb.stop()`` or
    ``labkit.view.stop_all(everyone=True)`` do.
    """
    check_port(port)
    logdir = check_logdir(logdir)
    for entry_path, entry in entries():
        if not is_tensorboard(entry):
            # A stale record: the process is gone, or its pid is another process's now.
            forget_entry(entry_path, entry["pid"])
            continue
        if Path(entry["logdir"]) == logdir and entry["host"] == host:
            fresh = _logs_mtime(logdir) <= entry["started"]
            if reuse and fresh and _projector_ready(host, entry["port"]):
                return TensorBoardServer(
                    logdir,
                    entry["port"],
                    entry["pid"],
                    host,
                    reused=True,
                    identity=entry["identity"],
                    argv=entry["argv"],
                )
            if started_here(entry):  # serving outdated logs (or not answering): replace it
                kill(entry["pid"])
                entry_path.unlink(missing_ok=True)
        elif entry["port"] == port and entry["host"] == host and started_here(entry):
            # Another folder on the port the user asked for, started by this notebook (or
            # by one that is gone): students expect 6006 to show the run they just made.
            # Another live notebook's TensorBoard stays; the next free port is used.
            kill(entry["pid"])
            entry_path.unlink(missing_ok=True)

    first = port
    for _attempt in range(5):
        port = find_free_port(port, host)
        server = _launch(logdir, port, host, timeout, detach=detach)
        if server is not None:
            return server
        if port == PORT_MAX:
            break
        port += 1  # taken by another process since find_free_port looked: the next one
    raise LabkitError(
        f"TensorBoard could not bind to a port in {first}..{port}: other processes took "
        f"each one first; choose another port (port=... in Python, --port on the command line)"
    )


def _fresh_log(path: Path) -> int:
    """A new, empty file at ``path``, open for writing: whatever had the name is removed
    first (a link planted there included), never written through."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)


def _log_tail(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        return f.read().decode(errors="replace")[-2000:]


def _launch(
    logdir: Path, port: int, host: str, timeout: float, *, detach: bool
) -> TensorBoardServer | None:
    """Start TensorBoard on ``port`` and wait for its projector; ``None`` if the port was
    taken meanwhile."""
    folder = registry()
    log_path, entry_path = folder / f"{port}.log", folder / f"{port}.json"
    argv = tensorboard_command(logdir, host, port)
    log = os.fdopen(_fresh_log(log_path), "wb")  # noqa: SIM115 (the child keeps it open)
    started = time.time()
    server = None
    try:
        # Ctrl-C (SIGTERM, SIGHUP) is held back while the process is created and handed to
        # the watchdog, so it can only land once `server` is known, and the handler below
        # stops the process: never an orphan.
        with signals_deferred():
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=without_secrets(os.environ),  # it needs no token, so it holds none
            )
            server = TensorBoardServer(
                logdir, port, proc.pid, host, process=proc, identity=identity(proc.pid), argv=argv
            )
            if not detach:
                end_with_owner(proc.pid, forget=entry_path)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = _log_tail(log_path)
                if "could not bind" in tail:
                    return None
                raise LabkitError(f"TensorBoard exited with code {proc.returncode}:\n{tail}")
            if _projector_ready(host, port) and _serves(host, port, logdir):
                write_json(
                    entry_path,
                    {
                        "pid": proc.pid,
                        "port": port,
                        "host": host,
                        "logdir": str(logdir),
                        "started": started,
                        "owner": os.getpid(),
                        "detached": detach,
                        "identity": server.identity,
                        "argv": argv,
                    },
                )
                return server
            time.sleep(0.05)  # a refused connection costs nothing; a student waits
    except BaseException:  # Ctrl-C while it starts: no orphan left holding the port
        log.close()
        if server is not None:
            server.stop()
        raise
    server.stop()
    raise LabkitError(
        f"TensorBoard on {logdir} did not show its projector within {timeout:.0f} s; see {log_path}"
    )

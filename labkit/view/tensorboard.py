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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import write_json
from ..errors import LabkitError
from ..paths import in_colab
from .processes import (
    alive,
    end_with_owner,
    find_free_port,
    forget_entry,
    http_get,
    kill,
    registry,
    signals_deferred,
    started_here,
)

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
        """Stop the process and forget it."""
        kill(self.pid)
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
    nothing to show there."""
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
    return logdir


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
    logdir = check_logdir(logdir)
    for entry_path in sorted(registry().glob("*.json")):
        try:
            entry = json.loads(entry_path.read_text())
        except ValueError:
            entry_path.unlink(missing_ok=True)
            continue
        if not alive(entry["pid"]):
            entry_path.unlink(missing_ok=True)  # a stale record: the process is gone
            continue
        if Path(entry["logdir"]) == logdir and entry["host"] == host:
            fresh = _logs_mtime(logdir) <= entry["started"]
            if reuse and fresh and _projector_ready(host, entry["port"]):
                return TensorBoardServer(logdir, entry["port"], entry["pid"], host, reused=True)
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
        port += 1  # taken by another process since find_free_port looked: the next one
    raise LabkitError(
        f"TensorBoard could not bind to a port from {first} on: other processes took "
        f"each one first; pass another port=..."
    )


def _launch(
    logdir: Path, port: int, host: str, timeout: float, *, detach: bool
) -> TensorBoardServer | None:
    """Start TensorBoard on ``port`` and wait for its projector; ``None`` if the port was
    taken meanwhile."""
    log = open(registry() / f"{port}.log", "wb")  # noqa: SIM115 (the child keeps it open)
    started = time.time()
    server = None
    try:
        # Ctrl-C (SIGTERM, SIGHUP) is held back while the process is created and handed to
        # the watchdog, so it can only land once `server` is known, and the handler below
        # stops the process: never an orphan.
        with signals_deferred():
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
            if not detach:
                end_with_owner(proc.pid, forget=registry() / f"{port}.json")
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = (registry() / f"{port}.log").read_text(errors="replace")[-2000:]
                if "could not bind" in tail:
                    return None
                raise LabkitError(f"TensorBoard exited with code {proc.returncode}:\n{tail}")
            if _projector_ready(host, port) and _serves(host, port, logdir):
                write_json(
                    registry() / f"{port}.json",
                    {
                        "pid": proc.pid,
                        "port": port,
                        "host": host,
                        "logdir": str(logdir),
                        "started": started,
                        "owner": os.getpid(),
                        "detached": detach,
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
        f"TensorBoard on {logdir} did not show its projector within "
        f"{timeout:.0f} s; see {registry() / f'{port}.log'}"
    )

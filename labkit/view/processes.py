"""The TensorBoard processes the kit starts: a registry of them (one file per port), free
ports, and stopping them. A notebook stops only the processes it started, unless told
otherwise, so one student's TensorBoard never stops another's."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from ..errors import LabkitError

__all__ = [
    "REGISTRY_VAR",
    "alive",
    "find_free_port",
    "http_get",
    "kill",
    "port_free",
    "registry",
    "sigint_deferred",
    "started_here",
    "stop_all",
]


REGISTRY_VAR = "LABKIT_TENSORBOARD_REGISTRY"


def registry() -> Path:
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


def started_here(entry: dict) -> bool:
    """Started by this process (this notebook's kernel), or by one that is gone."""
    owner = entry.get("owner")
    return owner is None or owner == os.getpid() or not alive(owner)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
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
        if port_free(port, host):
            return port
    raise LabkitError(
        f"no free port in {start}..{start + tries - 1} on {host}; stop other "
        f"TensorBoard instances (`pkill -f tensorboard`) or pass port=..."
    )


def alive(pid: int) -> bool:
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


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def stop_all(*, everyone: bool = False) -> int:
    """Stop the TensorBoards this process (this notebook) started; returns how many.

    Another notebook's TensorBoard keeps running; ``everyone=True`` stops every one the kit
    started on this machine as this user.
    """
    stopped = 0
    for entry_path in registry().glob("*.json"):
        try:
            entry = json.loads(entry_path.read_text())
            pid = entry["pid"]
        except (ValueError, KeyError, TypeError):
            entry, pid = {}, None
        if not everyone and entry and not started_here(entry):
            continue
        if pid and alive(pid):
            kill(pid)
            stopped += 1
        entry_path.unlink(missing_ok=True)
    return stopped


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def sigint_deferred():
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

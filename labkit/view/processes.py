"""The processes the kit starts: a registry of its TensorBoards (one file per port), free
ports, stopping them, and ending them with their owner. A notebook stops only the processes
it started, unless told otherwise, so one student's TensorBoard never stops another's; and
what a notebook (a command, a script) started ends when it ends, however it ends (see
``watchdog.py``), unless it was started detached."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ..errors import LabkitError
from .watchdog import alive, forget_entry, identity

__all__ = [
    "REGISTRY_VAR",
    "alive",
    "end_with_owner",
    "find_free_port",
    "forget_entry",
    "http_get",
    "kill",
    "port_free",
    "registry",
    "release",
    "signals_deferred",
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
    """Started by this process (this notebook's kernel), or by one that is gone and did not
    mean it to outlive it (``detach=True``)."""
    owner = entry.get("owner")
    if owner == os.getpid():
        return True
    return not entry.get("detached") and (owner is None or not alive(owner))


# -- ending with the owner -----------------------------------------------------------------

_WATCHDOG = Path(__file__).with_name("watchdog.py")
_watchdog: subprocess.Popen | None = None
_watchdog_owner: int | None = None  # the pid that started it: a forked child needs its own
_watchdog_lock = threading.Lock()


def _tell_watchdog(message: dict, *, start: bool) -> None:
    global _watchdog, _watchdog_owner
    with _watchdog_lock:
        fresh = (
            _watchdog is not None and _watchdog_owner == os.getpid() and _watchdog.poll() is None
        )
        if not fresh:
            if not start:
                return
            # -I -S: the standard library only, so it starts in milliseconds. Its own session:
            # a Ctrl-C in the owner's terminal is for the owner.
            _watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_WATCHDOG)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _watchdog_owner = os.getpid()
        try:
            _watchdog.stdin.write((json.dumps(message) + "\n").encode())
            _watchdog.stdin.flush()
        except OSError:  # the watchdog was killed: the next call starts another
            _watchdog = None


def end_with_owner(pid: int, *, forget: Path | None = None) -> None:
    """Have process ``pid`` stopped when this process ends, however it ends: a normal exit, a
    signal, a kernel restart, ``kill -9``. ``forget``: its registry entry, removed with it.

    One watchdog process per owner reads a pipe from this process; the operating system
    closes the pipe when this process ends, and the watchdog then stops ``pid``.
    """
    _tell_watchdog(
        {"watch": pid, "identity": identity(pid), "forget": str(forget) if forget else None},
        start=True,
    )


def release(pid: int) -> None:
    """Forget ``pid`` in the watchdog (it was stopped, or it is to outlive this process)."""
    _tell_watchdog({"release": pid}, start=False)


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


def kill(pid: int) -> None:
    """SIGTERM, then SIGKILL after 5 s; the watchdog forgets the process."""
    release(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not alive(pid):
                return
            time.sleep(0.05)
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
def signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP back for the block (in the main thread); each one that
    came is delivered after it, to the handlers there were.

    The handlers are swapped, not the signal mask: a process started in the block inherits
    its parent's mask, and a TensorBoard that blocks SIGTERM can only be killed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    held = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) in (signal.SIG_IGN, None):
            continue  # ignored, or set outside Python: left as it is
        held[signum] = signal.signal(signum, lambda number, frame: came.append(number))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in came:
            signal.raise_signal(signum)

"""The processes the kit starts: a registry of its TensorBoards (one file per port), free
ports, stopping them, and ending them with their owner. A notebook stops only the processes
it started, unless told otherwise, so one student's TensorBoard never stops another's; and
what a notebook (a command, a script) started ends when it ends, however it ends (see
``watchdog.py``), unless it was started detached.

The registry is distrusted: it is a folder only its user can open, each entry is checked
before it is used, and a process it names is stopped only when it is, provably, the
TensorBoard the entry was written for (the same start time and command line as then)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

from ..errors import ConfigError, LabkitError
from .watchdog import alive, command_line, forget_entry, identity, read_entry

__all__ = [
    "PORT_MAX",
    "REGISTRY_VAR",
    "alive",
    "check_port",
    "end_with_owner",
    "entries",
    "find_free_port",
    "forget_entry",
    "http_get",
    "is_tensorboard",
    "kill",
    "port_free",
    "registry",
    "release",
    "runs_as_recorded",
    "signals_deferred",
    "started_here",
    "stop_all",
    "tensorboard_command",
]


REGISTRY_VAR = "LABKIT_TENSORBOARD_REGISTRY"


def registry() -> Path:
    """Where the kit notes the TensorBoard processes it started (pid, port, logdir, owner):
    a folder of the user's own that nobody else can open (mode 0700), made so if missing.

    ``LABKIT_TENSORBOARD_REGISTRY`` moves it (the tests keep their own, so they never touch
    a TensorBoard a student's notebook started).
    """
    folder = Path(
        os.environ.get(REGISTRY_VAR)
        or Path(tempfile.gettempdir()) / f"labkit-tensorboard-{os.getuid()}"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # made here: 0700 whatever the umask
    _check_private(folder)
    return folder


def _check_private(folder: Path) -> None:
    """One sentence unless ``folder`` is a folder (not a link) of this user's, mode 0700: in
    one another user can write to, or made first by another user in the shared temporary
    folder, entries and log files could be planted (a link to a file of the user's, which
    the log would overwrite)."""
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        problem, remedy = "is a symbolic link", f"remove the link (rm {folder})"
    elif not stat.S_ISDIR(info.st_mode):
        problem, remedy = "is not a folder", f"remove it (rm {folder})"
    elif info.st_uid != os.getuid():
        problem = f"belongs to another user (uid {info.st_uid})"
        remedy = "have that user or root remove it"
    elif info.st_mode & 0o077:
        problem = f"is open to other users (mode {stat.S_IMODE(info.st_mode):04o})"
        remedy = f"make it private (chmod 700 {folder})"
    else:
        return
    raise LabkitError(
        f"the TensorBoard registry {folder} {problem}, and the kit keeps its records only in "
        f"a folder of your own that nobody else can open (mode 0700): {remedy}, or point "
        f"{REGISTRY_VAR} at a folder of your own"
    )


# What an entry holds, as the kit writes it (tensorboard.py): name -> the JSON types allowed.
_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,),
    "port": (int,),
    "host": (str,),
    "logdir": (str,),
    "started": (int, float),
    "owner": (int, type(None)),
    "detached": (bool,),
    "identity": (str, type(None)),
    "argv": (list,),
}

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_NAMES.get(type(value), "a number")


def _of_kind(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # an int to Python, never a pid or a port here
        return bool in kinds
    return isinstance(value, kinds)


def _malformed(entry: object, path: Path) -> str | None:
    """What is wrong with ``entry``, read from ``path``, or None when it is as the kit writes
    it."""
    if not isinstance(entry, dict):
        return f"{_json_kind(entry)}, not an object"
    for name, kinds in _FIELDS.items():
        if name not in entry:
            return f"no {name!r}"
        if not _of_kind(entry[name], kinds):
            return f"{name!r} is {json.dumps(entry[name])}"
    if entry["pid"] < 1 or (entry["owner"] is not None and entry["owner"] < 1):
        return "a pid below 1"
    if not all(isinstance(arg, str) for arg in entry["argv"]):
        return "an 'argv' that is not all strings"
    if path.stem != str(entry["port"]):
        return f"named for port {path.stem} but holding port {entry['port']}"
    return None


def entries(folder: Path | None = None) -> list[tuple[Path, dict]]:
    """The registry's entries as the kit wrote them, each with its path, in name order. Each
    damaged one (not JSON, not an object, a field missing or of the wrong kind) is removed,
    with a warning: it says nothing the kit can act on, and must not stop every later start.
    """
    folder = registry() if folder is None else folder
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            entry = read_entry(path)
        except FileNotFoundError:  # removed meanwhile: its TensorBoard stopped
            continue
        except OSError as err:
            problem = "a symbolic link" if err.errno == errno.ELOOP else str(err.strerror or err)
        except (json.JSONDecodeError, UnicodeDecodeError):
            problem = "not JSON"
        except ValueError as err:
            problem = str(err)
        else:
            problem = _malformed(entry, path)
            if problem is None:
                found.append((path, entry))
                continue
        warnings.warn(
            f"{path} is not a TensorBoard registry entry as the kit writes them ({problem}): "
            f"ignored and removed",
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            path.unlink()
    return found


def tensorboard_command(logdir: str | Path, host: str, port: int) -> list[str]:
    """The command line the kit starts TensorBoard with."""
    return [sys.executable, "-m", "tensorboard.main"] + [
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def runs_as_recorded(pid: int, started: str | None, argv: list[str]) -> bool:
    """Whether ``pid`` is, provably, the process recorded: it runs, started when recorded
    (``started``: its :func:`identity` then) and has the command line ``argv``. A later
    process given the same pid differs in its start time. Where there is no ``/proc`` nothing
    can be proven, and the kit leaves the process alone (the watchdog still ends it with its
    owner)."""
    return (
        started is not None
        and alive(pid)
        and identity(pid) == started
        and command_line(pid) == argv
    )


def is_tensorboard(entry: dict) -> bool:
    """Whether the registry ``entry`` (well-formed: see :func:`entries`) names a process that
    is, provably, the TensorBoard the kit started for it: its recorded command is TensorBoard
    on the entry's folder, host and port, and its pid still runs as recorded."""
    argv = entry["argv"]
    expected = tensorboard_command(entry["logdir"], entry["host"], entry["port"])
    return (
        len(argv) == len(expected)
        and argv[1:] == expected[1:]
        and runs_as_recorded(entry["pid"], entry["identity"], argv)
    )


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


PORT_MAX = 65535  # the highest TCP port


def check_port(port: object, name: str = "port") -> int:
    """``port`` if it is a port number (an int in 1..65535), else one sentence saying so: 0
    would have TensorBoard pick a port nobody is told, and a string or a bool is a mistake."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= PORT_MAX:
        kind = "" if type(port) is int else f" (a {type(port).__name__})"
        raise ConfigError(
            f"{name} must be a whole number (an int) in 1..{PORT_MAX}, got {port!r}{kind}"
        )
    return port


def find_free_port(start: int = 6006, host: str = "127.0.0.1", tries: int = 50) -> int:
    """``start`` if it is free, else the next free port above it (up to 65535)."""
    check_port(start, "start")
    last = min(start + tries - 1, PORT_MAX)
    for port in range(start, last + 1):
        if port_free(port, host):
            return port
    tried = f"port {start}" if last == start else f"ports {start}..{last}"
    if last == PORT_MAX:
        tried += ", the highest there is"
    raise LabkitError(
        f"no free port on {host}: tried {tried}; stop the TensorBoards you no longer need "
        f"(labkit.view.stop_all()) or choose another port (port=... in Python, --port on "
        f"the command line)"
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
    for entry_path, entry in entries():
        if not everyone and not started_here(entry):
            continue
        if is_tensorboard(entry):
            kill(entry["pid"])
            stopped += 1
        # Stopped, or stale: its process is gone, or the pid is another process's now.
        forget_entry(entry_path, entry["pid"])
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

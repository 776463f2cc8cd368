"""The watchdog that ends the kit's processes with their owner, however the owner ends.

The owner (a notebook's kernel, ``python -m labkit tensorboard``, a script) starts one
watchdog and keeps the write end of a pipe to its standard input; it names each process to
end with it (TensorBoard, the ngrok agent) in one JSON line. When the owner ends, by a normal
exit, a signal, a kernel restart or ``kill -9``, its operating system closes the pipe: the
watchdog reads the end of its input, stops every process still named, forgets their registry
entries, and exits.

Why a pipe and not ``prctl(PR_SET_PDEATHSIG)``: the pipe works on every system and for
processes the kit does not start itself (pyngrok starts the ngrok agent), needs nothing run
in the child between ``fork`` and ``exec``, and does not fire when the thread that started
the child ends (PDEATHSIG follows the parent *thread*). TensorBoard's own data server ends
with TensorBoard the same way (``--die-after-stdin``).

This file runs as a script (``python -I -S watchdog.py``): the standard library only, so the
watchdog starts in milliseconds and holds a few MB, not the kit's imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

__all__ = ["alive", "command_line", "forget_entry", "identity", "main", "read_entry"]

# A registry entry is a few hundred bytes; anything much larger was not written by the kit.
_ENTRY_LIMIT = 64 * 1024


def identity(pid: int) -> str | None:
    """What tells this process from a later one given the same pid: its start time (in clock
    ticks since boot, from ``/proc``), or None where there is no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command in brackets


def command_line(pid: int) -> list[str] | None:
    """The arguments ``pid`` runs with, from ``/proc``, or None where they cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="surrogateescape") for arg in raw.split(b"\0")[:-1]]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (exited, not yet reaped) still answers ``kill(pid, 0)``
    and counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _stop(watched: dict[int, dict]) -> None:
    """SIGTERM to each watched process that is still the one named, SIGKILL after 5 s."""
    ours = [
        pid
        for pid, entry in watched.items()
        if alive(pid) and (entry.get("identity") is None or identity(pid) == entry["identity"])
    ]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while any(alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ours:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for pid, entry in watched.items():
        forget = entry.get("forget")
        if not forget:
            continue
        forget_entry(Path(forget), pid)


def read_entry(path: Path) -> object:
    """The JSON in the registry entry ``path``, read without following a link or waiting on
    a pipe planted under its name. Raises OSError (a link, not a plain file) or ValueError
    (too large, not JSON); what the JSON holds is for the reader to check."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a plain file")
        data = f.read(_ENTRY_LIMIT + 1)
    if len(data) > _ENTRY_LIMIT:
        raise ValueError(f"more than {_ENTRY_LIMIT} bytes")
    return json.loads(data)


def forget_entry(path: Path, pid: int) -> None:
    """Remove the registry entry ``path`` if it still names ``pid``: once a process is gone its
    port is free, and another TensorBoard may have taken it, and the entry, since. A damaged
    entry is left for the kit to warn about and remove."""
    try:
        entry = read_entry(path)
        if isinstance(entry, dict) and entry.get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


class _Ended(Exception):
    """SIGTERM or SIGHUP to the watchdog itself: stop what it watches now, as at the end."""


def _end(signum, frame) -> None:
    raise _Ended


def main() -> int:
    # A Ctrl-C in the owner's terminal is the owner's to handle (the watchdog runs in a
    # session of its own, so it is not sent one anyway); being told to end is the end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _end)
    watched: dict[int, dict] = {}
    try:
        for line in sys.stdin:
            try:
                message = json.loads(line)
                if "watch" in message:
                    watched[int(message["watch"])] = message
                elif "release" in message:
                    watched.pop(int(message["release"]), None)
            except (ValueError, TypeError, KeyError):
                continue  # a line cut short by the owner's end
    except _Ended:
        pass
    _stop(watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())

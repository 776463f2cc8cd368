"""Ctrl-C in the kit's command line: never a traceback, and never lost.

Two gaps that ``cli.main``'s own ``except KeyboardInterrupt`` cannot close:

- **The first seconds.** ``python -m labkit`` and the ``labkit`` script import the package,
  and with it torch, before ``cli.main`` runs. A Ctrl-C then would print a traceback, an
  ``ImportError: initialization failed`` (landing inside a compiled module's start), or abort
  the process (inside torch's C++ start). So the package's imports run under
  :func:`deferred`: a Ctrl-C is noted, the imports finish (a second or two), and the command
  ends with one line and exit code 130.
- **A Ctrl-C that a library swallows.** One that lands inside a compiled module imported on
  the way (a lazy import) comes out as an ``ImportError``, and libraries that treat an
  optional module as absent on ``ImportError`` carry on: the run would finish and replace the
  earlier one. Under :func:`noted` every Ctrl-C is also written down, and :func:`check`
  (called before a run folder is renamed into place) raises it again.

Only the command line's process is touched: a notebook or a script importing labkit gets
Python's own Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_noted: list[int] = []  # the Ctrl-Cs this process received under deferred() or noted()


def is_command_line() -> bool:
    """Whether this process is ``python -m labkit ...`` or the ``labkit`` script."""
    argv = list(getattr(sys, "orig_argv", ()))
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "labkit":
        return True
    return bool(sys.argv) and Path(sys.argv[0]).name == "labkit"


def _may_handle() -> bool:
    return (
        threading.current_thread() is threading.main_thread()
        # Started in the background (`cmd &`): Ctrl-C is ignored, and stays so.
        and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    )


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """In the command line's process: a Ctrl-C during the block exits after it, with one
    line and 130."""
    if not (is_command_line() and _may_handle()):
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if _noted:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        raise SystemExit(130)


@contextlib.contextmanager
def noted() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as ever in the block, and is written down for
    :func:`check` too."""
    _noted.clear()  # a Ctrl-C of an earlier command in this process (main() called twice)
    if not _may_handle():
        yield
        return

    def note(signum, frame):
        _noted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived under :func:`noted` (and was swallowed
    on the way, since the block is still running)."""
    if _noted:
        raise KeyboardInterrupt

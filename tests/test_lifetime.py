"""The processes the kit starts end with their owner, however the owner ends.

Real owners, real endings: a script that exits, ``python -m labkit tensorboard`` sent
SIGTERM, SIGHUP or ``kill -9``, a real Jupyter kernel shut down, restarted and killed, and the
stand-in ngrok agent (tests/standin) under a killed owner. Each test then looks at every
process on the machine, not at the kit's registry, for what is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from labkit.view import processes

STANDIN = Path(__file__).parent / "standin"


def tensorboards_on(folder: Path) -> list[int]:
    """Every live TensorBoard process on this machine serving ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        named = b"tensorboard.main" in argv and str(folder).encode() in argv
        if named and processes.alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def assert_gone(pids: list[int], port: int | None = None, within: float = 10.0) -> float:
    """Every pid ends (and ``port`` is free) within ``within`` seconds; returns how long."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if not any(processes.alive(p) for p in pids) and (
            port is None or processes.port_free(port)
        ):
            return time.monotonic() - start
        time.sleep(0.05)
    left = [p for p in pids if processes.alive(p)]
    raise AssertionError(f"still running after {within:.0f} s: {left}, port {port}")


def owner_script(logdir: Path, port: int, then: str, *, detach: bool = False) -> str:
    return (
        "import sys, labkit\n"
        f"tb = labkit.start_tensorboard({str(logdir)!r}, port={port}, detach={detach})\n"
        "print(tb.pid, tb.port, flush=True)\n" + then
    )


def test_a_script_that_ends_takes_its_tensorboard_with_it(logdir):
    port = processes.find_free_port(6530)
    proc = subprocess.run(
        [sys.executable, "-c", owner_script(logdir, port, "")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    pid, used = map(int, proc.stdout.split())
    assert used == port
    assert_gone([pid], port)
    assert tensorboards_on(logdir) == []
    assert not (processes.registry() / f"{port}.json").exists()


def _cli(logdir: Path, port: int) -> tuple[subprocess.Popen, int]:
    """``python -m labkit tensorboard`` serving ``logdir``, and its TensorBoard's pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "tensorboard", str(logdir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    assert "Press Ctrl-C to stop." in lines[1], lines
    entry = json.loads((processes.registry() / f"{port}.json").read_text())
    assert tensorboards_on(logdir) == [entry["pid"]]
    return proc, entry["pid"]


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name
)
def test_the_command_stops_tensorboard_on_sigterm_and_sighup(logdir, signum):
    port = processes.find_free_port(6540)
    proc, pid = _cli(logdir, port)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum  # 143, 129: as a shell reports a signal
    assert out.strip().splitlines() == [f"{name}: stopping TensorBoard"], out
    assert "Traceback" not in err, err
    assert not processes.alive(pid) and processes.port_free(port)
    assert not (processes.registry() / f"{port}.json").exists()


def test_kill_9_of_the_command_ends_its_tensorboard(logdir):
    port = processes.find_free_port(6550)
    proc, pid = _cli(logdir, port)
    proc.kill()  # SIGKILL: no handler runs, no finally
    proc.communicate(timeout=30)
    assert_gone([pid], port)
    assert tensorboards_on(logdir) == []
    # The watchdog forgets the registry entry too, once the process is gone: the next start
    # finds no stale record.
    entry = processes.registry() / f"{port}.json"
    deadline = time.monotonic() + 5
    while entry.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not entry.exists()


@pytest.mark.slow
def test_a_kernel_shut_down_restarted_or_killed_takes_its_tensorboard_with_it(logdir):
    """The three ways a notebook's kernel ends: one kernel manager, as Jupyter holds it."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel()

    def start_in_kernel(port: int) -> tuple[int, int]:
        client = km.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            code = (
                "import os, labkit\n"
                f"tb = labkit.open_tensorboard({str(logdir)!r}, port={port}, display=False)\n"
                "print('PIDS', os.getpid(), tb.pid)"
            )
            printed = []
            reply = client.execute_interactive(
                code,
                timeout=120,
                output_hook=lambda m: printed.append(m["content"].get("text", "")),
            )
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            client.stop_channels()
        line = next(t for t in "".join(printed).splitlines() if t.startswith("PIDS"))
        kernel_pid, tb_pid = map(int, line.split()[1:])
        assert tensorboards_on(logdir) == [tb_pid]
        return kernel_pid, tb_pid

    try:
        port = processes.find_free_port(6560)
        _, tb = start_in_kernel(port)
        km.restart_kernel(now=True)  # "Restart kernel"
        assert_gone([tb], port)

        kernel, tb = start_in_kernel(port)
        os.kill(kernel, signal.SIGKILL)  # the kernel dies (out of memory, kill -9)
        assert_gone([kernel, tb], port)

        km.restart_kernel(now=True)  # Jupyter's auto-restart after a dead kernel
        _, tb = start_in_kernel(port)
        km.shutdown_kernel()  # "Shut down kernel", or closing the notebook's server
        assert_gone([tb], port)
        assert tensorboards_on(logdir) == []
    finally:
        if km.is_alive():
            km.shutdown_kernel(now=True)


def test_detach_keeps_tensorboard_after_its_owner_until_stopped(logdir):
    port = processes.find_free_port(6570)
    proc = subprocess.run(
        [sys.executable, "-c", owner_script(logdir, port, "", detach=True)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    pid, _ = map(int, proc.stdout.split())
    try:
        time.sleep(1.0)  # as long as a watchdog would take to stop it
        assert processes.alive(pid) and tensorboards_on(logdir) == [pid]
        assert processes.stop_all() == 0  # another notebook's stop_all leaves it alone
        assert processes.alive(pid)
    finally:
        assert processes.stop_all(everyone=True) == 1
    assert_gone([pid], port)


def test_the_ngrok_agent_ends_with_a_killed_owner(tmp_path, logdir):
    """The stand-in agent (tests/standin/ngrok) as pyngrok starts it; its owner is killed."""
    agent = tmp_path / "bin" / "ngrok"
    agent.parent.mkdir()
    agent.write_text(f"#!{sys.executable}\n" + (STANDIN / "ngrok").read_text())
    agent.chmod(0o755)
    record = tmp_path / "ngrok-record.json"
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "PYNGROK_NGROK_PATH": str(agent),
        "STANDIN_NGROK_RECORD": str(record),
        "NGROK_AUTHTOKEN": "2standinTOKEN_0123456789abcdef",
    }
    code = (
        "import sys\n"
        "from labkit.view import open_tunnel\n"
        "t = open_tunnel(6006, auth=False)\n"
        "print('URL', t.public_url, flush=True)\n"
        "sys.stdin.read()\n"
    )
    # Its stderr to a file: the agent inherits it, and a pipe would stay open while it runs.
    errors = open(tmp_path / "owner.err", "w")  # noqa: SIM115 (closed below)
    owner = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        lines = [owner.stdout.readline() for _ in range(2)]  # what open_tunnel says, then ours
        assert lines[1].startswith("URL https://"), (lines, (tmp_path / "owner.err").read_text())
        starts = [e for e in json.loads(record.read_text())["events"] if e["event"] == "start"]
        assert len(starts) == 1
        agent_pid = starts[0]["pid"]
        assert processes.alive(agent_pid)
        owner.kill()  # no atexit: pyngrok's own clean-up does not run
        owner.wait(timeout=30)
        assert_gone([agent_pid])
    finally:
        if owner.poll() is None:
            owner.kill()
        errors.close()


def test_a_stopped_tensorboard_forgets_only_its_own_entry(tmp_path):
    # Once a TensorBoard is gone its port is free; another may take it and write the entry
    # anew before the first one's owner gets round to forgetting it.
    entry = tmp_path / "6540.json"
    entry.write_text(json.dumps({"pid": 222, "port": 6540}))
    processes.forget_entry(entry, 111)
    assert json.loads(entry.read_text())["pid"] == 222
    processes.forget_entry(entry, 222)
    assert not entry.exists()
    processes.forget_entry(entry, 222)  # already gone: nothing to do
    entry.write_text("{not json")
    processes.forget_entry(entry, 222)  # a damaged entry is left to stop_all
    assert entry.exists()

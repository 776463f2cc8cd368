"""TensorBoard against a careless or hostile neighbour: a stale or planted registry entry, a
registry folder another user made or can write to, damaged entries, a damaged projector
config, ports that are not port numbers, and tokens in TensorBoard's environment.

Real files, real processes: TensorBoard itself, a `sleep` standing for an unrelated process
whose pid a registry entry names, and the real watchdog script.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labkit
from labkit import view
from labkit.errors import ConfigError, LabkitError
from labkit.view import processes
from tests.test_mistakes import labkit_cli

TOKEN = "2abcTOKENxyz_do_not_leak_0123456789"
WATCHDOG = Path(processes.__file__).with_name("watchdog.py")


@pytest.fixture
def bystander():
    """An unrelated process of the user's (a long `sleep`), which nothing may kill."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def planted():
    """The registry files a test plants; removed at its end, whatever the kit left."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


def plant(paths: list[Path], folder: Path, port: int, pid: int, logdir: Path, **fields) -> Path:
    """A registry entry for ``port`` as the kit writes one, naming ``pid``: the pid's real
    start time, the owner this process, logs newer than none (so reuse is tempting)."""
    entry = {
        "pid": pid,
        "port": port,
        "host": "127.0.0.1",
        "logdir": str(logdir),
        "started": time.time() + 3600,
        "owner": os.getpid(),
        "detached": False,
        "identity": processes.identity(pid),
        "argv": [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        **fields,
    }
    path = folder / f"{port}.json"
    path.write_text(json.dumps(entry))
    paths.append(path)
    return path


# -- a stale or planted entry ---------------------------------------------------------------


def test_a_planted_entry_gets_no_process_killed_and_no_file_overwritten(
    logdir, bystander, planted, tmp_path
):
    folder = processes.registry()
    port = view.find_free_port(6610)
    # On a free port: an entry naming the bystander as the TensorBoard there, and a link in
    # place of that port's log, to a file of the user's.
    plant(planted, folder, port, bystander.pid, logdir)
    victim = tmp_path / "notes.txt"
    victim.write_bytes(b"a student's notes\n")
    (folder / f"{port}.log").symlink_to(victim)
    planted.append(folder / f"{port}.log")
    server = view.start_tensorboard(logdir, port=port)
    try:
        assert processes.alive(bystander.pid)
        assert victim.read_bytes() == b"a student's notes\n"
        assert not (folder / f"{port}.log").is_symlink()
        assert b"TensorBoard" in (folder / f"{port}.log").read_bytes()
        assert server.port == port and not server.reused and server.pid != bystander.pid

        # On the port of a running TensorBoard: its entry now names the bystander. Reuse
        # must not hand back the bystander's pid to be stopped, nor stop_all stop it.
        plant(planted, folder, port, bystander.pid, logdir, argv=["sleep", "300"])
        again = view.start_tensorboard(logdir, port=port)
        try:
            assert not again.reused and again.pid not in (bystander.pid, server.pid)
            assert again.port != port
        finally:
            again.stop()
        assert processes.alive(bystander.pid) and not processes.alive(again.pid)
        plant(planted, folder, port, bystander.pid, logdir, argv=["sleep", "300"])
        assert view.stop_all() == 0
        assert processes.alive(bystander.pid)
        assert not (folder / f"{port}.json").exists()  # a stale record: forgotten
        assert processes.alive(server.pid)  # not the entry's process: left as it was
    finally:
        server.stop()
    assert processes.alive(bystander.pid)
    assert not processes.alive(server.pid) and processes.port_free(port)


def test_the_watchdog_reads_no_pipe_or_link_planted_as_an_entry(tmp_path, bystander):
    # The watchdog forgets an entry when its process ends; an entry that is a pipe would
    # keep it waiting for ever, and one that is a link is not the kit's.
    pipe, link = tmp_path / "6611.json", tmp_path / "6612.json"
    os.mkfifo(pipe)
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"pid": 4194305}))  # above the highest pid Linux gives
    link.symlink_to(target)
    watchdog = subprocess.Popen([sys.executable, "-I", "-S", str(WATCHDOG)], stdin=subprocess.PIPE)
    try:
        for pid, ident, path in [
            (bystander.pid, "0", pipe),  # a stale record: the pid is another process's now
            (4194305, None, link),
        ]:
            message = {"watch": pid, "identity": ident, "forget": str(path)}
            watchdog.stdin.write((json.dumps(message) + "\n").encode())
        watchdog.stdin.close()  # its owner ends
        assert watchdog.wait(timeout=10) == 0
    finally:
        watchdog.kill()
        watchdog.wait()
    assert processes.alive(bystander.pid)
    assert link.is_symlink() and target.read_text() == json.dumps({"pid": 4194305})


# -- a registry folder that is not the user's own --------------------------------------------


def _registry_folder(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / "registry"
    if kind == "link":
        (tmp_path / "private").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "private")
        return folder
    folder.mkdir()
    if kind == "open":
        os.chmod(folder, 0o777)
    elif kind == "group":
        os.chmod(folder, 0o750)
    elif kind == "another user's":
        os.chmod(folder, 0o700)
        os.chown(folder, 65534, -1)
    return folder


@pytest.mark.parametrize(
    "kind, problem, remedy",
    [
        ("open", "is open to other users (mode 0777)", "make it private (chmod 700 {})"),
        ("group", "is open to other users (mode 0750)", "make it private (chmod 700 {})"),
        (
            "another user's",
            "belongs to another user (uid 65534)",
            "have that user or root remove it",
        ),
        ("link", "is a symbolic link", "remove the link (rm {})"),
    ],
)
def test_a_registry_folder_others_can_reach_is_refused(
    logdir, tmp_path, monkeypatch, bystander, kind, problem, remedy
):
    if kind == "another user's" and os.getuid() != 0:
        pytest.skip("giving a folder to another user takes root")
    folder = _registry_folder(kind, tmp_path)
    port = view.find_free_port(6620)
    # What another user could leave in a folder they made first, or can write to: a link
    # in place of the log of the port asked for, and an entry naming a process of ours.
    victim = tmp_path / "notes.txt"
    victim.write_bytes(b"a student's notes\n")
    (folder / f"{port}.log").symlink_to(victim)
    plant([], folder, port, bystander.pid, logdir)
    monkeypatch.setenv(processes.REGISTRY_VAR, str(folder))
    expected = (
        f"the TensorBoard registry {folder} {problem}, and the kit keeps its records only in "
        f"a folder of your own that nobody else can open (mode 0700): {remedy.format(folder)}, "
        f"or point LABKIT_TENSORBOARD_REGISTRY at a folder of your own"
    )
    with pytest.raises(LabkitError) as info:
        view.start_tensorboard(logdir, port=port)
    assert str(info.value) == expected
    with pytest.raises(LabkitError) as info:
        view.stop_all(everyone=True)
    assert str(info.value) == expected
    result = labkit_cli("tensorboard", str(logdir), "--port", str(port), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, f"error: {expected}\n")
    assert victim.read_bytes() == b"a student's notes\n"
    assert processes.alive(bystander.pid) and processes.port_free(port)


def test_a_missing_registry_folder_is_made_private(tmp_path, monkeypatch):
    folder = tmp_path / "deep" / "registry"
    monkeypatch.setenv(processes.REGISTRY_VAR, str(folder))
    old = os.umask(0)  # the most open umask there is
    try:
        assert processes.registry() == folder
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.getuid()


# -- damaged entries -------------------------------------------------------------------------

DAMAGED = {
    '{"pid": 1}': "no 'port'",
    "[]": "an array, not an object",
    "null": "null, not an object",
    '{"pid": "abc"}': "'pid' is \"abc\"",
    "not json": "not JSON",
}


def test_a_damaged_entry_is_ignored_removed_and_said(logdir, bystander, planted):
    folder = processes.registry()
    paths = [folder / f"{60001 + i}.json" for i in range(len(DAMAGED))]
    for path, text in zip(paths, DAMAGED, strict=True):
        path.write_text(text)
    pipe = folder / "60009.json"  # a pipe under an entry's name: read, it would never end
    os.mkfifo(pipe)
    planted.extend([*paths, pipe])
    port = view.find_free_port(6640)
    with pytest.warns(UserWarning) as caught:
        server = labkit.open_tensorboard(logdir, port=port, display=False)
    try:
        said = [str(w.message) for w in caught]
        for path, problem in zip(
            [*paths, pipe], [*DAMAGED.values(), "not a plain file"], strict=True
        ):
            assert (
                f"{path} is not a TensorBoard registry entry as the kit writes them ({problem}"
            ) in "\n".join(said)
            assert not path.exists()
        assert json.loads(server.get("/data/environment"))["data_location"] == str(logdir)
    finally:
        server.stop()
    assert not processes.alive(server.pid) and processes.port_free(port)
    # stop_all distrusts them alike: a damaged entry naming a live process leaves it be.
    paths[0].write_text(json.dumps({"pid": bystander.pid}))
    with pytest.warns(UserWarning, match=f"{paths[0]} is not a TensorBoard registry entry"):
        assert view.stop_all(everyone=True) == 0
    assert processes.alive(bystander.pid) and not paths[0].exists()


# -- a damaged projector config --------------------------------------------------------------


def test_a_damaged_projector_config_is_named_before_anything_starts(logdir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(logdir, run / "tensorboard")
    config = run / "tensorboard" / "projector_config.pbtxt"
    config.write_text(config.read_text().replace("tensor_shape", "tensor_shap", 1))
    port = view.find_free_port(6650)
    began = time.monotonic()
    result = labkit_cli("tensorboard", str(run), "--port", str(port), cwd=tmp_path)
    took = time.monotonic() - began
    assert result.returncode == 2 and took < 5, (result.stderr, took)
    assert result.stderr == (
        f"error: {config.resolve()} cannot be read as a projector config (line 4, column 3: "
        f'Message type "tensorboard.projector.EmbeddingInfo" has no field named "tensor_shap"), so '
        f"TensorBoard would show no projector: write it again with labkit.write_projector(...) "
        f"(or `python -m labkit run`), or delete it\n"
    )
    config.write_bytes(b'embeddings {\n  tensor_name: "\xff"\n}\n')
    with pytest.raises(LabkitError) as info:
        view.start_tensorboard(run / "tensorboard", port=port)
    assert str(info.value).startswith(f"{config.resolve()} is not UTF-8 text, so TensorBoard")
    assert processes.port_free(port) and not (processes.registry() / f"{port}.json").exists()


# -- ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "port, shown",
    [(0, "0"), ("6006", "'6006' (a str)"), (True, "True (a bool)"), (65536, "65536")]
    + [(-1, "-1"), (6006.0, "6006.0 (a float)")],
)
def test_a_port_that_is_no_port_number_is_refused_at_once(logdir, port, shown):
    for start in (labkit.open_tensorboard, view.start_tensorboard, view.find_free_port):
        began = time.monotonic()
        with pytest.raises(ConfigError) as info:
            if start is view.find_free_port:
                start(port)
            else:
                start(logdir, port=port)
        assert time.monotonic() - began < 2
        name = "start" if start is view.find_free_port else "port"
        assert str(info.value) == f"{name} must be a whole number (an int) in 1..65535, got {shown}"


def test_a_taken_last_port_says_which_ports_were_tried(logdir, tmp_path):
    said = (
        "no free port on 127.0.0.1: tried port 65535, the highest there is; stop the "
        "TensorBoards you no longer need (labkit.view.stop_all()) or choose another port "
        "(port=... in Python, --port on the command line)"
    )
    with socket.socket() as last, socket.socket() as before_last:
        for taken, port in [(last, 65535), (before_last, 65534)]:
            try:
                taken.bind(("127.0.0.1", port))
                taken.listen()
            except OSError:
                pass  # another process has it: the same case
        assert not processes.port_free(65535) and not processes.port_free(65534)
        result = labkit_cli("tensorboard", str(logdir), "--port", "65535", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (2, f"error: {said}\n")
        with pytest.raises(LabkitError) as info:
            view.start_tensorboard(logdir, port=65535)
        assert str(info.value) == said
        with pytest.raises(LabkitError) as info:
            view.find_free_port(65534, tries=50)
        assert "tried ports 65534..65535, the highest there is;" in str(info.value)


# -- tokens ----------------------------------------------------------------------------------


def test_tensorboard_holds_none_of_the_tokens(logdir, monkeypatch):
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-0123")
    monkeypatch.setenv("LABKIT_HOSTILE_MARK", "passed on")
    server = labkit.open_tensorboard(logdir, port=view.find_free_port(6660), display=False)
    try:
        raw = Path(f"/proc/{server.pid}/environ").read_bytes()
        environ = dict(item.split(b"=", 1) for item in raw.split(b"\0") if item)
        assert b"NGROK_AUTHTOKEN" not in environ and b"JUPYTERHUB_API_TOKEN" not in environ
        assert TOKEN.encode() not in raw and b"hub-token-0123" not in raw
        assert environ[b"LABKIT_HOSTILE_MARK"] == b"passed on"  # the rest is passed on
    finally:
        server.stop()
    assert os.environ["NGROK_AUTHTOKEN"] == TOKEN  # the notebook's own is as it was
    assert not processes.alive(server.pid)

"""Serving: a real TensorBoard on loopback; the ngrok path tested up to the service itself.

The ngrok service cannot be reached here, so the tunnel tests replace the one call that
talks to it (``connect``); everything around it runs for real, and the offline download of
the ngrok agent is a real pyngrok attempt against a closed port on loopback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest
from pyngrok import installer
from pyngrok.exception import PyngrokNgrokError, PyngrokNgrokInstallError

import labkit
from labkit import view
from labkit.errors import LabkitError
from labkit.view import processes
from labkit.view import tunnel as tunnel_module

TOKEN = "2abcTOKENxyz_do_not_leak_0123456789"


@pytest.fixture
def logdir(digits_run, tmp_path):
    _, snaps = digits_run
    labkit.write_projector(snaps, tmp_path / "logs", at_epochs=[0, 4])
    return tmp_path / "logs"


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab.userdata", raising=False)


@pytest.fixture
def colab(monkeypatch, no_token):
    """A stand-in for Colab's `google.colab.userdata` (Colab cannot run here)."""
    store: dict[str, str] = {}

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name not in store:
            raise SecretNotFoundError(name)
        return store[name]

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get
    pkg = types.ModuleType("google.colab")
    pkg.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", pkg)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    return store


# -- token sources -----------------------------------------------------------------------


def test_token_precedence_environment_then_colab_secrets(monkeypatch, colab):
    assert view.ngrok_token() is None
    colab["NGROK_AUTHTOKEN"] = "from-colab"
    token = view.ngrok_token()
    assert token.reveal() == "from-colab" and "Colab" in token.source
    monkeypatch.setenv("NGROK_AUTHTOKEN", "from-env")
    assert view.ngrok_token().reveal() == "from-env"
    monkeypatch.setenv("NGROK_AUTHTOKEN", "   ")  # blank counts as unset
    assert view.ngrok_token().reveal() == "from-colab"


def test_a_secret_never_shows_its_value(monkeypatch, no_token):
    import pickle

    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    token = view.ngrok_token()
    assert TOKEN not in repr(token) and TOKEN not in str(token) and TOKEN not in f"{token}"
    with pytest.raises(TypeError):
        pickle.dumps(token)


def test_no_token_message_says_where_to_put_one(no_token):
    with pytest.raises(LabkitError) as info:
        view.open_tunnel(6006, connect=lambda *a: pytest.fail("must not connect"))
    msg = str(info.value)
    assert "NGROK_AUTHTOKEN" in msg and "dashboard.ngrok.com" in msg and "127.0.0.1:6006" in msg


def test_no_token_on_colab_points_at_the_secrets_panel(colab):
    with pytest.raises(LabkitError, match="key icon in the left bar"):
        view.open_tunnel(6006, connect=lambda *a: pytest.fail("must not connect"))


# -- the tunnel ---------------------------------------------------------------------------


def _leak_check(capsys, caplog, home):
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    for path in home.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    assert all(TOKEN not in t for t in texts), "the ngrok token leaked"
    return out


@pytest.fixture
def env_token(monkeypatch, no_token, tmp_path):
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # anything written lands here
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_tunnel_has_basic_auth_and_the_token_goes_only_to_ngrok(env_token, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    calls = []

    def connect(port, token, options):
        calls.append((port, token, options))
        return "http://abcd-1-2-3-4.ngrok-free.app"

    tunnel = view.open_tunnel(6006, connect=connect)
    assert calls[0][0] == 6006 and calls[0][1] == TOKEN
    user, password = calls[0][2]["basic_auth"][0].split(":")
    assert user == "labkit" and len(password) >= 16 and password == tunnel.password
    assert tunnel.public_url == "https://abcd-1-2-3-4.ngrok-free.app"
    out = _leak_check(capsys, caplog, env_token)
    assert out.out.count(password) == 1  # shown once
    assert "https://abcd-1-2-3-4.ngrok-free.app" in out.out
    assert password not in repr(tunnel)


def test_tunnel_without_auth_says_it_is_open(env_token, capsys, caplog):
    tunnel = view.open_tunnel(6006, auth=False, connect=lambda p, t, o: "https://x.ngrok.app")
    assert tunnel.password is None
    assert "anyone with the link" in _leak_check(capsys, caplog, env_token).out


@pytest.mark.parametrize(
    "code, expected",
    [
        ("ERR_NGROK_4018", "not verified"),
        ("ERR_NGROK_108", "another ngrok agent is still running"),
    ],
)
def test_ngrok_errors_become_clear_messages(env_token, capsys, caplog, code, expected):
    def connect(port, token, options):
        # ngrok's own wording, including the token it was given: it must be scrubbed.
        raise PyngrokNgrokError(
            f"The ngrok process errored on start: authentication failed "
            f"for {token}.\\r\\n\\r\\n{code}\\r\\n",
            ngrok_error=code,
        )

    with pytest.raises(LabkitError) as info:
        view.open_tunnel(6006, connect=connect)
    assert expected in str(info.value) and code in str(info.value)
    assert TOKEN not in str(info.value)
    _leak_check(capsys, caplog, env_token)


def test_err_108_with_replace_stops_the_old_agent_and_retries(
    env_token, monkeypatch, capsys, caplog
):
    stopped, attempts = [], []
    monkeypatch.setattr(tunnel_module, "stop_tunnels", lambda: stopped.append(True))

    def connect(port, token, options):
        attempts.append(port)
        if len(attempts) == 1:
            raise PyngrokNgrokError("ERR_NGROK_108: account limited to 1 simultaneous session")
        return "https://second.ngrok.app"

    tunnel = view.open_tunnel(6006, replace=True, connect=connect)
    assert stopped == [True] and len(attempts) == 2
    assert tunnel.public_url == "https://second.ngrok.app"
    _leak_check(capsys, caplog, env_token)


def test_offline_agent_download_is_explained(env_token, monkeypatch, capsys, caplog):
    # The real pyngrok install path, pointed at a closed port on loopback instead of its CDN.
    plat = f"{installer.get_system()}_{installer.get_arch()}"
    monkeypatch.setitem(installer.PLATFORMS, plat, "http://127.0.0.1:9/ngrok.tgz")
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(env_token / "bin" / "ngrok"))
    with pytest.raises(LabkitError) as info:
        view.open_tunnel(6006)
    msg = str(info.value)
    assert "could not download the ngrok agent" in msg and "PYNGROK_NGROK_PATH" in msg
    assert isinstance(info.value.__context__, PyngrokNgrokInstallError)
    assert not (env_token / "bin" / "ngrok").exists()
    _leak_check(capsys, caplog, env_token)


# -- TensorBoard --------------------------------------------------------------------------


def test_port_fallback_when_the_port_is_taken(logdir):
    port = view.find_free_port(6300)  # free ports only: a student's TensorBoard stays alone
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        nxt = view.find_free_port(port)
        assert nxt > port
        server = view.start_tensorboard(logdir, port=port)
        try:
            assert server.port == nxt and not server.reused
            runs = json.loads(server.get("/data/plugin/projector/runs"))
            assert runs == ["."]
        finally:
            server.stop()
    assert not processes.alive(server.pid)


def test_a_port_taken_after_the_check_is_not_mistaken_for_ours(logdir, tmp_path, monkeypatch):
    # Two notebooks (or two test workers) starting TensorBoard at once both see the same port
    # free; one binds it first. The other must not take that TensorBoard for its own: it
    # notices its process could not bind, and starts on the next port.
    other_logs = tmp_path / "other"
    other_logs.mkdir()
    (other_logs / "projector_config.pbtxt").write_text("")
    port = view.find_free_port(6400)
    other = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(other_logs)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while view.find_free_port(port) == port and time.time() < deadline:
            time.sleep(0.2)
        tensorboard = sys.modules["labkit.view.tensorboard"]
        monkeypatch.setattr(tensorboard, "find_free_port", lambda start, host: start)
        server = view.start_tensorboard(logdir, port=port)
        try:
            assert server.port == port + 1
            environment = json.loads(server.get("/data/environment"))
            assert environment["data_location"] == str(logdir.resolve())
        finally:
            server.stop()
    finally:
        other.kill()
        other.wait()


def test_reuse_then_replace_when_logs_change(logdir, digits_run):
    port = view.find_free_port(6310)
    first = view.start_tensorboard(logdir, port=port)
    try:
        again = view.start_tensorboard(logdir, port=port)
        assert again.reused and again.pid == first.pid and again.port == first.port
        time.sleep(1.1)
        _, snaps = digits_run
        labkit.write_projector(snaps, logdir, at_epochs=[2])  # new logs: the old server is stale
        fresh = view.start_tensorboard(logdir, port=port)
        assert not fresh.reused and fresh.pid != first.pid and fresh.port == port
        assert not processes.alive(first.pid)
        info = json.loads(fresh.get("/data/plugin/projector/info?run=."))
        assert len(info["embeddings"]) == 3
        fresh.stop()
    finally:
        first.stop()


def test_a_dead_instance_is_forgotten_and_another_folder_is_replaced(logdir, tmp_path, digits_run):
    port = view.find_free_port(6320)
    server = view.start_tensorboard(logdir, port=port)
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait()
    again = view.start_tensorboard(logdir, port=port)
    try:
        assert not again.reused and again.port == port
        _, snaps = digits_run
        labkit.write_projector(snaps, tmp_path / "other", at_epochs=[0])
        other = view.start_tensorboard(tmp_path / "other", port=port)
        assert other.port == port and not processes.alive(again.pid)
        other.stop()
    finally:
        again.stop()


def test_no_logs_is_a_clear_error(tmp_path):
    with pytest.raises(LabkitError, match="no log folder"):
        view.start_tensorboard(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabkitError, match="write_projector"):
        view.start_tensorboard(tmp_path / "empty")


def test_viewers_off_starts_no_tensorboard_and_still_checks_the_logs(
    logdir, tmp_path, monkeypatch, capsys
):
    """LABKIT_VIEWERS=off (autograding) starts no process and takes no port, in one line."""
    monkeypatch.setenv("LABKIT_VIEWERS", "off")
    port = view.find_free_port(6370)
    before = sorted(view.processes.registry().glob("*.json"))
    assert labkit.open_tensorboard(logdir, port=port) is None
    assert capsys.readouterr().out == (
        f"TensorBoard not started (LABKIT_VIEWERS=off); its logs are in {logdir.resolve()}\n"
    )
    assert sorted(view.processes.registry().glob("*.json")) == before
    assert view.find_free_port(port) == port  # nothing listens there
    with pytest.raises(LabkitError, match="no log folder"):  # a student's mistake still shows
        labkit.open_tensorboard(tmp_path / "missing")
    monkeypatch.setenv("LABKIT_VIEWERS", "no")
    with pytest.raises(LabkitError, match="LABKIT_VIEWERS is 'on' or 'off', not 'no'"):
        labkit.open_tensorboard(logdir, port=port)
    monkeypatch.setenv("LABKIT_VIEWERS", "on")
    server = labkit.open_tensorboard(logdir, port=port, display=False)
    try:
        assert server.port == port and processes.alive(server.pid)
    finally:
        server.stop()


def test_cli_tensorboard_serves_a_run_until_ctrl_c(logdir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    logdir.rename(run / "tensorboard")
    port = view.find_free_port(6330)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "tensorboard", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#projector" in line and "started" in line
        server = view.TensorBoardServer(run / "tensorboard", port, -1)
        info = json.loads(server.get("/data/plugin/projector/info?run=."))
        assert [e["tensorName"] for e in info["embeddings"]] == [
            "01_embed/epoch_00",
            "01_embed/epoch_04",
        ]
        assert "Ctrl-C" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert processes.port_free(port)


# -- where TensorBoard is shown: Colab without a token, a remote Jupyter -------------------------


def _agent(tmp_path) -> str:
    """The stand-in ngrok agent (tests/standin/ngrok), runnable with this Python."""
    from pathlib import Path

    agent = tmp_path / "bin" / "ngrok"
    agent.parent.mkdir(parents=True, exist_ok=True)
    source = (Path(__file__).parent / "standin" / "ngrok").read_text()
    agent.write_text(f"#!{sys.executable}\n{source}")
    agent.chmod(0o755)
    return str(agent)


def test_on_colab_without_a_token_tensorboard_is_inline_and_the_steps_are_printed(
    logdir, standin_colab, capsys
):
    server = labkit.open_tensorboard(logdir, port=view.find_free_port(6340))
    try:
        out = capsys.readouterr().out
        assert server.tunnel is None
        assert "through Colab's own port proxy" in out and "Safari" in out
        assert "1. get a token" in out and "key icon in the left bar" in out
        assert "3. run this cell again" in out
        server.display()  # what the notebook shows (IPython runs the cell there)
        assert standin_colab.output.calls == [
            ("serve_kernel_port_as_iframe", server.port, "/#projector")
        ]
    finally:
        server.stop()


def test_on_colab_a_failing_tunnel_falls_back_to_the_inline_view(
    logdir, standin_colab, monkeypatch, tmp_path, capsys
):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"NGROK_AUTHTOKEN": TOKEN}))
    monkeypatch.setenv("STANDIN_COLAB_SECRETS", str(secrets_file))
    plat = f"{installer.get_system()}_{installer.get_arch()}"  # the agent cannot be fetched
    monkeypatch.setitem(installer.PLATFORMS, plat, "http://127.0.0.1:9/ngrok.tgz")
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(tmp_path / "bin" / "ngrok"))
    monkeypatch.setenv("HOME", str(tmp_path))
    port = view.find_free_port(6350)
    server = labkit.open_tensorboard(logdir, port=port)
    try:
        out = capsys.readouterr().out
        assert server.tunnel is None
        assert "No tunnel: could not download the ngrok agent" in out
        assert "through Colab's own port proxy" in out
        assert "1. get a token" not in out  # the token is there: no need to explain it
        assert TOKEN not in out
        with pytest.raises(LabkitError, match="could not download the ngrok agent"):
            labkit.open_tensorboard(logdir, port=port, tunnel=True)  # insisting is an error
    finally:
        server.stop()


def test_the_agent_gets_the_token_from_its_environment_not_its_command_line(
    env_token, monkeypatch, tmp_path, capsys, caplog
):
    import hashlib

    record = tmp_path / "agent.json"
    monkeypatch.setenv("PYNGROK_NGROK_PATH", _agent(tmp_path))
    monkeypatch.setenv("STANDIN_NGROK_RECORD", str(record))
    try:
        tunnel = view.open_tunnel(6360)
        events = json.loads(record.read_text())["events"]
        start = next(e for e in events if e["event"] == "start")
        # What `ps` shows every user of the machine: the live agent's command line.
        from pathlib import Path

        cmdline = Path(f"/proc/{start['pid']}/cmdline").read_bytes()
        assert b"ngrok" in cmdline and TOKEN.encode() not in cmdline
    finally:
        view.stop_tunnels()
    assert TOKEN not in " ".join(start["argv"])
    assert start["env_token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert tunnel.public_url.startswith("https://") and tunnel.public_url.endswith(
        ".ngrok-free.app"
    )
    assert os.environ["NGROK_AUTHTOKEN"] == TOKEN  # the kernel's own environment as it was
    _leak_check(capsys, caplog, env_token)


def test_jupyter_proxy_url_for_jupyterhub_and_for_no_server(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert view.jupyter_proxy_url(6006) == "/user/ada/proxy/6006/"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/nonexistent")  # no Jupyter server started us
    assert view.jupyter_proxy_url(6006) is None


def test_the_parent_jupyter_server_is_found_without_importing_jupyter_server(tmp_path):
    """A kernel learns its server's base URL from the server's ``jpserver-<pid>.json`` in the
    runtime folder (here this test process stands for the server); other servers' files and
    a half-written one are passed over, and ``jupyter_server`` is never imported (it costs
    two seconds in a student's first TensorBoard cell)."""
    import json
    import os
    import subprocess

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"jpserver-{os.getpid()}.json").write_text(
        json.dumps({"pid": os.getpid(), "base_url": "/lab/ada/", "port": 8888})
    )
    (runtime / "jpserver-1.json").write_text(json.dumps({"pid": 1, "base_url": "/other/"}))
    (runtime / "jpserver-2.json").write_text('{"pid": 2, "base_u')
    code = (
        "import sys; from labkit.view.tensorboard import jupyter_proxy_url; "
        "print(jupyter_proxy_url(6006), 'jupyter_server' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_SERVICE_PREFIX"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "JUPYTER_RUNTIME_DIR": str(runtime)},
    )
    assert out.stdout.split() == ["/lab/ada/proxy/6006/", "False"]


def test_home_is_labkit_home_then_colab_then_the_checkout_then_here(monkeypatch, tmp_path):
    from labkit import paths

    checkout = tmp_path / "labkit-clone"
    (checkout / "labkit").mkdir(parents=True)
    (checkout / "labkit" / "__init__.py").write_text("")
    (checkout / "notebooks" / "student").mkdir(parents=True)
    monkeypatch.delenv("LABKIT_HOME", raising=False)
    monkeypatch.chdir(checkout / "notebooks" / "student")
    assert labkit.home() == checkout and labkit.home("runs", "x") == checkout / "runs" / "x"
    assert labkit.home("/abs/runs") == paths.Path("/abs/runs")
    monkeypatch.chdir(tmp_path)
    assert labkit.home("data") == tmp_path / "data"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert labkit.home("data") == paths.Path("/content/data")
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "class"))
    assert labkit.home("data") == tmp_path / "class" / "data"
    from .fakedata import write_mnist

    write_mnist(tmp_path / "class" / "data", n_train=100, n_test=60)
    data = labkit.load_dataset("mnist", probe_size=20, download=False)  # found via home()
    assert len(data.y_test) == 60

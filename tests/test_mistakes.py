"""Ordinary mistakes, through the real command line and the API: one clear sentence, exit code
2 (130 for Ctrl-C), no traceback, and no run folder lost or mixed with another.

Run folders are compared byte for byte before and after each failed attempt.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import labkit
from labkit import experiment
from labkit.errors import ConfigError, DivergedError, LabkitError, RunExistsError

QUICK = ["--epochs", "1", "--probe-size", "60", "--no-figures", "--no-progress"]


def labkit_process(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m labkit ARGS`` in a process of its own, without an ngrok token."""
    env = {k: v for k, v in os.environ.items() if k != "NGROK_AUTHTOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def labkit_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command line's ``main(ARGS)`` in this process, in ``cwd``, without an ngrok token,
    as ``python -m labkit ARGS`` runs it (``__main__`` is ``sys.exit(main())``), minus a
    second of importing torch. Warnings print as in a fresh process: each one once, to
    stderr. Ctrl-C, signals and servers are tested with :func:`labkit_process`."""
    from labkit import cli

    out, err = io.StringIO(), io.StringIO()
    here, token = os.getcwd(), os.environ.pop("NGROK_AUTHTOKEN", None)

    def show(message, category, filename, lineno, file=None, line=None):
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    try:
        os.chdir(cwd)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            warnings.simplefilter("default")  # a fresh process's filters and registry
            warnings.showwarning = show
            try:
                code = cli.main(list(args))
            except SystemExit as stop:  # argparse's refusals
                code = stop.code
    finally:
        os.chdir(here)
        if token is not None:
            os.environ["NGROK_AUTHTOKEN"] = token
    return subprocess.CompletedProcess(
        ["python", "-m", "labkit", *args], code, out.getvalue(), err.getvalue()
    )


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def assert_one_sentence(proc: subprocess.CompletedProcess, *words: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished run folder that the failed attempts below must leave as it is."""
    root = tmp_path_factory.mktemp("runs")
    proc = labkit_cli("run", "--out", str(root / "digits"), *QUICK, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "digits"


# -- arguments, refused before any data is loaded ---------------------------------------------

BAD_ARGUMENTS = [
    (["--dataset", "blobs", "--model", "cnn"], ["'cnn' model needs images", "the model 'mlp'"]),
    (["--lr", "0"], ["lr, the learning rate,", "finite number > 0"]),
    (["--lr", "nan"], ["lr, the learning rate,", "finite number > 0"]),
    (["--lr=-1e-3"], ["lr, the learning rate,", "finite number > 0"]),
    (["--seed", "-1"], ["seed must be", "from 0 to 2**32 - 1"]),
    (["--device", "foo"], ["unknown device 'foo'", "auto, cpu, cuda"]),
    (["--batch-size", "1"], ["batch_size must be at least 2", "BatchNorm"]),
    (["--epochs", "1.5"], ["--epochs", "must be a whole number, got 1.5"]),
    (["--csv", "x.csv"], ["--csv is for --dataset bbc"]),
    (["--topics", "A,B"], ["--topics is for --dataset wikipedia"]),
]


def test_bad_run_arguments_are_one_sentence_before_any_data_is_loaded(tmp_path):
    # MNIST from an empty folder: had any case got as far as loading data, it would have
    # failed on the missing files instead.
    common = [
        "run",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "out"),
    ]
    for args, words in BAD_ARGUMENTS:
        proc = labkit_cli(*common, *args, cwd=tmp_path)
        assert_one_sentence(proc, *words)
        assert "MNIST" not in proc.stderr, (args, proc.stderr)  # refused before loading
    # Two of them through `python -m labkit` itself, in a process of its own.
    for args, words in (BAD_ARGUMENTS[0], BAD_ARGUMENTS[1]):
        assert_one_sentence(labkit_process(*common, *args, cwd=tmp_path), *words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "empty").exists()


@pytest.mark.parametrize("port", ["0", "70000"])
def test_a_port_out_of_range_is_refused(tmp_path, port):
    proc = labkit_cli("tensorboard", str(tmp_path), "--port", port, cwd=tmp_path)
    assert_one_sentence(proc, "--port", "1..65535")


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("notes")
    proc = labkit_cli("run", "--out", str(tmp_path / "taken"), *QUICK, cwd=tmp_path)
    assert_one_sentence(proc, "is a file, not a folder", "--out")
    assert (tmp_path / "taken").read_text() == "notes"


def test_tunnel_without_a_token_is_refused_before_tensorboard_starts(earlier_run, tmp_path):
    port = labkit.view.find_free_port(6470)
    proc = labkit_cli(
        "tensorboard", str(earlier_run), "--tunnel", "--port", str(port), cwd=tmp_path
    )
    assert_one_sentence(proc, "no ngrok token found", "NGROK_AUTHTOKEN")
    assert labkit.view.processes.port_free(port)  # nothing was started


# -- run folders are written as one unit ---------------------------------------------------------


def test_an_existing_run_is_refused_without_overwrite(earlier_run):
    before = contents(earlier_run)
    proc = labkit_cli("run", "--out", str(earlier_run), *QUICK, cwd=earlier_run.parent)
    assert_one_sentence(proc, "already holds a run", "--overwrite")
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def test_overwrite_replaces_the_run_whole(tmp_path):
    out = tmp_path / "run"
    assert labkit_cli("run", "--out", str(out), *QUICK, cwd=tmp_path).returncode == 0
    old_events = {p.name for p in (out / "tensorboard").glob("events.out.tfevents.*")}
    proc = labkit_cli("run", "--out", str(out), "--overwrite", "--seed", "1", *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Nothing of the old run is listed beside the new: its event file (named by the time
    # and the process) is gone, and the folder holds exactly what the new manifest lists.
    new_events = {p.name for p in (out / "tensorboard").glob("events.out.tfevents.*")}
    assert len(new_events) == 1 and not new_events & old_events
    manifest = json.loads((out / ".labkit-run.json").read_text())
    listed = {p.relative_to(out).as_posix() for p in out.rglob("*")} - {".labkit-run.json"}
    assert listed == set(manifest["files"])
    assert labkit.Snapshots.load(out).meta["seed"] == 1
    assert leftovers(tmp_path) == []


def test_divergence_stops_training_and_writes_nothing(earlier_run):
    before = contents(earlier_run)
    proc = labkit_cli(
        "run",
        "--out",
        str(earlier_run),
        "--overwrite",
        "--lr",
        "1e6",
        *QUICK,
        cwd=earlier_run.parent,
    )
    assert_one_sentence(
        proc, "training diverged at epoch 1 (loss nan)", "lower learning rate", "--lr"
    )
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        (signal.SIGINT, "interrupted: nothing was written"),
        (signal.SIGTERM, "SIGTERM: nothing was written"),  # kill, a scheduler's timeout
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_during_training_keeps_the_earlier_run(earlier_run, signum, said):
    before = contents(earlier_run)
    env = {k: v for k, v in os.environ.items() if k != "NGROK_AUTHTOKEN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "run",
            "--out",
            str(earlier_run),
            "--overwrite",
            "--epochs",
            "200",
            "--no-figures",
        ],
        cwd=earlier_run.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The progress bar on stderr shows when training is under way.
    deadline = time.time() + 120
    seen = ""
    while "epoch" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err  # 130, 143
    assert "Traceback" not in err and said in err
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def _fail_in(monkeypatch, target: str, error: BaseException):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(experiment, target, fail)


@pytest.mark.parametrize(
    "target, error",
    [
        ("write_mantis_csv", KeyboardInterrupt()),  # Ctrl-C while the run folder is written
        ("write_projector", OSError(28, "No space left on device", "tensorboard/x.bin")),
        # A read-only sub-folder (root, who runs CI, may write anywhere: the refusal is patched in).
        ("write_figures", PermissionError(13, "Permission denied", "figures/epoch_grid.png")),
    ],
)
def test_a_failure_while_writing_keeps_the_earlier_run(earlier_run, monkeypatch, target, error):
    before = contents(earlier_run)
    _fail_in(monkeypatch, target, error)
    with pytest.raises(type(error)):
        experiment.run(
            "digits",
            epochs=1,
            probe_size=60,
            out=earlier_run,
            overwrite=True,
            figures=target == "write_figures",
            progress=False,
        )
    assert contents(earlier_run) == before
    assert leftovers(earlier_run.parent) == []


def test_disk_full_on_the_command_line_names_the_file(tmp_path, monkeypatch):
    _fail_in(
        monkeypatch, "write_mantis_csv", OSError(28, "No space left on device", "runs/x/mantis.csv")
    )
    proc = labkit_cli("run", "--out", str(tmp_path / "x"), *QUICK, cwd=tmp_path)
    assert_one_sentence(proc, "No space left on device", "runs/x/mantis.csv")
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


# -- the same checks in the Python API -----------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    data = labkit.load_dataset("digits", probe_size=60)
    return data, labkit.build_model("cnn", data.input_shape, data.n_classes)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"epochs": 1.5}, "epochs must be a whole number >= 0, got 1.5"),
        ({"epochs": -1}, "epochs must be a whole number >= 0, got -1"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
        ({"batch_size": 1}, "BatchNorm"),
        (
            {"lr": 0.0},
            "the learning rate, must be a finite number > 0 and at most 3.4e+38 "
            "(the largest float32), got 0.0",
        ),
        (
            {"lr": math.inf},
            "the learning rate, must be a finite number > 0 and at most 3.4e+38 "
            "(the largest float32), got inf",
        ),
        ({"seed": -3}, "seed must be a whole number from 0 to 2**32 - 1, got -3"),
        ({"device": "foo"}, "unknown device 'foo'"),
    ],
)
def test_train_refuses_bad_arguments(small, kwargs, words):
    data, model = small
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        labkit.train(model, data, progress=False, **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LabkitError)


def test_train_refuses_more_classes_than_the_head_has(small):
    data, _ = small
    model = labkit.build_model("cnn", data.input_shape, 5)
    with pytest.raises(ConfigError, match="the data has 10 classes but the model's head has 5"):
        labkit.train(model, data, progress=False)


def test_train_stops_on_divergence(small):
    data, _ = small
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    with pytest.raises(DivergedError, match=r"training diverged at epoch 1 \(loss nan\)"):
        labkit.train(model, data, epochs=3, lr=1e6, progress=False)


def test_run_refuses_an_existing_folder_in_python(earlier_run):
    with pytest.raises(RunExistsError, match="overwrite=True") as info:
        experiment.run("digits", epochs=1, out=earlier_run, progress=False)
    assert isinstance(info.value, FileExistsError)


def test_errors_show_as_one_line_in_jupyter():
    err = ConfigError("the learning rate must be a finite number > 0, got 0")
    assert err._render_traceback_() == [
        "ConfigError: the learning rate must be a finite number > 0, got 0"
    ]


# -- BBC-style CSVs with other column names -----------------------------------------------------


def test_other_csv_columns_are_named_with_flags(tmp_path):
    from .mediawiki import write_news_csv

    rows = write_news_csv(tmp_path / "std.csv", per_section=30)
    with open(tmp_path / "news.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["section", "body"])
        writer.writerows(rows)
    proc = labkit_cli(
        "run",
        "--dataset",
        "bbc",
        "--csv",
        str(tmp_path / "news.csv"),
        "--out",
        str(tmp_path / "bbc"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_one_sentence(
        proc, "has no column 'text', 'category'", "--text-column NAME", "--label-column NAME"
    )
    proc = labkit_cli(
        "run",
        "--dataset",
        "bbc",
        "--csv",
        str(tmp_path / "news.csv"),
        "--text-column",
        "body",
        "--label-column",
        "section",
        "--out",
        str(tmp_path / "bbc"),
        *QUICK,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(labkit.Snapshots.load(tmp_path / "bbc").class_names) == sorted(
        {section for section, _ in rows}
    )


# -- small probe sets ----------------------------------------------------------------------------


def test_a_tiny_probe_set_reports_missing_metrics_and_still_draws(tmp_path):
    import json

    proc = labkit_cli(
        "run",
        "--out",
        str(tmp_path / "tiny"),
        "--probe-size",
        "5",
        "--epochs",
        "1",
        "--no-progress",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        "warning: 5 probe points in 5 classes are too few for knn_acc, linear_probe_acc, "
        "nc1, silhouette: reported as missing"
    ) in proc.stderr
    geometry = json.loads((tmp_path / "tiny" / "summary.json").read_text())["geometry"]
    assert all(row["silhouette"] is None and row["nc1"] is None for row in geometry)
    assert all(row["nc2_mean_cosine"] is not None for row in geometry)  # what can be, is
    for name in ("epoch_grid.png", "metric_curves.png", "epochs.gif"):
        assert (tmp_path / "tiny" / "figures" / name).stat().st_size > 1000


def test_a_probe_larger_than_the_test_split_says_what_it_became(tmp_path):
    proc = labkit_cli(
        "run",
        "--out",
        str(tmp_path / "big"),
        "--probe-size",
        "5000",
        *QUICK[:2],
        "--no-figures",
        "--no-progress",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: probe size 5000 is more than the 450 test samples of digits: the probe "
        "set is all 450 of them"
    ) in proc.stderr
    assert labkit.Snapshots.load(tmp_path / "big").n_probe == 450


# -- corrupt local data and caches ----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_mnist_file_is_named(tmp_path, damage):
    from .fakedata import write_mnist

    write_mnist(tmp_path / "data", n_train=60, n_test=30)
    bad = tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:1000] if damage == "truncate" else b"<html>oops</html>")
    proc = labkit_cli(
        "run",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_one_sentence(proc, str(bad), "not a usable MNIST file", "delete it to download again")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_cifar_batch_is_named(tmp_path, damage):
    from .fakedata import write_cifar10

    write_cifar10(tmp_path / "data", per_batch=10, n_test=20)
    bad = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:200] if damage == "truncate" else b"not a pickle")
    proc = labkit_cli(
        "run",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_one_sentence(proc, str(bad), "is damaged", "delete it to download again")


@pytest.fixture
def http_files(tmp_path):
    """A loopback web server for the files in ``tmp_path / "www"``."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    "body, words",
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "is a web page, not a CSV"),
        (b"headline,section\nA day,news\n", "has no column 'text', 'category'"),
    ],
)
def test_a_bad_bbc_download_is_not_cached(tmp_path, http_files, body, words):
    root, url = http_files
    (root / "bbc-text.csv").write_bytes(body)
    proc = labkit_cli(
        "run",
        "--dataset",
        "bbc",
        "--csv",
        f"{url}/bbc-text.csv",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_one_sentence(proc, words, "--")
    assert not (tmp_path / "data" / "bbc-text.csv").exists()  # the next run downloads again


def test_a_class_with_one_row_is_named_before_the_split(tmp_path):
    from .mediawiki import write_news_csv

    write_news_csv(tmp_path / "news.csv", per_section=20)
    with open(tmp_path / "news.csv", "a", encoding="utf-8") as f:
        f.write("weather,Rain again today in the north\n")
    proc = labkit_cli(
        "run",
        "--dataset",
        "bbc",
        "--csv",
        str(tmp_path / "news.csv"),
        "--out",
        str(tmp_path / "out"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_one_sentence(proc, "'weather' (1)", "fewer than 2 samples")


def test_wikipedia_caches_damaged_shared_or_from_elsewhere(tmp_path, capsys):
    from labkit.data.wikipedia import WikipediaClient, _topic_dir, fetch_wikipedia

    from .mediawiki import FakeWiki

    topics = ["Astronomy", "Cooking"]
    with FakeWiki(topics=topics, per_topic=20) as wiki:
        fetch_wikipedia(topics, tmp_path, per_topic=20, api_url=wiki.url, verbose=False)
        root = tmp_path / "wikipedia_articles"
        (_topic_dir(root, "Cooking") / "index.json").write_text("{not json")  # damaged
        (root / "index.json").write_text("[1, 2")
        before = len(wiki.log)
        again = fetch_wikipedia(topics, tmp_path, per_topic=20, api_url=wiki.url, verbose=False)
        assert len(wiki.log) > before and len(again["Cooking"]) > 10  # refetched, no crash
    # Topics that differ only in punctuation or script get folders of their own.
    names = ["C", "C++", "Математика", "物理学"]
    assert len({_topic_dir(root, t) for t in names}) == 4
    # An article folder another course's notebook saved (<Topic>/<Title>.txt, first line
    # "Title: ..."), no index: read as it is, with no network at all.
    for topic in ("Jazz", "Opera"):
        folder = tmp_path / "mit" / "wikipedia_articles" / topic
        folder.mkdir(parents=True)
        for i in range(12):
            (folder / f"{topic} piece {i}.txt").write_text(
                f"Title: {topic} piece {i}\n\n{topic} " + "music " * 40, encoding="utf-8"
            )
    closed = WikipediaClient(api_url="http://127.0.0.1:9/api.php", retries=0)
    arts = fetch_wikipedia(["Jazz", "Opera"], tmp_path / "mit", client=closed, verbose=False)
    assert [a["title"] for a in arts["Jazz"]][:2] == ["Jazz piece 0", "Jazz piece 1"]
    assert arts["Opera"][0]["text"].startswith("Opera music")
    assert closed.requests_made == 0


@pytest.mark.parametrize(
    "reply, words",
    [
        ([1, 2, 3], "with a JSON list, not an object"),
        ({"error": "nope"}, "refused the search for 'Astronomy': nope"),
        ({"query": {"search": [{"title": "No id"}]}}, "results that are not pages"),
    ],
)
def test_a_mediawiki_answer_of_the_wrong_shape_is_a_clear_error(reply, words):
    from labkit.data import DataError
    from labkit.data.wikipedia import WikipediaClient

    from .mediawiki import FakeWiki

    with FakeWiki(topics=["Astronomy"], per_topic=5) as wiki:
        wiki.faults.append(("reply", reply))
        with pytest.raises(DataError, match=words.replace("(", r"\(").replace("'", ".")):
            WikipediaClient(api_url=wiki.url).search("Astronomy", 5)


def test_retries_say_what_they_wait_for(capsys):
    from labkit.data import DataError
    from labkit.data.wikipedia import WikipediaClient

    waits = []
    client = WikipediaClient(
        api_url="http://127.0.0.1:9/api.php", retries=2, backoff=1.0, sleep=waits.append
    )
    with pytest.raises(DataError, match="failed 3 times"):
        client.search("Astronomy", 5)
    err = capsys.readouterr().err
    assert waits == [1.0, 2.0]
    assert (
        "waiting 1 s before asking http://127.0.0.1:9/api.php again for the search for "
        "'Astronomy' (attempt 2 of 3; last: ConnectionError" in err
    )
    assert "waiting 2 s" in err


# -- reading snapshots and Mantis CSVs back ------------------------------------------------------


@pytest.fixture
def saved(small, tmp_path):
    data, model = small
    snaps = labkit.train(model, data, epochs=1, progress=False)
    snaps.save(tmp_path / "a")
    return snaps, tmp_path / "a"


def test_damaged_snapshots_name_the_file(saved, tmp_path):
    import json

    from labkit.snapshots import SnapshotsError

    snaps, folder = saved
    arrays, meta = (folder / "arrays.npz").read_bytes(), (folder / "meta.json").read_text()
    (folder / "arrays.npz").write_bytes(arrays[: len(arrays) // 2])
    with pytest.raises(SnapshotsError, match=r"arrays\.npz is damaged"):
        labkit.Snapshots.load(folder)
    (folder / "arrays.npz").write_bytes(arrays)
    (folder / "meta.json").write_text(meta[:100])
    with pytest.raises(SnapshotsError, match=r"meta\.json is damaged"):
        labkit.Snapshots.load(folder)
    (folder / "meta.json").write_text(meta)
    snaps.save(tmp_path / "b")  # a second save: its arrays do not belong to the first's meta
    (folder / "arrays.npz").write_bytes((tmp_path / "b" / "arrays.npz").read_bytes())
    with pytest.raises(SnapshotsError, match="come from two different saves"):
        labkit.Snapshots.load(folder)
    (folder / "arrays.npz").write_bytes(arrays)
    short = json.loads(meta)
    short["history"] = short["history"][:-1]
    (folder / "meta.json").write_text(json.dumps(short))
    with pytest.raises(SnapshotsError, match="history of 1 epochs for 2 snapshots"):
        labkit.Snapshots.load(folder)
    (folder / "meta.json").write_text(meta)
    assert labkit.Snapshots.load(folder).equals(snaps)


def test_equals_ignores_how_long_epochs_took(saved):
    import copy

    snaps, _ = saved
    other = copy.deepcopy(snaps)
    other.history[1]["seconds"] += 5.0
    assert snaps.equals(other)
    other.history[1]["test_acc"] += 0.01
    assert not snaps.equals(other)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda t: t.replace('"[', '"[NaN, ', 1),
            r"line 2, column \d+ .*NaN is not a finite number",
        ),
        (lambda t: t.replace('"[', '"[Infinity, ', 1), r"line 2, column \d+ .*Infinity"),
        (lambda t: t.replace('"[', '"[true, ', 1), r"line 2, column \d+ .*not a list of numbers"),
        (
            lambda t: t.replace("embedding_epoch_1", "embedding_epoch_x"),
            r"line 1: expected columns",
        ),
        (
            lambda t: t.replace("embedding_epoch_1", "embedding_epoch_01"),
            r"line 1: expected columns",
        ),
    ],
)
def test_mantis_reader_rejects_what_is_not_a_float32_list(saved, tmp_path, edit, words):
    from labkit.export.mantis import MantisFormatError

    snaps, _ = saved
    path = labkit.write_mantis_csv(snaps, tmp_path / "m.csv")
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(MantisFormatError, match=words):
        labkit.read_mantis_csv(path)


def test_mantis_reader_names_a_byte_that_is_not_utf8_and_keeps_negative_zero(saved, tmp_path):
    import numpy as np

    from labkit.export.mantis import MantisFormatError

    snaps, _ = saved
    snaps.embeddings[snaps.penultimate][1, 0, :2] = [-0.0, 0.0]
    path = labkit.write_mantis_csv(snaps, tmp_path / "m.csv")
    back = labkit.read_mantis_csv(path).embeddings
    assert np.signbit(back[1, 0, 0]) and not np.signbit(back[1, 0, 1])
    raw = path.read_bytes()
    second = raw.index(b"\n") + 1
    path.write_bytes(raw[: second + 3] + b"\xff" + raw[second + 3 :])
    with pytest.raises(MantisFormatError, match=r"line 2, column 4: not UTF-8 \(byte 0xff\)"):
        labkit.read_mantis_csv(path)


# -- TensorBoard ---------------------------------------------------------------------------------


def test_the_port_actually_used_is_printed(earlier_run, tmp_path):
    import socket

    port = labkit.view.find_free_port(6480)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        proc = subprocess.Popen(
            [sys.executable, "-m", "labkit", "tensorboard", str(earlier_run), "--port", str(port)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            assert f"http://127.0.0.1:{port + 1}/#projector" in line, line
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_ctrl_c_while_tensorboard_starts_leaves_no_orphan(earlier_run, tmp_path):
    port = labkit.view.find_free_port(6490)
    registry = Path(os.environ[labkit.view.processes.REGISTRY_VAR])
    (registry / f"{port}.log").unlink(missing_ok=True)  # a log from an earlier test would do
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "tensorboard", str(earlier_run), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (registry / f"{port}.log").exists() and time.time() < deadline:
        time.sleep(0.05)  # TensorBoard's process exists from here on, not yet serving
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: TensorBoard was stopped" in err
    assert "Traceback" not in err and "Press Ctrl-C" not in out
    time.sleep(0.5)
    assert labkit.view.processes.port_free(port) and not (registry / f"{port}.json").exists()


def test_another_notebooks_tensorboard_is_left_alone(earlier_run, tmp_path):
    """Two kernels, as two notebooks: what one stops or replaces is only its own."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(earlier_run / "tensorboard", other / "tensorboard")
    port = labkit.view.find_free_port(6500)
    code = (
        "import sys, time, labkit\n"
        f"tb = labkit.start_tensorboard({str(earlier_run / 'tensorboard')!r}, port={port})\n"
        "print(tb.port, tb.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )  # keeps running, as an open notebook does
    kernel = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        their_port, their_pid = map(int, kernel.stdout.readline().split())
        assert their_port == port
        assert labkit.view.stop_all() == 0  # this "notebook" started nothing
        assert labkit.view.processes.alive(their_pid)
        mine = labkit.start_tensorboard(other / "tensorboard", port=port)
        assert mine.port != port and labkit.view.processes.alive(their_pid)
        assert labkit.view.stop_all() == 1 and not labkit.view.processes.alive(mine.pid)
        assert labkit.view.processes.alive(their_pid)
    finally:
        kernel.stdin.close()
        kernel.wait(timeout=30)
    # The other kernel's TensorBoard ended with it, and its registry entry with it.
    deadline = time.time() + 10
    while labkit.view.processes.alive(their_pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not labkit.view.processes.alive(their_pid)
    assert labkit.view.stop_all(everyone=True) == 0

"""The text track against a real HTTP server on loopback standing in for the MediaWiki API."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import labkit
from labkit.data import DataError
from labkit.data.bbc import load_bbc_csv
from labkit.data.wikipedia import WikipediaClient, fetch_wikipedia
from labkit.experiment import run

from .mediawiki import FakeWiki, write_news_csv
from .test_mistakes import labkit_cli

TOPICS = ["Astronomy", "Cooking", "Basketball"]


def test_batches_continuation_user_agent_and_the_shared_article_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_WIKI_CONTACT", "teacher@example.edu")
    with FakeWiki(per_topic=60) as wiki:
        arts = fetch_wikipedia(TOPICS, tmp_path, per_topic=60, api_url=wiki.url, verbose=False)
    searches = [r["params"] for r in wiki.log if r["params"].get("list") == "search"]
    extracts = [r["params"] for r in wiki.log if r["params"].get("prop") == "extracts"]
    # 60 results at 50 a page: two search calls a topic, the second continuing at 50.
    assert [s["srsearch"] for s in searches] == [t for t in TOPICS for _ in (0, 1)]
    assert [s.get("sroffset") for s in searches[:2]] == [None, "50"]
    # Extracts: batches of at most 50 ids; each batch continues 20 intros at a time.
    assert all(len(e["pageids"].split("|")) <= 50 for e in extracts)
    assert {e["pageids"].count("|") + 1 for e in extracts} == {50, 10}
    assert [e.get("excontinue") for e in extracts[:3]] == [None, "20", "40"]
    assert all(r["params"]["maxlag"] == "5" and r["params"]["format"] == "json" for r in wiki.log)
    agents = {r["user_agent"] for r in wiki.log}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith("labkit/") and "teacher@example.edu" in agent
    # Stubs (8 words) are dropped; the article both topics return stays only under Cooking,
    # whose search ranked it higher (2nd against 40th).
    titles = {t: [a["title"] for a in arts[t]] for t in TOPICS}
    assert "Space food" in titles["Cooking"] and "Space food" not in titles["Astronomy"]
    # The first 60 hits of Astronomy and Cooking hold the shared article and 59 of their own
    # (3 stubs among them); Basketball's are 60 of its own: 56, 56 + 1 shared, 57.
    assert [len(arts[t]) for t in TOPICS] == [56, 57, 57]
    assert all(len(a["text"]) >= 200 for t in TOPICS for a in arts[t])


def test_the_cache_serves_a_second_run_with_the_server_stopped(tmp_path, capsys):
    with FakeWiki(per_topic=30) as wiki:
        first = fetch_wikipedia(TOPICS, tmp_path, per_topic=30, api_url=wiki.url)
        url, n_requests = wiki.url, len(wiki.log)
    report = capsys.readouterr().out
    assert "kept" in report and "Astronomy" in report
    assert n_requests > 0
    cache = tmp_path / "wikipedia_articles"
    # One readable folder per topic (plus a hash of the exact topic, so none are shared).
    names = sorted(p.name for p in cache.iterdir())
    assert [n.rsplit("-", 1)[0] for n in names] == [
        "astronomy",
        "basketball",
        "cooking",
        "index.json",
    ]
    index = json.loads((cache / "index.json").read_text())
    assert index["topics"]["Cooking"]["articles"] == 30  # every hit is cached, stubs too
    folder = index["topics"]["Cooking"]["folder"]
    assert folder.startswith("cooking-") and folder in names
    kept = first["Cooking"][0]
    cached = (cache / folder / f"{kept['pageid']}.txt").read_text(encoding="utf-8")
    assert cached == kept["text"]
    # The server is gone: the same call must not touch the network.
    client = WikipediaClient(api_url=url, retries=0)
    again = fetch_wikipedia(TOPICS, tmp_path, per_topic=30, api_url=url, client=client)
    assert again == first and client.requests_made == 0


def test_retry_after_a_429_honours_the_header(tmp_path):
    with FakeWiki(per_topic=12) as wiki:
        wiki.faults.append(("429", 1))
        wiki.faults.append(("maxlag",))
        client = WikipediaClient(api_url=wiki.url, backoff=0.01)
        started = time.perf_counter()
        arts = fetch_wikipedia(
            TOPICS, tmp_path, per_topic=12, min_per_topic=5, client=client, verbose=False
        )
        elapsed = time.perf_counter() - started
    assert elapsed >= 1.0  # it waited the server's Retry-After, not its own 0.01 s backoff
    statuses = [r["params"].get("srsearch") for r in wiki.log[:3]]
    assert statuses == ["Astronomy"] * 3  # 429, then maxlag, then the answer
    assert len(arts["Astronomy"]) == 9


def test_repeated_5xx_ends_in_a_clear_error(tmp_path):
    with FakeWiki() as wiki:
        wiki.always_503 = True
        client = WikipediaClient(api_url=wiki.url, retries=2, backoff=0.01)
        with pytest.raises(DataError) as info:
            fetch_wikipedia(TOPICS, tmp_path, client=client)
    msg = str(info.value)
    assert "failed 3 times" in msg and "HTTP 503" in msg and "'Astronomy'" in msg
    assert "cached" in msg and len(wiki.log) == 3


def test_a_reply_that_is_not_json_is_reported(tmp_path):
    with FakeWiki() as wiki:
        wiki.faults.append(("junk",))
        with pytest.raises(DataError, match=r"not JSON.*<html><body>Wikimedia Error.*api\.php"):
            fetch_wikipedia(TOPICS, tmp_path, api_url=wiki.url, verbose=False)


def test_a_topic_with_no_results_or_too_few_articles(tmp_path):
    with FakeWiki() as wiki, pytest.raises(DataError, match="'Knitting' found no articles"):
        fetch_wikipedia(["Astronomy", "Knitting"], tmp_path, api_url=wiki.url, verbose=False)
    with (
        FakeWiki(per_topic=8, short=3) as wiki,
        pytest.raises(DataError, match=r"too few usable articles.*'Astronomy': 5"),
    ):
        fetch_wikipedia(TOPICS, tmp_path / "b", per_topic=8, api_url=wiki.url, verbose=False)
    with pytest.raises(DataError, match="at least two topics"):
        fetch_wikipedia(["Astronomy"], tmp_path)


def test_wikipedia_data_set_features_titles_and_snippets(tmp_path):
    with FakeWiki(per_topic=40) as wiki:
        data = labkit.load_dataset(
            "wikipedia",
            data_dir=tmp_path,
            topics=TOPICS,
            api_url=wiki.url,
            per_topic=40,
            probe_size=30,
        )
    assert data.kind == "text" and data.class_names == TOPICS
    n = len(data.y_train) + len(data.y_test)
    assert n == 36 + 37 + 37 and abs(len(data.y_test) - 0.3 * n) <= 1
    # TF-IDF rows have unit length; the vocabulary came from the training split only.
    norms = np.linalg.norm(data.x_train.numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert data.info["vocabulary"] == data.x_train.shape[1] <= 5000
    assert all(t.split(" article ")[0] in TOPICS or t == "Space food" for t in data.titles)
    assert all(len(s) <= 151 for s in data.snippets) and data.snippets[0][0].isupper()
    assert len(data.titles) == len(data.snippets) == 30


@pytest.mark.slow
def test_end_to_end_three_topics_to_mantis_csv(tmp_path):
    with FakeWiki(per_topic=50) as wiki:
        result = run(
            "wikipedia",
            epochs=8,
            out=tmp_path / "run",
            data_dir=tmp_path / "data",
            topics=TOPICS,
            api_url=wiki.url,
            per_topic=50,
            progress=False,
        )
    snaps = result.snapshots
    assert snaps.epochs == 8 and snaps.layer().shape[0] == 9
    accuracy = snaps.history[-1]["test_acc"]
    # Topics with their own vocabularies: a working pipeline separates them almost perfectly.
    assert accuracy >= 0.9, accuracy
    table = labkit.read_mantis_csv(tmp_path / "run" / "mantis.csv")
    assert table.titles == snaps.titles and table.categories[0] in TOPICS
    assert table.columns["snippet"] == snaps.snippets and table.columns["snippet"][0]
    assert table.embeddings.shape == snaps.layer().shape


@pytest.mark.slow
def test_cli_with_topics_and_api_url(tmp_path):
    """``python -m labkit run --dataset wikipedia ...``, as its main() (the command itself runs
    in tests/test_cli.py)."""
    with FakeWiki(per_topic=30) as wiki:
        proc = labkit_cli(
            "run",
            "--dataset",
            "wikipedia",
            "--topics",
            ",".join(TOPICS),
            "--api-url",
            wiki.url,
            "--epochs",
            "3",
            "--out",
            str(tmp_path / "run"),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-progress",
            cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr
    assert "kept" in proc.stdout and "Trained mlp on wikipedia" in proc.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["class_names"] == TOPICS and len(summary["history"]) == 4


def test_bbc_csv_loader_and_bad_csvs(tmp_path):
    path = tmp_path / "bbc-text.csv"
    rows = write_news_csv(path, shuffle=True)
    texts, labels = load_bbc_csv(path)
    assert texts == [t for _, t in rows] and labels == [c for c, _ in rows]
    data = labkit.load_dataset("bbc", csv=str(path), probe_size=20)
    assert data.kind == "text" and data.class_names == ["food", "sport", "tech"]
    assert len(data.titles) == 20 and all(len(t) <= 61 for t in data.titles)
    # Each snippet is the start of its text, cut at a word boundary.
    assert all(any(t.startswith(sn.rstrip("…")) for t in texts) for sn in data.snippets)

    bad = tmp_path / "bad.csv"
    bad.write_text("label,body\nx,some text\ny,more text\n")
    with pytest.raises(DataError) as info:
        load_bbc_csv(bad)
    assert "no column 'text', 'category'" in str(info.value)
    assert "'label', 'body'" in str(info.value) and "text_column=" in str(info.value)
    texts, labels = load_bbc_csv(bad, text_column="body", label_column="label")
    assert labels == ["x", "y"]
    with pytest.raises(DataError, match="no CSV at"):
        load_bbc_csv(tmp_path / "missing.csv")


def test_wikipedia_without_download_reads_the_cache_and_asks_the_network_nothing(tmp_path):
    with FakeWiki(per_topic=40) as wiki:
        options = {"topics": TOPICS, "api_url": wiki.url, "per_topic": 40, "probe_size": 30}
        with pytest.raises(DataError, match=r"not in the cache .*download=False"):
            labkit.load_dataset("wikipedia", data_dir=tmp_path, download=False, **options)
        assert wiki.log == []  # not one request
        fetched = labkit.load_dataset("wikipedia", data_dir=tmp_path, **options)
        asked = len(wiki.log)
        cached = labkit.load_dataset("wikipedia", data_dir=tmp_path, download=False, **options)
        assert len(wiki.log) == asked > 0
    assert (
        np.array_equal(cached.x_train.numpy(), fetched.x_train.numpy())
        and cached.titles == fetched.titles
    )

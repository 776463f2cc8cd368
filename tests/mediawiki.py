"""A small MediaWiki API on 127.0.0.1: ``list=search`` with continuation, ``prop=extracts``
with the real limits (50 page ids a request, 20 intros a reply, ``excontinue``), and faults
on demand (429 with Retry-After, 503s, maxlag, a reply that is not JSON).

The articles are synthetic but learnable: each topic has its own vocabulary.
"""

from __future__ import annotations

import csv
import json
import random
import threading
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VOCAB = {
    "Astronomy": "star galaxy planet telescope orbit nebula comet asteroid cosmos supernova "
    "astronomer moon solar eclipse redshift quasar constellation gravity".split(),
    "Cooking": "recipe oven flavour sauce simmer bake dough spice kitchen chef roast garlic "
    "butter saucepan grill pastry knead seasoning".split(),
    "Basketball": "basket dribble rebound court hoop dunk playoff guard forward coach league "
    "jump shot foul tournament assist referee".split(),
    "Volcanoes": "lava magma eruption crater ash caldera volcanic basalt pyroclastic vent "
    "tectonic summit lahar obsidian fumarole plume".split(),
}
COMMON = (
    "the of and in a is was to for with as by on that from its it are were an this has "
    "which also first known other many been most between during after such"
).split()


def make_article(topic: str, rng: random.Random, words: int) -> str:
    vocab = VOCAB[topic]
    out = [rng.choice(vocab) if rng.random() < 0.45 else rng.choice(COMMON) for _ in range(words)]
    text = " ".join(out)
    return text[0].upper() + text[1:] + "."


NEWS_SECTIONS = {"tech": "Astronomy", "food": "Cooking", "sport": "Basketball"}


def write_news_csv(
    path, per_section: int = 40, shuffle: bool = False, seed: int = 0
) -> list[tuple[str, str]]:
    """A BBC-News-shaped CSV (``category,text``) of three learnable sections; returns its rows."""
    rng = random.Random(seed)
    rows = [
        (c, make_article(v, rng, 80)) for c, v in NEWS_SECTIONS.items() for _ in range(per_section)
    ]
    if shuffle:
        rng.shuffle(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["category", "text"])
        writer.writerows(rows)
    return rows


class FakeWiki:
    """``with FakeWiki(per_topic=60) as wiki: wiki.url`` — a live API on a free loopback port."""

    def __init__(
        self,
        topics=("Astronomy", "Cooking", "Basketball"),
        per_topic: int = 60,
        short: int = 3,
        seed: int = 0,
    ):
        rng = random.Random(seed)
        self.pages: dict[int, dict] = {}
        self.results: dict[str, list[int]] = {}
        pid = 1000
        for topic in topics:
            ids = []
            for i in range(per_topic):
                pid += 1
                n_words = 8 if i < short else rng.randint(60, 120)  # a few stubs to drop
                self.pages[pid] = {
                    "title": f"{topic} article {i}",
                    "extract": make_article(topic, rng, n_words),
                }
                ids.append(pid)
            self.results[topic.lower()] = ids
        # One article both Astronomy and Cooking return: ranked 2nd for Cooking, 40th for
        # Astronomy, so it must end up under Cooking.
        if "astronomy" in self.results and "cooking" in self.results:
            pid += 1
            self.pages[pid] = {"title": "Space food", "extract": make_article("Cooking", rng, 100)}
            self.results["cooking"].insert(1, pid)
            self.results["astronomy"].insert(39, pid)
            self.shared = pid
        self.log: list[dict] = []
        self.faults: deque = (
            deque()
        )  # ("429", s) | ("503",) | ("maxlag",) | ("junk",) | ("reply", obj)
        self.always_503 = False
        self._server: ThreadingHTTPServer | None = None

    # -- the API -------------------------------------------------------------------------
    def handle(self, params: dict) -> tuple[int, dict, bytes]:
        if self.always_503:
            return 503, {}, b"Service Unavailable"
        if self.faults:
            kind, *arg = self.faults.popleft()
            if kind == "429":
                return 429, {"Retry-After": str(arg[0])}, b"Too Many Requests"
            if kind == "503":
                return 503, {}, b"Service Unavailable"
            if kind == "junk":
                return 200, {}, b"<html><body>Wikimedia Error</body></html>"
            if kind == "reply":  # any JSON at all, e.g. of the wrong shape
                return 200, {}, json.dumps(arg[0]).encode()
            if kind == "maxlag":
                body = {"error": {"code": "maxlag", "info": "Waiting for a database server"}}
                return 200, {"Retry-After": "0"}, json.dumps(body).encode()
        if params.get("action") != "query":
            return 200, {}, json.dumps({"error": {"code": "badvalue", "info": "action"}}).encode()
        if params.get("list") == "search":
            ids = self.results.get(params["srsearch"].lower(), [])
            offset = int(params.get("sroffset", 0))
            limit = min(int(params.get("srlimit", 10)), 50)
            chunk = ids[offset : offset + limit]
            body = {
                "batchcomplete": True,
                "query": {
                    "search": [
                        {"ns": 0, "title": self.pages[i]["title"], "pageid": i} for i in chunk
                    ]
                },
            }
            if offset + limit < len(ids):
                body["continue"] = {"sroffset": offset + limit, "continue": "-||"}
            return 200, {}, json.dumps(body).encode()
        if params.get("prop") == "extracts":
            ids = [int(x) for x in params["pageids"].split("|")]
            if len(ids) > 50:
                body = {
                    "error": {
                        "code": "toomanyvalues",
                        "info": 'Too many values supplied for parameter "pageids".',
                    }
                }
                return 200, {}, json.dumps(body).encode()
            start = int(params.get("excontinue", 0))
            pages = []
            for k, i in enumerate(ids):
                page = {"pageid": i, "ns": 0, "title": self.pages[i]["title"]}
                if start <= k < start + 20:  # exintro: at most 20 extracts a reply
                    page["extract"] = self.pages[i]["extract"]
                pages.append(page)
            body = {"query": {"pages": pages}}
            if start + 20 < len(ids):
                body["continue"] = {"excontinue": start + 20, "continue": "||"}
            return 200, {}, json.dumps(body).encode()
        return 200, {}, json.dumps({"batchcomplete": True, "query": {}}).encode()

    # -- the server ----------------------------------------------------------------------
    def __enter__(self) -> FakeWiki:
        wiki = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                wiki.log.append(
                    {
                        "path": url.path,
                        "params": params,
                        "user_agent": self.headers.get("User-Agent"),
                    }
                )
                status, headers, body = wiki.handle(params)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/w/api.php"

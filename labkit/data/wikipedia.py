"""Wikipedia articles on topics you choose, through the MediaWiki API, cached on disk.

>>> data = load_dataset(
...     "wikipedia", topics=["Astronomy", "Cooking", "Basketball"]
... )  # doctest: +SKIP

Wikipedia is read through the MediaWiki API, politely: a descriptive User-Agent with a
contact (set yours with ``contact=`` or ``LABKIT_WIKI_CONTACT``), ``maxlag``, one request at
a time, and retries that honour ``Retry-After``. Every article is cached on disk
(``<data_dir>/wikipedia_articles/<topic>/<pageid>.txt`` plus ``index.json``), so a second
run, a classroom sharing the folder, or an offline machine needs no network.

An article that two topics both return is kept once, under the topic whose search ranked it
higher (on a tie, the topic listed first): a text can carry only one label.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_write, write_json
from .._version import __version__ as _version
from ..paths import home
from .features import text_raw
from .raw import DataError, Raw, short_error

__all__ = ["WIKIPEDIA_API", "WikipediaClient", "fetch_wikipedia", "load"]

WIKIPEDIA_API = "https://en.wikipedia.org/w/api.php"
_CONTACT_PLACEHOLDER = "set LABKIT_WIKI_CONTACT to your e-mail or course page"


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "topic"


# ---------------------------------------------------------------------------------------
# The MediaWiki client
# ---------------------------------------------------------------------------------------


@dataclass
class WikipediaClient:
    """Serial, polite requests to one MediaWiki API endpoint."""

    api_url: str = WIKIPEDIA_API
    contact: str | None = None
    retries: int = 5
    backoff: float = 1.0  # seconds; doubles each retry unless the server says Retry-After
    max_wait: float = 60.0
    timeout: float = 30.0
    sleep: callable = field(default=time.sleep, repr=False)
    verbose: bool = True  # say what a retry waits for
    requests_made: int = 0

    @property
    def user_agent(self) -> str:
        contact = self.contact or os.environ.get("LABKIT_WIKI_CONTACT") or _CONTACT_PLACEHOLDER
        return (
            f"labkit/{_version} (teaching lab kit for representation learning; {contact}) "
            f"python-requests"
        )

    def get(self, **params) -> dict:
        """One API call (``format=json``, ``maxlag=5``), retried on 429, 503, 5xx and maxlag."""
        import requests

        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "maxlag": "5",
            **params,
        }
        last = ""
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2**attempt
            try:
                self.requests_made += 1
                r = requests.get(
                    self.api_url,
                    params=params,
                    timeout=self.timeout,
                    headers={"User-Agent": self.user_agent},
                )
            except requests.RequestException as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if r.status_code in (429, 503) or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    wait = _retry_after(r.headers.get("Retry-After"), wait)
                else:
                    reply = self._reply(r, params)
                    if reply is not None:
                        return reply
                    last = "maxlag (the wiki's servers are lagging)"  # busy: wait, retry
                    wait = _retry_after(r.headers.get("Retry-After"), 5.0)
            if attempt < self.retries:
                wait = min(wait, self.max_wait)
                if self.verbose and wait >= 1:  # a long silent wait looks like a hang
                    print(
                        f"waiting {wait:.0f} s before asking {self.api_url} again for "
                        f"{_describe(params)} (attempt {attempt + 2} of {self.retries + 1}; "
                        f"last: {last})",
                        file=sys.stderr,
                        flush=True,
                    )
                self.sleep(wait)
        raise DataError(
            f"the MediaWiki API at {self.api_url} failed {self.retries + 1} times "
            f"for {_describe(params)} (last: {last}). Try again later, or run with "
            f"the articles already cached in wikipedia_articles/."
        )

    def _reply(self, r, params: dict) -> dict | None:
        """The JSON object a non-5xx answer holds; None when the wiki asks to wait (maxlag);
        one clear sentence for anything else."""
        if r.status_code != 200:
            raise DataError(
                f"the MediaWiki API at {self.api_url} answered HTTP "
                f"{r.status_code} to {_describe(params)}; check --api-url"
            )
        try:
            reply = r.json()
        except ValueError:
            head = r.text[:80].replace("\n", " ")
            raise DataError(
                f"the MediaWiki API at {self.api_url} sent something that is not "
                f"JSON for {_describe(params)} (it starts with {head!r}); is "
                f"--api-url the api.php endpoint?"
            ) from None
        if not isinstance(reply, dict):
            raise DataError(
                f"the MediaWiki API at {self.api_url} answered {_describe(params)} "
                f"with a JSON {type(reply).__name__}, not an object; is --api-url "
                f"a MediaWiki api.php endpoint?"
            )
        error = reply.get("error")
        if error is not None and not isinstance(error, dict):
            raise DataError(f"the MediaWiki API refused {_describe(params)}: {short_error(error)}")
        if error and error.get("code") == "maxlag":
            return None
        if error:
            raise DataError(
                f"the MediaWiki API refused {_describe(params)}: "
                f"{error.get('code')}: {error.get('info')}"
            )
        return reply

    def search(self, topic: str, limit: int) -> list[dict]:
        """Up to ``limit`` main-namespace results (``pageid``, ``title``), following
        continuation."""
        out: list[dict] = []
        cont: dict = {}
        while len(out) < limit:
            reply = self.get(
                list="search",
                srsearch=topic,
                srnamespace="0",
                srlimit=str(min(50, limit - len(out))),
                srprop="",
                **cont,
            )
            hits = _field(reply, "query", "search", default=[])
            if not isinstance(hits, list) or not all(
                isinstance(h, dict) and "pageid" in h and "title" in h for h in hits
            ):
                raise DataError(
                    f"the MediaWiki API at {self.api_url} answered the search for "
                    f"{topic!r} with results that are not pages (no pageid/title); "
                    f"is --api-url a MediaWiki api.php endpoint?"
                )
            out += [{"pageid": int(h["pageid"]), "title": h["title"]} for h in hits]
            if "continue" not in reply or not hits:
                break
            cont = {k: str(v) for k, v in reply["continue"].items()}
        return out[:limit]

    def extracts(self, pageids: list[int]) -> dict[int, str]:
        """Plain-text intro extracts, asked for in batches of at most 50 page ids."""
        texts: dict[int, str] = {}
        for start in range(0, len(pageids), 50):
            batch = pageids[start : start + 50]
            cont: dict = {}
            while True:  # the API returns up to 20 intros a reply and continues with excontinue
                reply = self.get(
                    prop="extracts",
                    exintro="1",
                    explaintext="1",
                    exlimit="max",
                    pageids="|".join(map(str, batch)),
                    **cont,
                )
                for page in _pages(reply):
                    if "extract" in page:
                        texts[int(page["pageid"])] = page["extract"]
                if "continue" not in reply:
                    break
                cont = {k: str(v) for k, v in reply["continue"].items()}
        return texts


def _field(reply: dict, *keys: str, default):
    for key in keys:
        if not isinstance(reply, dict):
            return default
        reply = reply.get(key, default)
    return reply


def _pages(reply: dict) -> list[dict]:
    pages = _field(reply, "query", "pages", default=[])
    pages = list(pages.values()) if isinstance(pages, dict) else pages
    if not isinstance(pages, list) or not all(isinstance(p, dict) and "pageid" in p for p in pages):
        raise DataError(
            "the MediaWiki API answered a request for extracts with pages that "
            "have no pageid; is --api-url a MediaWiki api.php endpoint?"
        )
    return pages


def _retry_after(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default


def _describe(params: dict) -> str:
    if "srsearch" in params:
        return f"the search for {params['srsearch']!r}"
    if "pageids" in params:
        return f"the extracts of {len(params['pageids'].split('|'))} pages"
    return "the request"


# ---------------------------------------------------------------------------------------
# Wikipedia articles, cached
# ---------------------------------------------------------------------------------------


def fetch_wikipedia(
    topics: list[str],
    data_dir: str | Path | None = None,
    per_topic: int = 100,
    min_chars: int = 200,
    min_per_topic: int = 10,
    api_url: str = WIKIPEDIA_API,
    contact: str | None = None,
    refresh: bool = False,
    client: WikipediaClient | None = None,
    verbose: bool = True,
    *,
    download: bool = True,
) -> dict[str, list[dict]]:
    """Articles per topic: ``{topic: [{"pageid", "title", "text", "rank"}]}``, cached on disk.

    Searches ``per_topic`` results per topic, drops extracts shorter than ``min_chars``, and
    fails if a topic keeps fewer than ``min_per_topic``. ``download=False`` reads the cache
    only: a topic that is not there is one sentence, and nothing is asked of the network.
    """
    topics = [t.strip() for t in topics if t.strip()]
    if len(topics) < 2:
        raise DataError(
            f"give at least two topics to tell apart (got {topics}), e.g. "
            f'--topics "Astronomy,Cooking,Basketball"'
        )
    if len({t.lower() for t in topics}) != len(topics):
        raise DataError(f"the topics repeat: {topics}")
    root = Path(data_dir if data_dir is not None else home("data")) / "wikipedia_articles"
    client = client or WikipediaClient(api_url=api_url, contact=contact)
    found: dict[str, list[dict]] = {}
    for topic in topics:
        cached = None if refresh else _read_topic(root, topic, client.api_url, per_topic)
        if cached is None and not download:
            raise DataError(
                f"the articles on {topic!r} are not in the cache {root} (for {client.api_url}, "
                f"{per_topic} a topic), and download=False asks nothing of the network; "
                f"download them once (download=True), or copy a class's "
                f"wikipedia_articles folder there"
            )
        if cached is None:
            cached = _fetch_topic(client, topic, per_topic)
            _write_topic(root, topic, client.api_url, per_topic, cached)
        found[topic] = cached

    # One label per text: the topic whose search ranked it highest keeps it.
    best: dict[int, tuple[int, int]] = {}
    for ti, topic in enumerate(topics):
        for art in found[topic]:
            key = (art["rank"], ti)
            if art["pageid"] not in best or key < best[art["pageid"]]:
                best[art["pageid"]] = key
    result: dict[str, list[dict]] = {}
    report = []
    for ti, topic in enumerate(topics):
        arts = found[topic]
        unique = [a for a in arts if best[a["pageid"]][1] == ti]
        long = [a for a in unique if len(a["text"].strip()) >= min_chars]
        report.append(
            (topic, len(arts), len(arts) - len(unique), len(unique) - len(long), len(long))
        )
        result[topic] = long
    if verbose:
        width = max(len(t) for t in topics)
        print(f"{'topic':<{width}}  found  shared  short  kept")
        for topic, n, shared, short, kept in report:
            print(f"{topic:<{width}}  {n:>5}  {shared:>6}  {short:>5}  {kept:>4}")
    few = [(t, k) for t, _, _, _, k in report if k < min_per_topic]
    if few:
        detail = ", ".join(f"{t!r}: {k}" for t, k in few)
        raise DataError(
            f"too few usable articles ({detail}; need {min_per_topic} each, of at "
            f"least {min_chars} characters). Pick broader topics, raise "
            f"per_topic, or lower min_per_topic."
        )
    return result


def _fetch_topic(client: WikipediaClient, topic: str, per_topic: int) -> list[dict]:
    hits = client.search(topic, per_topic)
    if not hits:
        raise DataError(
            f"the search for topic {topic!r} found no articles at "
            f"{client.api_url}; check the spelling or choose another topic"
        )
    texts = client.extracts([h["pageid"] for h in hits])
    return [
        {
            "pageid": h["pageid"],
            "title": h["title"],
            "rank": rank,
            "text": texts.get(h["pageid"], ""),
        }
        for rank, h in enumerate(hits)
    ]


def _topic_dir(root: Path, topic: str) -> Path:
    # Readable, and unique per exact topic: "C" and "C++", or two topics in a script the
    # slug cannot spell, never share a folder.
    return root / f"{_slug(topic)}-{hashlib.sha1(topic.encode('utf-8')).hexdigest()[:8]}"


def _inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when that file is in ``folder`` once links are followed (the folder
    itself may be a link, to a classroom's shared copy); None for a name that leads out."""
    if not isinstance(name, str):
        return None
    path = folder / name
    try:
        inside = path.resolve().parent == folder.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return None
    return path if inside else None


def _read_json(path: Path) -> dict | None:
    """A cache index, or None when it is missing or unreadable (then the cache is a miss)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_article_folder(folder: Path, per_topic: int) -> list[dict] | None:
    """A folder of ``<Title>.txt`` files whose first line is ``Title: ...`` (as other
    courses' notebooks save Wikipedia articles), read as it is."""
    arts = []
    for rank, path in enumerate(sorted(folder.glob("*.txt"))[:per_topic]):
        if _inside(folder, path.name) is None:  # a link to a file elsewhere: not an article
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        first, _, body = text.partition("\n")
        if not first.startswith("Title:"):
            return None
        title = first[len("Title:") :].strip() or path.stem
        # No page id in these files: a stable number from the title stands in for it, so
        # an article two topics share is still found to be one article.
        pageid = -int(hashlib.sha1(title.encode("utf-8")).hexdigest()[:12], 16)
        arts.append({"pageid": pageid, "title": title, "rank": rank, "text": body.strip()})
    return arts or None


def _read_topic(root: Path, topic: str, api_url: str, per_topic: int) -> list[dict] | None:
    folder = _topic_dir(root, topic)
    meta = _read_json(folder / "index.json")
    if meta is None:
        for name in (topic, topic.replace(" ", "_")):  # an article folder from elsewhere
            if (root / name).is_dir() and not (root / name / "index.json").exists():
                return _read_article_folder(root / name, per_topic)
        return None
    if (
        meta.get("topic") != topic
        or meta.get("api_url") != api_url
        or meta.get("per_topic", 0) < per_topic
    ):
        return None
    arts = []
    try:
        for a in meta["articles"][:per_topic]:
            path = _inside(folder, a["file"])
            if path is None:  # ../, an absolute path, or a link out: not this cache's file
                return None
            arts.append(
                {
                    "pageid": a["pageid"],
                    "title": a["title"],
                    "rank": a["rank"],
                    "text": path.read_text(encoding="utf-8"),
                }
            )
    except (OSError, KeyError, TypeError, ValueError):
        return None  # a damaged cache is refetched, not half-used
    return arts


def _write_topic(root: Path, topic: str, api_url: str, per_topic: int, arts: list[dict]) -> None:
    folder = _topic_dir(root, topic)
    entries = []
    for a in arts:
        name = f"{a['pageid']}.txt"
        with atomic_write(folder / name) as f:
            f.write(a["text"])
        entries.append(
            {
                "pageid": a["pageid"],
                "title": a["title"],
                "rank": a["rank"],
                "file": name,
                "chars": len(a["text"]),
            }
        )
    write_json(
        folder / "index.json",
        {"topic": topic, "api_url": api_url, "per_topic": per_topic, "articles": entries},
    )
    # The folder-wide index: which topic lives where.
    top = root / "index.json"
    index = _read_json(top) or {}
    if not isinstance(index.get("topics"), dict):
        index["topics"] = {}
    index["topics"][topic] = {"folder": folder.name, "api_url": api_url, "articles": len(entries)}
    write_json(top, index)


def load(
    data_dir: Path,
    download: bool,
    seed: int,
    *,
    topics: list[str] | str | None = None,
    api_url: str = WIKIPEDIA_API,
    per_topic: int = 100,
    min_chars: int = 200,
    min_per_topic: int = 10,
    vocab_size: int = 5000,
    test_size: float = 0.3,
    contact: str | None = None,
) -> Raw:
    """``load_dataset("wikipedia", topics=[...])``: the articles, TF-IDF, a stratified split."""
    if not topics:
        raise DataError(
            'name the topics: --topics "Astronomy,Cooking,Basketball" '
            "(load_dataset('wikipedia', topics=[...]))"
        )
    if isinstance(topics, str):
        topics = [t for t in topics.split(",")]
    arts = fetch_wikipedia(
        topics,
        data_dir,
        per_topic=per_topic,
        min_chars=min_chars,
        min_per_topic=min_per_topic,
        api_url=api_url,
        contact=contact,
        download=download,
    )
    texts, labels, titles = [], [], []
    for topic, items in arts.items():
        for a in items:
            texts.append(a["text"])
            labels.append(topic)
            titles.append(a["title"])
    # Classes in the order the user named the topics, not sorted.
    return text_raw(
        texts,
        labels,
        titles,
        seed,
        vocab_size,
        test_size,
        {"source": api_url, "topics": list(arts)},
        classes=list(arts),
        source=f"the articles on {', '.join(map(repr, arts))}",
    )

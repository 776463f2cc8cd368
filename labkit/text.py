"""Moved to :mod:`labkit.data.wikipedia`, :mod:`labkit.data.bbc` and
:mod:`labkit.data.features`; this name stays so that older code keeps working."""

from .data.bbc import BBC_URL, load_bbc_csv
from .data.features import snippet, tfidf_features
from .data.wikipedia import WIKIPEDIA_API, WikipediaClient, fetch_wikipedia

__all__ = [
    "BBC_URL",
    "WIKIPEDIA_API",
    "WikipediaClient",
    "fetch_wikipedia",
    "load_bbc_csv",
    "snippet",
    "tfidf_features",
]

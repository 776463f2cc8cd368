"""BBC News: 2,225 articles in five sections, from a CSV (downloaded once, or your own file
with a text and a label column).

>>> data = load_dataset("bbc", csv="data/bbc-text.csv")     # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

from .._io import atomic_write
from .._version import __version__ as _version
from ..paths import home
from .features import snippet, text_raw
from .raw import DataError, Raw, short_error

__all__ = ["BBC_URL", "load", "load_bbc_csv"]

BBC_URL = "https://storage.googleapis.com/dataset-uploaded/bbc/bbc-text.csv"


def load_bbc_csv(
    csv: str | Path | None = None,
    data_dir: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "category",
    download: bool = True,
) -> tuple[list[str], list[str]]:
    """Texts and labels from the BBC News CSV (a local path, or a URL fetched once into
    ``data_dir``)."""
    import pandas as pd

    source = str(csv or BBC_URL)
    if re.match(r"^https?://", source):
        folder = Path(data_dir) if data_dir is not None else home("data")
        local = folder / Path(source.split("?")[0]).name
        if not local.exists():
            if not download:
                raise DataError(f"{local} is missing and download=False")
            try:
                import requests

                r = requests.get(source, timeout=60, headers={"User-Agent": f"labkit/{_version}"})
                r.raise_for_status()
            except Exception as err:
                raise DataError(
                    f"could not download the BBC News CSV from {source} ({err}). "
                    f"Download it by hand and pass --csv PATH, or use "
                    f"--dataset digits offline."
                ) from None
            _check_csv_download(r.content, source, text_column, label_column)
            with atomic_write(local, "wb") as f:
                f.write(r.content)
        path = local
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"no CSV at {path}; pass --csv PATH_OR_URL (default {BBC_URL})")
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise DataError(f"{path} could not be read as CSV: {err}") from None
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(map(repr, missing))}; its columns "
            f"are {', '.join(map(repr, df.columns))}. Name the right ones with "
            f"--text-column NAME --label-column NAME (text_column=..., "
            f"label_column=... in Python)"
        )
    df = df.dropna(subset=[text_column, label_column])
    texts = df[text_column].astype(str).tolist()
    labels = df[label_column].astype(str).str.strip().tolist()
    if len(set(labels)) < 2:
        raise DataError(f"{path}: column {label_column!r} has fewer than two classes")
    return texts, labels


def _check_csv_download(content: bytes, source: str, text_column: str, label_column: str) -> None:
    """Refuse, before it is cached, a download that is a web page or lacks the columns."""
    import io

    import pandas as pd

    head = content[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        raise DataError(
            f"the download from {source} is a web page, not a CSV (a login or "
            f"error page?); download the CSV by hand and pass --csv PATH"
        )
    try:
        columns = list(pd.read_csv(io.BytesIO(content), nrows=5).columns)
    except Exception as err:
        raise DataError(
            f"the download from {source} is not a CSV ({short_error(err)}); download "
            f"it by hand and pass --csv PATH"
        ) from None
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise DataError(
            f"the download from {source} has no column "
            f"{', '.join(map(repr, missing))} (its columns: "
            f"{', '.join(map(repr, columns))}); name the right ones with "
            f"--text-column NAME --label-column NAME"
        )


def load(
    data_dir: Path,
    download: bool,
    seed: int,
    *,
    csv: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "category",
    vocab_size: int = 5000,
    test_size: float = 0.3,
) -> Raw:
    """``load_dataset("bbc")``: the BBC News CSV (or ``csv=``), TF-IDF, a stratified split."""
    texts, labels = load_bbc_csv(csv, data_dir, text_column, label_column, download)
    titles = [snippet(t, 60) for t in texts]
    source = str(csv or BBC_URL)
    return text_raw(
        texts,
        labels,
        titles,
        seed,
        vocab_size,
        test_size,
        {"source": source},
        source=f"the texts in column {text_column!r} of {source}",
    )

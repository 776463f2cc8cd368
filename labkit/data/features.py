"""Text to vectors: TF-IDF features fitted on the training split, and the :class:`Raw` of a
labelled corpus (shared by the Wikipedia and BBC News loaders)."""

from __future__ import annotations

import numpy as np

from .raw import Raw, stratified_split

__all__ = ["SNIPPET_CHARS", "snippet", "text_raw", "tfidf_features"]

SNIPPET_CHARS = 150


def snippet(text: str, n: int = SNIPPET_CHARS) -> str:
    """The first ~``n`` characters, cut at a word boundary, on one line."""
    text = " ".join(text.split())
    if len(text) <= n:
        return text
    cut = text[:n].rsplit(" ", 1)[0]
    return cut + "…"


def tfidf_features(
    train_texts: list[str], test_texts: list[str], vocab_size: int = 5000
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TF-IDF vectors (rows of unit length), the vocabulary fitted on the training texts only."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(
        max_features=vocab_size,
        stop_words="english",
        sublinear_tf=True,
        min_df=2 if len(train_texts) >= 50 else 1,
        dtype=np.float32,
    )
    x_train = vec.fit_transform(train_texts).toarray()
    x_test = vec.transform(test_texts).toarray()
    return x_train, x_test, vec.get_feature_names_out().tolist()


def text_raw(
    texts: list[str],
    labels: list[str],
    titles: list[str],
    seed: int,
    vocab_size: int,
    test_size: float,
    info: dict,
    classes: list[str] | None = None,
) -> Raw:
    classes = classes or sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    idx = np.arange(len(texts))
    tr, te, y_tr, y_te = stratified_split(idx, y, test_size, seed, classes)
    x_tr, x_te, vocab = tfidf_features([texts[i] for i in tr], [texts[i] for i in te], vocab_size)
    return Raw(
        x_tr,
        y_tr,
        x_te,
        y_te,
        classes,
        kind="text",
        titles=[titles[i] for i in te],
        snippets=[snippet(texts[i]) for i in te],
        # "terms": the word of each TF-IDF column, in column order (to read the vectors)
        info={**info, "vocabulary": len(vocab), "terms": vocab, "n_texts": len(texts)},
    )

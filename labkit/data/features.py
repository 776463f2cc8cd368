"""Text to vectors: TF-IDF features fitted on the training split, and the :class:`Raw` of a
labelled corpus (shared by the Wikipedia and BBC News loaders)."""

from __future__ import annotations

import numbers

import numpy as np

from .raw import DataError, Raw, stratified_split

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
    train_texts: list[str],
    test_texts: list[str],
    vocab_size: int = 5000,
    *,
    source: str = "the training texts",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TF-IDF vectors (rows of unit length), the vocabulary fitted on the training texts only.
    ``source`` names the texts in the sentence raised when they hold no word to count."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = 2 if len(train_texts) >= 50 else 1
    vec = TfidfVectorizer(
        max_features=vocab_size,
        stop_words="english",
        sublinear_tf=True,
        min_df=min_df,
        dtype=np.float32,
    )
    try:
        x_train = vec.fit_transform(train_texts).toarray()
    except ValueError as err:  # "empty vocabulary" or "After pruning, no terms remain"
        rare = " and the words of fewer than 2 texts" if min_df > 1 else ""
        raise DataError(
            f"{source}: no words are left to count once English stop words (the, and, "
            f"of...){rare} are dropped ({err}); TF-IDF needs texts with words of their own"
        ) from None
    x_test = vec.transform(test_texts).toarray()
    return x_train, x_test, vec.get_feature_names_out().tolist()


def _check_text_options(vocab_size: int, test_size: float, source: str) -> None:
    whole = isinstance(vocab_size, numbers.Integral) and not isinstance(vocab_size, bool)
    if not whole or vocab_size < 1:
        raise DataError(
            f"vocab_size is how many words TF-IDF keeps, a whole number of at least 1; "
            f"got {vocab_size!r}"
        )
    share = isinstance(test_size, numbers.Real) and not isinstance(test_size, bool)
    if not share or not 0 < test_size < 1:
        raise DataError(
            f"test_size is the share of {source} held out for testing, between 0 and 1 "
            f"(0.3 holds out 30 %); got {test_size!r}"
        )


def text_raw(
    texts: list[str],
    labels: list[str],
    titles: list[str],
    seed: int,
    vocab_size: int,
    test_size: float,
    info: dict,
    classes: list[str] | None = None,
    *,
    source: str = "the texts",
) -> Raw:
    """The :class:`Raw` of labelled ``texts``: a stratified split, TF-IDF fitted on its
    training part. ``source`` names the texts in the sentences raised about them."""
    _check_text_options(vocab_size, test_size, source)
    classes = classes or sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    idx = np.arange(len(texts))
    tr, te, y_tr, y_te = stratified_split(idx, y, test_size, seed, classes)
    x_tr, x_te, vocab = tfidf_features(
        [texts[i] for i in tr],
        [texts[i] for i in te],
        vocab_size,
        source=f"the training part of {source}",
    )
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

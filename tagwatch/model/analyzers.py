"""The terms a text yields for each kind of block, the same as the fitted scikit-learn vectorizers produce.

Training fits ``TfidfVectorizer(analyzer=word_features)`` and ``TfidfVectorizer(analyzer="char_wb")``; serving cuts
the text here, without importing scikit-learn (~2 s and ~170 MB with the pandas and scipy.stats it pulls in).
``tests/tagwatch/model/test_analyzers.py`` checks both against scikit-learn's own analyzers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tagwatch.model.blocks import CHAR_NGRAMS
from tagwatch.text import word_features

Analyzer = Callable[[str], list[str]]

# scikit-learn's _VectorizerMixin._white_spaces
_WHITE_SPACES = re.compile(r"\s\s+")


def char_wb_ngrams(text: str, ngram_range: tuple[int, int] = CHAR_NGRAMS) -> list[str]:
    """Character n-grams inside words, each word padded with one space on both sides: scikit-learn's ``char_wb``
    analyzer with its defaults (lowercased, no accent stripping). The same n-grams, as often; the order may differ
    (it does not matter to TF-IDF)."""
    min_n, max_n = ngram_range
    ngrams: list[str] = []
    extend = ngrams.extend
    for word in _WHITE_SPACES.sub(" ", text.lower()).split():
        w = f" {word} "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            if w_len <= n:  # a short word counts once, whole, for the first n it does not exceed
                ngrams.append(w)
                break
            extend([w[i : i + n] for i in range(w_len - n + 1)])
    return ngrams


def analyzer(kind: str) -> Analyzer:
    """The analyzer of a block kind ("words" or "chars")."""
    if kind == "words":
        return word_features
    if kind == "chars":
        return char_wb_ngrams
    raise ValueError(f"unknown block kind {kind!r}")

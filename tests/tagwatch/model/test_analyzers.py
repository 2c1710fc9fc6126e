"""The analyzers serving uses cut texts into the same terms as the scikit-learn vectorizers training fits."""

from __future__ import annotations

from collections import Counter

from sklearn.feature_extraction.text import TfidfVectorizer

from tagwatch.data import Question
from tagwatch.model.analyzers import analyzer, char_wb_ngrams
from tagwatch.model.blocks import CHAR_NGRAMS
from tagwatch.text import model_texts, word_features

TEXTS = [
    "",
    " ",
    "a",
    "ab",
    "abc",
    "abcd",
    "How  to\tread\na CSV file?",
    "Ünïcödé ß ﬁ İSTANBUL naïve café — 数据 🐍 \u00a0\u2028 x",
    "   leading and trailing   ",
    "\x1c\x1d\x1e\x1f separators \x85 next-line",
]


def test_char_ngrams_are_sklearns(bundled_questions: list[Question]) -> None:
    sklearn_analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS).build_analyzer()
    texts = TEXTS + [t for q in bundled_questions[::200] for t in model_texts(q)]
    for text in texts:
        assert Counter(char_wb_ngrams(text)) == Counter(sklearn_analyzer(text)), text[:80]


def test_word_analyzer_is_word_features() -> None:
    assert analyzer("words") is word_features
    assert analyzer("chars") is char_wb_ngrams

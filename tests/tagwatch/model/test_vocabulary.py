from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from tagwatch.model.vocabulary import Vocabulary

TERMS = ["python", "pandas", "import pandas", "ß", "数据", "🐍", "a", "ab", "\ud800", "c#", "c++"]


def test_columns_are_the_positions_of_the_terms() -> None:
    vocabulary = Vocabulary(TERMS)
    assert len(vocabulary) == len(TERMS)
    assert vocabulary.columns(TERMS).tolist() == list(range(len(TERMS)))
    assert vocabulary.columns(["nope", "pandas", "Python", "", "c"]).tolist() == [-1, 1, -1, -1, -1]
    assert vocabulary.columns([]).tolist() == []
    assert vocabulary.terms() == TERMS
    assert [vocabulary.term(j) for j in range(len(TERMS))] == TERMS


def test_a_vocabulary_is_a_fraction_of_a_dict() -> None:
    terms = [f"term{i}" for i in range(50_000)]
    as_dict = {t: i for i, t in enumerate(terms)}
    dict_bytes = sys.getsizeof(as_dict) + sum(sys.getsizeof(t) + sys.getsizeof(i) for t, i in as_dict.items())
    assert Vocabulary(terms).nbytes < dict_bytes / 3  # ~33 bytes a term against ~125


def test_a_pickled_vocabulary_is_rebuilt_from_its_terms() -> None:
    again = pickle.loads(pickle.dumps(Vocabulary(TERMS)))
    assert again.columns(TERMS).tolist() == list(range(len(TERMS)))


def test_an_empty_vocabulary_knows_nothing() -> None:
    assert Vocabulary([]).columns(["a"]).tolist() == [-1]


def test_duplicate_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "b", "a"])


class Clash(str):
    """A term whose hash is another's: what a 64-bit collision would look like."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash("python")


def test_a_hash_shared_by_two_terms_still_finds_each() -> None:
    terms = ["python", Clash("pythn"), "java"]
    vocabulary = Vocabulary(terms)
    assert vocabulary.columns(["python", Clash("pythn"), "java", Clash("other")]).tolist() == [0, 1, 2, -1]


def test_a_hash_match_of_another_text_is_no_match() -> None:
    vocabulary = Vocabulary(["python", "java", "pandas"])
    # Same hash as a vocabulary term, other text (longer, shorter, same length): never found.
    for text in ("pythons", "pyth", "pithon"):
        clash = type("C", (str,), {"__hash__": lambda self: hash("python"), "__slots__": ()})(text)
        assert vocabulary.columns([clash, "java"]).tolist() == [-1, 1]
    assert np.array_equal(vocabulary.columns(["pandas", "java"]), np.array([2, 1]))

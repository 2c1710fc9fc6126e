"""The compact vocabularies give the same features, scores and predictions, bit for bit, as the dict path did."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.text import TextInput, model_texts
from tests.tagwatch.model.support import DictEncoder

ODD = [
    TextInput("", ""),
    TextInput("Ünïcödé ß ﬁ İstanbul", "<p>naïve café — 数据 🐍 \u00a0 tabs\tand\nnewlines   spaces</p>"),
    TextInput("x", "<pre><code>a.b.c = d.e(f)  # \ud83d\ude00</code></pre>"),
    TextInput("How to read a csv file with pandas", "<p>pd.read_csv('x.csv', sep=';')</p>"),
]


@pytest.fixture(scope="module")
def questions(bundled_questions: list[Question]) -> list[Question]:
    return bundled_questions[::60][:400]


def test_features_are_those_of_the_dict_path(small_model: TagModel, questions: list[Question]) -> None:
    reference = DictEncoder(small_model)
    for item in [*questions, *ODD]:
        title, body = model_texts(item)
        cols, vals = small_model.features.encode(title, body)
        ref_cols, ref_vals = reference.encode(title, body)
        assert np.array_equal(cols, ref_cols)
        assert np.array_equal(vals, ref_vals)


def test_scores_and_predictions_are_those_of_the_dict_path(small_model: TagModel, questions: list[Question]) -> None:
    reference = DictEncoder(small_model)
    items = [*questions, *ODD]
    decisions = np.vstack([small_model._scorer.row(*reference.encode(*model_texts(q))) for q in items])
    expected = small_model.calibrate(decisions)
    scores = small_model.predict_scores(items)
    assert np.array_equal(scores, expected)
    assert small_model.predict(items) == small_model.decide(expected)


def test_restore_checks_the_vocabularies(small_model: TagModel) -> None:
    from tagwatch.model import FeatureSpace, ModelFormatError

    vocabularies = small_model.features.vocabularies()
    arrays = small_model.features.idfs()
    described = small_model.features.describe()
    name = described[0]["name"]
    twice = [vocabularies[name][0], *vocabularies[name][:-1]]
    with pytest.raises(ModelFormatError, match="distinct"):
        FeatureSpace.restore(described, {**vocabularies, name: twice}, arrays)
    with pytest.raises(ModelFormatError, match="missing"):
        FeatureSpace.restore(described, {k: v for k, v in vocabularies.items() if k != name}, arrays)


def test_the_scorers_tail_holds_the_weights_it_held_before(small_model: TagModel) -> None:
    """The tail was built as ``diags(~dense) @ W.T`` with zeros eliminated; it is masked now. Same rows, same weights
    (within a row the order may differ: each tag appears once per row, so the sums do not change)."""
    scorer = small_model._scorer
    by_feature = sp.csr_matrix(small_model.weights.T, dtype=np.float64)
    by_feature.sort_indices()
    dense = np.diff(by_feature.indptr) >= min(scorer.DENSE_MIN_TAGS, scorer.n_tags)
    before = sp.csr_matrix(sp.diags((~dense).astype(np.float64)) @ by_feature)
    before.eliminate_zeros()
    assert np.array_equal(scorer._tail_ptr, before.indptr)
    for row in range(0, scorer.n_features, 7):
        lo, hi = before.indptr[row], before.indptr[row + 1]
        expected = sorted(zip(before.indices[lo:hi].tolist(), before.data[lo:hi].tolist(), strict=True))
        got = sorted(zip(scorer._tail_tags[lo:hi].tolist(), scorer._tail_weights[lo:hi].tolist(), strict=True))
        assert got == expected

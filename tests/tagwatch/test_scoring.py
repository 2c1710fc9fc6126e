from __future__ import annotations

import numpy as np
import pytest

from tagwatch.scoring import (
    binarize,
    decision_matrix,
    expected_micro_f1,
    macro_f1,
    micro_prf,
    per_tag_f1,
    precision_at_k,
    rank_matrix,
    recall_at_k,
    samples_jaccard,
)

TAGS = ["python", "pandas", "java", "c#"]
# Three questions over TAGS.
Y_TRUE = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=np.int8)
Y_PRED = np.array([[1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 0]], dtype=np.int8)


def test_binarize_ignores_tags_outside_the_vocabulary() -> None:
    y = binarize([("python", "numpy"), ("rust",), ("c#", "java")], TAGS)
    assert y.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]]


def test_binarize_rejects_a_vocabulary_with_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        binarize([("python",)], ["python", "python"])


def test_micro_prf_by_hand() -> None:
    # TP = 2 (python in q0, java in q1); predicted 4; true 4.
    precision, recall, f1 = micro_prf(Y_TRUE, Y_PRED)
    assert precision == pytest.approx(2 / 4)
    assert recall == pytest.approx(2 / 4)
    assert f1 == pytest.approx(2 * 2 / (4 + 4))


def test_micro_prf_with_nothing_true_or_predicted_is_zero() -> None:
    zeros = np.zeros((2, 3), dtype=np.int8)
    assert micro_prf(zeros, zeros) == (0.0, 0.0, 0.0)


def test_per_tag_and_macro_f1_by_hand() -> None:
    # python: TP1 FN1 FP0 -> 2/3; pandas: TP0 FN1 FP1 -> 0; java: TP1 -> 1; c#: not true, predicted once -> 0.
    assert per_tag_f1(Y_TRUE, Y_PRED).tolist() == pytest.approx([2 / 3, 0.0, 1.0, 0.0])
    # Macro averages over tags that occur in y_true (c# does not).
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 0.0 + 1.0) / 3)


def test_per_tag_f1_of_a_tag_neither_true_nor_predicted_is_zero() -> None:
    y = np.array([[1, 0]], dtype=np.int8)
    assert per_tag_f1(y, y).tolist() == [1.0, 0.0]


def test_samples_jaccard_by_hand() -> None:
    # q0: {python,pandas} vs {python} = 1/2; q1: {java} vs {java,c#} = 1/2; q2: {python} vs {pandas} = 0.
    assert samples_jaccard(Y_TRUE, Y_PRED) == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_samples_jaccard_counts_an_empty_pair_as_agreement() -> None:
    y = np.zeros((1, 2), dtype=np.int8)
    assert samples_jaccard(y, y) == 1.0


SCORES = np.array(
    [
        [0.9, 0.8, 0.1, 0.0],  # top-3: python, pandas, java
        [0.2, 0.1, 0.3, 0.6],  # top-3: c#, java, python
        [0.1, 0.7, 0.2, 0.0],  # top-3: pandas, java, python
    ]
)


def test_precision_and_recall_at_k_by_hand() -> None:
    # top-1 hits: q0 python yes, q1 c# no, q2 pandas no.
    assert precision_at_k(Y_TRUE, SCORES, 1) == pytest.approx(1 / 3)
    # top-3 hits: q0 2, q1 1, q2 1.
    assert precision_at_k(Y_TRUE, SCORES, 3) == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    assert recall_at_k(Y_TRUE, SCORES, 3) == pytest.approx((2 / 2 + 1 / 1 + 1 / 1) / 3)
    assert recall_at_k(Y_TRUE, SCORES, 1) == pytest.approx((1 / 2 + 0 + 0) / 3)


def test_recall_at_k_skips_questions_without_true_tags() -> None:
    y = np.array([[1, 0], [0, 0]], dtype=np.int8)
    s = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert recall_at_k(y, s, 1) == 1.0
    assert precision_at_k(y, s, 1) == 0.5


def test_rank_matrix_breaks_ties_by_column_order() -> None:
    assert rank_matrix(np.array([[0.5, 0.9, 0.5, 0.1]])).tolist() == [[1, 0, 2, 3]]


def test_decision_rule_thresholds_at_least_one_at_most_k() -> None:
    scores = np.array(
        [
            [0.9, 0.6, 0.4, 0.2],  # passes: 0.9, 0.6 (threshold 0.5)
            [0.1, 0.3, 0.2, 0.05],  # none passes: the best one anyway
            [0.8, 0.7, 0.95, 0.6],  # all pass: only the 2 best
        ]
    )
    got = decision_matrix(scores, 0.5, max_tags=2)
    assert got.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]]


def test_decision_rule_with_a_minimum_top_score_may_suggest_nothing() -> None:
    scores = np.array(
        [
            [0.9, 0.6, 0.4, 0.2],  # passes: 0.9, 0.6 (threshold 0.5)
            [0.1, 0.3, 0.2, 0.05],  # none passes; the best (0.3) reaches the minimum top score: it alone
            [0.1, 0.15, 0.2, 0.05],  # the best (0.2) is below the minimum top score too: no tag at all
        ]
    )
    got = decision_matrix(scores, 0.5, max_tags=2, min_top_score=0.25)
    assert got.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    # 0 is the old rule: every question gets its best tag.
    assert decision_matrix(scores, 0.5, max_tags=2, min_top_score=0.0)[2].tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="min_top_score"):
        decision_matrix(scores, 0.5, 2, min_top_score=1.5)


def test_decision_rule_with_per_tag_thresholds() -> None:
    scores = np.array([[0.9, 0.6, 0.4, 0.35]])
    got = decision_matrix(scores, np.array([0.5, 0.7, 0.3, 0.4]), max_tags=5)
    assert got.tolist() == [[1, 0, 1, 0]]


def test_decision_rule_on_empty_and_bad_input() -> None:
    assert decision_matrix(np.zeros((0, 3)), 0.5, 2).shape == (0, 3)
    with pytest.raises(ValueError, match="max_tags"):
        decision_matrix(SCORES, 0.5, 0)
    with pytest.raises(ValueError, match="matrix"):
        decision_matrix(np.zeros(3), 0.5, 1)


def test_expected_micro_f1_by_hand() -> None:
    scores = np.array([[0.8, 0.1], [0.4, 0.6]])
    predicted = np.array([[1, 0], [0, 1]], dtype=np.int8)
    # expected TP = 0.8 + 0.6; predictions = 2; expected positives = 1.9.
    assert expected_micro_f1(scores, predicted) == pytest.approx(2 * 1.4 / (2 + 1.9))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        micro_prf(Y_TRUE, Y_PRED[:, :3])
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(Y_TRUE, SCORES, 0)

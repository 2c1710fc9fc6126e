"""The drift run's statistics, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift.stats import (
    emerging_tags,
    js_distance,
    label_free_estimate,
    micro_f1_standard_error,
    observed_scores,
    rate_shifts,
)


def test_label_free_estimate_by_hand() -> None:
    scores = np.array([[0.9, 0.2, 0.1], [0.6, 0.5, 0.0]])
    predicted = np.array([[1, 0, 0], [1, 1, 0]])
    est = label_free_estimate(scores, predicted)
    tp = 0.9 + 0.6 + 0.5  # expected right among the 3 predicted tags
    positives = scores.sum()  # expected true tags
    assert est["precision"] == pytest.approx(tp / 3)
    assert est["recall"] == pytest.approx(tp / positives)
    assert est["micro_f1"] == pytest.approx(2 * tp / (3 + positives))
    # perfectly confident and right: 1.0
    assert label_free_estimate(np.eye(3), np.eye(3))["micro_f1"] == 1.0


def test_observed_scores_by_hand() -> None:
    true = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    s = observed_scores(true, pred)
    assert s["precision"] == pytest.approx(1 / 2)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["micro_f1"] == pytest.approx(2 / 5)
    assert s["samples_jaccard"] == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_micro_f1_standard_error() -> None:
    rng = np.random.default_rng(3)
    true = rng.random((400, 10)) < 0.2
    pred = np.where(rng.random((400, 10)) < 0.7, true, ~true)  # 70 % of the cells right
    se_400 = micro_f1_standard_error(true, pred)
    se_100 = micro_f1_standard_error(true[:100], pred[:100])
    assert 0 < se_400 < se_100 < 0.1
    assert se_100 / se_400 == pytest.approx(2, rel=0.35)  # shrinks like 1 / sqrt(n)
    assert micro_f1_standard_error(true[:1], pred[:1]) == 0.0


def test_js_distance() -> None:
    assert js_distance(np.array([1, 1]), np.array([2, 2])) == pytest.approx(0.0)
    assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert 0 < js_distance(np.array([3, 1]), np.array([1, 3])) < 1
    with pytest.raises(ValueError, match="shapes"):
        js_distance(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        js_distance(np.array([0, 0]), np.array([1, 2]))


def test_rate_shifts() -> None:
    z, eligible = rate_shifts(np.array([100, 100, 1]), 1_000, np.array([100, 300, 0]), 1_000, z=3.29)
    assert eligible.tolist() == [True, True, False]  # one occurrence in 2,000 is too few to test
    assert abs(z[0]) < 1
    assert z[1] > 10
    assert z[2] == 0


def test_emerging_tags() -> None:
    reference = [("python",), ("java", "old-lib")] * 500
    current = [("python", "polars"), ("java", "old-lib")] * 50 + [("python",)] * 100
    found = emerging_tags(current, reference, {"python", "java"}, p_value=1e-4, min_count=3)
    # polars is new; old-lib is outside the vocabulary but as frequent as in the reference
    assert found == [("polars", 50, 0)]
    assert emerging_tags([], reference, set(), p_value=1e-4, min_count=3) == []
    # five questions of a tag the (smaller) reference happened to miss: chance, not a new tag
    assert (
        emerging_tags(
            [("flutter",)] * 5 + [("python",)] * 395, [("python",)] * 1_500, {"python"}, p_value=1e-4, min_count=3
        )
        == []
    )

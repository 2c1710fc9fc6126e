"""Decision thresholds chosen on validation scores under the decision rule."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.thresholds import choose_thresholds, global_threshold, min_top_score, per_tag_thresholds
from tagwatch.scoring import decision_matrix, micro_prf


def _brute_force_f1(scores: np.ndarray, y: np.ndarray, thresholds: np.ndarray, k: int) -> float:
    return micro_prf(y, decision_matrix(scores, thresholds, k))[2]


def test_threshold_search_is_exact_under_the_decision_rule() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random((400, 6)) < 0.25).astype(np.int8)
    scores = np.clip(0.5 * y + rng.random((400, 6)) * 0.6, 0, 1)
    grid = np.round(np.arange(0.05, 0.95, 0.05), 2)
    g = global_threshold(scores, y, 2, grid)
    brute = max(grid, key=lambda t: _brute_force_f1(scores, y, np.full(6, t), 2))
    assert _brute_force_f1(scores, y, np.full(6, g), 2) == pytest.approx(
        _brute_force_f1(scores, y, np.full(6, brute), 2)
    )
    per_tag = per_tag_thresholds(scores, y, 2, grid, start=g, min_positives=1)
    f_per_tag = _brute_force_f1(scores, y, per_tag, 2)
    assert f_per_tag >= _brute_force_f1(scores, y, np.full(6, g), 2)
    # Coordinate-wise optimal: no single tag's threshold can be moved to do better.
    for j in range(6):
        for t in grid:
            moved = per_tag.copy()
            moved[j] = t
            assert _brute_force_f1(scores, y, moved, 2) <= f_per_tag + 1e-12


def test_per_tag_thresholds_leave_rare_tags_at_the_start() -> None:
    rng = np.random.default_rng(2)
    y = np.zeros((100, 2), dtype=np.int8)
    y[:3, 1] = 1  # 3 positives
    y[:50, 0] = 1
    scores = rng.random((100, 2))
    thr = per_tag_thresholds(scores, y, 3, start=0.4, min_positives=5)
    assert thr[1] == pytest.approx(0.4)


def test_choose_thresholds_modes() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((600, 4)) < 0.3).astype(np.int8)
    # Tag 3's scores sit much higher than the others': a per-tag threshold should pay off.
    scores = np.clip(0.4 * y + rng.random((600, 4)) * 0.5, 0, 1)
    scores[:, 3] = np.clip(scores[:, 3] + 0.4, 0, 1)
    g_thr, g_report = choose_thresholds(scores, y, max_tags=3, mode="global")
    assert len(set(g_thr.tolist())) == 1
    assert g_report["threshold_mode"] == "global"
    auto_thr, report = choose_thresholds(scores, y, max_tags=3, mode="auto", seed=1)
    assert set(report["threshold_cv_micro_f1"]) == {"global", "per_tag"}
    assert report["threshold_mode"] == "per_tag"
    assert auto_thr[3] > auto_thr[0]
    with pytest.raises(ValueError, match="threshold_mode"):
        choose_thresholds(scores, y, max_tags=3, mode="best")


def test_threshold_search_is_exact_with_a_minimum_top_score() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random((400, 6)) < 0.2).astype(np.int8)
    scores = np.clip(0.5 * y + rng.random((400, 6)) * 0.6, 0, 1)
    grid = np.round(np.arange(0.05, 0.95, 0.05), 2)
    g = global_threshold(scores, y, 2, grid, min_top_score=0.3)

    def f1(t: float) -> float:
        return micro_prf(y, decision_matrix(scores, np.full(6, t), 2, min_top_score=0.3))[2]

    assert f1(g) == pytest.approx(max(f1(t) for t in grid))


def test_the_minimum_top_score_drops_questions_none_of_whose_tags_the_model_knows() -> None:
    rng = np.random.default_rng(7)
    n = 1000
    y = np.zeros((n, 5), dtype=np.int8)
    y[np.arange(n), rng.integers(0, 5, n)] = 1
    y[: n // 4] = 0  # a quarter carry none of the model's tags ...
    scores = rng.random((n, 5)) * 0.05  # ... and the model is unsure about them
    known = np.arange(n) >= n // 4
    scores[known] += 0.5 * y[known] + 0.1 * rng.random((int(known.sum()), 5))
    m = min_top_score(scores, y, max_tags=3)
    assert 0.05 <= m <= 0.3
    with_min = micro_prf(y, decision_matrix(scores, np.full(5, 0.5), 3, min_top_score=m))[2]
    always = micro_prf(y, decision_matrix(scores, np.full(5, 0.5), 3))[2]
    assert with_min > always
    thr, report = choose_thresholds(scores, y, max_tags=3, mode="global")
    assert report["min_top_score"] == m
    pred = decision_matrix(scores, thr, 3, report["min_top_score"])
    assert pred[: n // 4].sum() < 0.05 * (n // 4)  # almost no tag suggested for the unknown quarter
    assert (pred[n // 4 :].sum(axis=1) >= 1).all()  # every other question keeps its tag
    # Fixed: 0 is the old rule, whatever the data say.
    _, fixed = choose_thresholds(scores, y, max_tags=3, mode="global", min_top=0.0)
    assert fixed["min_top_score"] == 0.0
    with pytest.raises(ValueError, match="min_top_score"):
        choose_thresholds(scores, y, max_tags=3, min_top=2.0)


def test_every_question_with_a_known_tag_keeps_the_old_rule() -> None:
    rng = np.random.default_rng(8)
    y = np.zeros((500, 4), dtype=np.int8)
    y[np.arange(500), rng.integers(0, 4, 500)] = 1
    scores = np.clip(0.3 * y + rng.random((500, 4)) * 0.4, 0, 1)
    assert min_top_score(scores, y, max_tags=2) == 0.0

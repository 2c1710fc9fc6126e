from __future__ import annotations

import inspect
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit

from retrain.train import (
    DEFAULT_PARAMS,
    choose_thresholds,
    fit_platt,
    global_threshold,
    nb_ratios,
    per_tag_thresholds,
    prune_weights,
    split_holdouts,
    top_tags,
    train_model,
)
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.scoring import decision_matrix, micro_prf

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def _q(i: int, *, dated: bool = True, tags: tuple[str, ...] = ("python",)) -> Question:
    return Question(
        id=str(1000 + i),
        created_at=T0 + timedelta(hours=i) if dated else None,
        title=f"question {i}",
        body="",
        body_format="none",
        tags=tags,
    )


# --- split_holdouts -------------------------------------------------------------------------------------------------
def test_split_is_disjoint_complete_and_time_ordered() -> None:
    questions = [_q(i) for i in range(100)] + [_q(100 + i, dated=False) for i in range(10)]
    random.Random(1).shuffle(questions)
    splits = split_holdouts(questions, time_fraction=0.2, random_fraction=0.25, seed=3)
    ids = [{q.id for q in part} for part in (splits.train, splits.random_holdout, splits.time_holdout)]
    assert sum(len(s) for s in ids) == len(questions) == len(set().union(*ids))
    # The newest 20% of the 100 dated questions, nothing undated.
    assert len(splits.time_holdout) == 20
    assert all(q.created_at is not None for q in splits.time_holdout)
    oldest_time = min(q.created_at for q in splits.time_holdout if q.created_at)
    assert splits.time_cutoff == oldest_time
    assert all(q.created_at is None or q.created_at < oldest_time for q in splits.train + splits.random_holdout)
    # 25% of the 90 remaining (80 older dated + 10 undated).
    assert len(splits.random_holdout) == round(90 * 0.25)
    # Parts keep the input order.
    position = {q.id: i for i, q in enumerate(questions)}
    assert [position[q.id] for q in splits.train] == sorted(position[q.id] for q in splits.train)


def test_split_breaks_date_ties_by_id() -> None:
    same_time = [
        Question(id=str(i), created_at=T0, title="t", body="", body_format="none", tags=("x",)) for i in (5, 3, 9, 1)
    ]
    splits = split_holdouts(same_time, time_fraction=0.5, random_fraction=0.0, seed=0)
    assert sorted(q.id for q in splits.time_holdout) == ["5", "9"]


def test_split_is_seeded() -> None:
    questions = [_q(i) for i in range(200)]
    a = split_holdouts(questions, seed=1)
    b = split_holdouts(questions, seed=1)
    c = split_holdouts(questions, seed=2)
    assert [q.id for q in a.random_holdout] == [q.id for q in b.random_holdout]
    assert [q.id for q in a.random_holdout] != [q.id for q in c.random_holdout]
    assert [q.id for q in a.time_holdout] == [q.id for q in c.time_holdout]


def test_split_rejects_duplicate_ids_and_bad_fractions() -> None:
    with pytest.raises(ValueError, match="unique"):
        split_holdouts([_q(1), _q(1)], seed=0)
    with pytest.raises(ValueError, match="fractions"):
        split_holdouts([_q(1)], time_fraction=1.0, seed=0)


def test_split_of_the_bundled_data(bundled_questions: list[Question]) -> None:
    splits = split_holdouts(bundled_questions, seed=42)
    n_dated = sum(q.created_at is not None for q in bundled_questions)
    assert len(splits.time_holdout) == round(0.2 * n_dated)
    assert len(splits.random_holdout) == round(0.2 * (len(bundled_questions) - len(splits.time_holdout)))
    ids = [q.id for q in splits.train + splits.random_holdout + splits.time_holdout]
    assert len(ids) == len(set(ids)) == len(bundled_questions)


# --- pure pieces ----------------------------------------------------------------------------------------------------
def test_top_tags_counts_questions_and_breaks_ties_by_name() -> None:
    assert top_tags([("b", "a"), ("a",), ("c", "b"), ("d",)], 3) == ["a", "b", "c"]
    assert top_tags([("a", "a")], 5) == ["a"]  # a question counts once


def test_nb_ratios_by_hand() -> None:
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    y = np.array([[1], [0], [0]])
    r = nb_ratios(x, y, alpha=1.0)
    # positives: p = [1+1, 0+1] -> [2/3, 1/3]; negatives: q = [1+1, 2+1] -> [2/5, 3/5]
    assert r[0] == pytest.approx(np.log(np.array([2 / 3, 1 / 3]) / np.array([2 / 5, 3 / 5])))


def test_prune_keeps_the_largest_weights() -> None:
    w = np.array([[0.1, -5.0, 0.0, 2.0], [0.0, 0.3, -0.2, 4.0]])
    pruned = prune_weights(w, 0.5).toarray()
    assert pruned.tolist() == [[0.0, -5.0, 0.0, 2.0], [0.0, 0.0, 0.0, 4.0]]
    assert np.array_equal(prune_weights(w, 1.0).toarray(), w)
    with pytest.raises(ValueError, match="weight_share"):
        prune_weights(w, 0.0)


def test_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(size=(20_000, 2))
    y = (rng.random((20_000, 2)) < expit(d * np.array([2.0, 0.5]) + np.array([-1.0, 0.3]))).astype(np.int8)
    a, c = fit_platt(d, y)
    assert a == pytest.approx([2.0, 0.5], abs=0.08)
    assert c == pytest.approx([-1.0, 0.3], abs=0.08)


def test_platt_survives_degenerate_columns() -> None:
    d = np.column_stack([np.linspace(-1, 1, 50), np.zeros(50), np.linspace(-1, 1, 50)])
    y = np.zeros((50, 3), dtype=np.int8)
    y[:, 1] = 1  # all positive, constant decision
    a, c = fit_platt(d, y)
    p = expit(d * a + c)
    assert np.all(np.isfinite(a))
    assert np.all(np.isfinite(c))
    assert p[:, 0].max() < 0.1  # no positive: a small probability
    assert p[:, 1].min() > 0.9


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


# --- train_model ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_set(bundled_questions: list[Question]) -> list[Question]:
    return random.Random(11).sample(bundled_questions, 1_500)


def test_train_model_sees_only_the_questions_it_is_given(tiny_set: list[Question]) -> None:
    # No parameter can carry hold-out questions: thresholds and calibration come from a part of ``questions``.
    params = inspect.signature(train_model).parameters
    assert next(iter(params)) == "questions"
    assert not set(params) & {"holdout", "validation", "eval_questions", "test"}
    model = train_model(tiny_set, top_n=15, max_tags=3, seed=1, n_jobs=1)
    assert model.info["n_fit"] + model.info["n_validation"] == len(tiny_set)
    assert model.info["n_validation"] == round(len(tiny_set) * DEFAULT_PARAMS["val_fraction"])
    assert model.info["threshold_mode"] in {"global", "per_tag"}
    assert len(model.tags) == 15
    assert model.max_tags == 3
    assert model.tags == top_tags([q.tags for q in tiny_set], 15)
    assert model.params["top_n"] == 15
    assert model.params["C"] == DEFAULT_PARAMS["C"]


def test_train_model_is_deterministic(tiny_set: list[Question]) -> None:
    a = train_model(tiny_set[:600], top_n=8, max_tags=3, seed=4, n_jobs=2)
    b = train_model(tiny_set[:600], top_n=8, max_tags=3, seed=4, n_jobs=1)
    probe = tiny_set[600:700]
    assert np.array_equal(a.predict_scores(probe), b.predict_scores(probe))
    assert np.array_equal(a.thresholds, b.thresholds)


def test_train_model_rejects_bad_input(tiny_set: list[Question]) -> None:
    with pytest.raises(ValueError, match="unknown training parameters"):
        train_model(tiny_set, top_n=5, learning_rate=0.1)
    with pytest.raises(ValueError, match="at least"):
        train_model(tiny_set[:5], top_n=5)
    untagged = [*tiny_set[:100], _q(1, tags=())]
    with pytest.raises(ValueError, match="no tags"):
        train_model(untagged, top_n=5)
    with pytest.raises(ValueError, match="threshold_mode"):
        train_model(tiny_set, top_n=5, threshold_mode="best")


def test_train_model_learns_something(tiny_set: list[Question], bundled_questions: list[Question]) -> None:
    model: TagModel = train_model(tiny_set, top_n=10, max_tags=3, seed=2)
    seen = {q.id for q in tiny_set}
    unseen = [q for q in bundled_questions if q.id not in seen][::50]
    from retrain.evaluate import evaluate

    metrics = evaluate(model, unseen)
    # 1,500 questions and 10 tags: far from the full model, far above chance (~0.15 for the top-1 prior).
    assert metrics["micro_f1"] > 0.4
    assert metrics["precision_at_1"] > 0.45

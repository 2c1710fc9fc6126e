"""Drift detection on constructed windows of real bundled questions, with the small model of the session."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest

from monitor.detect import (
    Baseline,
    DriftInput,
    DriftResult,
    Prepared,
    Thresholds,
    detect_drift,
    emerging_tags,
    js_distance,
    label_free_estimate,
    micro_f1_standard_error,
    observed_scores,
    prepare,
    rate_shifts,
)
from tagwatch.data import Question
from tagwatch.model import TagModel
from tests.support import unseen_questions

WINDOW = 400
NEW_TAG = "tagwatch-brand-new-framework"


@pytest.fixture(scope="module")
def held_out(bundled_questions: list[Question], small_training_set: list[Question]) -> list[Question]:
    """Questions the small model never saw, shuffled (the model was trained on a random sample of all years)."""
    return unseen_questions(bundled_questions, small_training_set, seed=11)


@pytest.fixture(scope="module")
def stable_pool(held_out: list[Question]) -> list[Question]:
    # Windows drawn from here are i.i.d. with the reference and the baseline below.
    return held_out[3_000:]


@pytest.fixture(scope="module")
def reference(held_out: list[Question], small_model: TagModel) -> Prepared:
    questions = held_out[:1_500]
    return prepare(DriftInput(questions, [q.tags for q in questions]), small_model)


@pytest.fixture(scope="module")
def baseline(held_out: list[Question], small_model: TagModel) -> Baseline:
    from retrain.evaluate import evaluate

    return Baseline.from_metrics(evaluate(small_model, held_out[1_500:3_000]))


def labelled(questions: list[Question]) -> DriftInput:
    return DriftInput(questions, [q.tags for q in questions])


def window(pool: list[Question], seed: int, n: int = WINDOW) -> list[Question]:
    return random.Random(seed).sample(pool, n)


def run(
    reference: Prepared, current: DriftInput, model: TagModel, baseline: Baseline, thresholds: Thresholds | None = None
) -> DriftResult:
    return detect_drift(reference, current, model, baseline, thresholds, report=False)


# --- behaviour on real windows ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_iid_windows_raise_no_alarm(
    seed: int, reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    result = run(reference, labelled(window(stable_pool, seed)), small_model, baseline)
    for kind, r in result.kinds.items():
        assert r.enough_data, (kind, r.reasons)
        assert not r.detected, (kind, r.score, r.reasons)
    assert result.data.score is not None
    assert 0.4 < result.data.score < result.thresholds.text_auc
    assert result.emerging_tags == []
    assert result.label_free["detected"] is False


def test_topic_swap_raises_data_drift(
    reference: Prepared, held_out: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    # The reference covers all years; the window holds only questions from 2022 on (pandas, polars, ...).
    recent = [q for q in held_out[3_000:] if q.created_at is not None and q.created_at.year >= 2022]
    result = run(reference, DriftInput(window(recent, 5)), small_model, baseline)
    assert result.data.detected, result.data.reasons
    assert result.data.score is not None
    assert result.data.score > 0.65
    assert any("text drift" in r for r in result.data.reasons)
    words = result.characteristic_words
    assert len(words["current"]) >= 10
    assert len(words["reference"]) >= 10
    assert not set(words["current"]) & set(words["reference"])
    # No feedback in the window: the concept kind cannot say anything, and says so.
    assert not result.concept.enough_data
    assert not result.concept.detected
    assert result.concept.score is None


def test_language_swap_raises_data_drift(small_model: TagModel, baseline: Baseline, held_out: list[Question]) -> None:
    java = [q for q in held_out if {"java", "android"} & set(q.tags)][:WINDOW]
    python = [q for q in held_out if {"python", "pandas"} & set(q.tags)][:WINDOW]
    result = run(prepare(labelled(java), small_model), labelled(python), small_model, baseline)
    assert result.data.detected
    assert result.data.score is not None
    assert result.data.score > 0.85
    # the true tags moved as much as the text
    assert result.concept.detected
    assert result.concept.details["signals"]["label_shift_share"]["exceeded"]


def test_new_tag_in_feedback_raises_concept_drift(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 7)
    # A fifth of the feedback carries a tag the model cannot predict (a new framework): the text did not change.
    tags = [(*q.tags, NEW_TAG) if i % 5 == 0 else q.tags for i, q in enumerate(questions)]
    result = run(reference, DriftInput(questions, tags), small_model, baseline)
    assert result.concept.detected, result.concept.reasons
    assert result.emerging_tags[0] == (NEW_TAG, WINDOW // 5)
    assert result.concept.details["signals"]["emerging_share"]["value"] == pytest.approx(0.2)
    assert any(NEW_TAG in r for r in result.concept.reasons)
    assert not result.data.detected


def test_swapped_tags_raise_concept_and_feature_drift(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    # The text->tag relation changes: what used to be tagged a is now tagged b and the other way round.
    counts = reference.true.sum(axis=0)
    a, b = (small_model.tags[j] for j in np.argsort(-counts)[:2])
    swap = {a: b, b: a}
    questions = window(stable_pool, 9)
    tags = [tuple(swap.get(t, t) for t in q.tags) for q in questions]
    result = run(reference, DriftInput(questions, tags), small_model, baseline)
    assert not result.data.detected
    assert result.concept.detected, result.concept.reasons
    assert result.concept.details["signals"]["f1_drop"]["exceeded"]
    assert result.feature.detected, result.feature.reasons
    changed = {
        r["tag"] for r in result.feature.details["importance_by_tag"] if r["drop"] > result.thresholds.importance_drop
    }
    assert changed == {a, b}
    # the same window with its real tags raises nothing
    honest = run(reference, labelled(questions), small_model, baseline)
    assert not honest.concept.detected
    assert not honest.feature.detected


def test_minimum_sizes_are_respected(
    reference: Prepared, held_out: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    recent = [q for q in held_out[3_000:] if q.created_at is not None and q.created_at.year >= 2022]
    questions = recent[:60]
    tags = [(*q.tags, NEW_TAG) for q in questions]
    result = run(reference, DriftInput(questions, tags), small_model, baseline)
    for kind, r in result.kinds.items():
        assert not r.enough_data, kind
        assert not r.detected, (kind, r.reasons)
        assert any("not enough data" in x for x in r.reasons), (kind, r.reasons)
    # the signals are still measured and shown
    assert result.data.score is not None
    assert result.concept.score is not None
    assert result.concept.score > 1
    # a window that would alarm is not enough when the minimum is raised above its size
    big = window(recent, 3, 300)
    strict = Thresholds(min_current=301, min_feedback=301, min_feature_feedback=301)
    relaxed = run(reference, labelled(big), small_model, baseline)
    blocked = run(reference, labelled(big), small_model, baseline, strict)
    assert relaxed.data.detected
    assert not blocked.data.detected
    assert not blocked.data.enough_data
    assert relaxed.data.score == pytest.approx(blocked.data.score)


def test_partial_feedback_and_logged_predictions(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 13)
    scores = small_model.predict_scores(questions)
    predicted = small_model.decide(scores)
    tags = [q.tags if i % 2 else None for i, q in enumerate(questions)]
    result = run(reference, DriftInput(questions, tags, predicted, scores), small_model, baseline)
    assert result.sizes == {"reference": 1_500, "current": WINDOW, "feedback": WINDOW // 2, "reference_labelled": 1_500}
    assert result.concept.sample_size == WINDOW // 2
    assert result.label_free["feedback_observed"]["n_questions"] == WINDOW // 2
    again = run(reference, DriftInput(questions, tags), small_model, baseline)
    assert again.to_dict()["kinds"] == result.to_dict()["kinds"]


def test_label_free_estimate_tracks_observed_f1(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    result = run(reference, labelled(window(stable_pool, 17, 1_000)), small_model, baseline)
    estimate = result.label_free["current"]["micro_f1"]
    observed = result.label_free["feedback_observed"]["micro_f1"]
    # calibrated scores: the expected F1 is close to what feedback says, and to the estimate on the reference
    assert abs(estimate - observed) < 0.1
    assert abs(result.label_free["drop"]) < result.thresholds.expected_f1_drop


def test_to_dict_is_json_with_stable_keys(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 19, 100)
    result = detect_drift(reference, labelled(questions), small_model, baseline, report=True)
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(d) == {
        "model_version",
        "sizes",
        "kinds",
        "detected",
        "label_free",
        "characteristic_words",
        "emerging_tags",
        "thresholds",
        "duration_seconds",
    }
    assert list(d["kinds"]) == ["data", "concept", "feature"]
    for kind, k in d["kinds"].items():
        assert {"kind", "score", "threshold", "detected", "sample_size", "enough_data", "reasons", "details"} <= set(k)
        assert k["kind"] == kind
    assert d["thresholds"]["text_auc"] == result.thresholds.text_auc
    assert result.snapshot is not None


# --- input checks ----------------------------------------------------------------------------------------


def test_bad_inputs_are_rejected(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 23, 30)
    n_tags = len(small_model.tags)
    with pytest.raises(ValueError, match="shape"):
        run(reference, DriftInput(questions, scores=np.zeros((30, n_tags + 1))), small_model, baseline)
    with pytest.raises(ValueError, match="probabilities"):
        run(reference, DriftInput(questions, scores=np.full((30, n_tags), 2.0)), small_model, baseline)
    with pytest.raises(ValueError, match="does not know"):
        run(reference, DriftInput(questions, predicted=[[("no-such-tag", 0.9)]] * 30), small_model, baseline)
    with pytest.raises(ValueError, match="tag sets for"):
        run(reference, DriftInput(questions, [("python",)]), small_model, baseline)
    with pytest.raises(ValueError, match="empty tag set"):
        run(reference, DriftInput(questions, [()] * 30), small_model, baseline)
    with pytest.raises(ValueError, match="tuple of tag names"):
        run(reference, DriftInput(questions, ["python"] * 30), small_model, baseline)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="other thresholds"):
        run(reference, DriftInput(questions), small_model, baseline, Thresholds(max_rows=100))
    with pytest.raises(ValueError, match="another model"):
        run(replace(reference, model_key=("v0",)), DriftInput(questions), small_model, baseline)
    with pytest.raises(ValueError, match="no true tags"):
        run(prepare(DriftInput(questions), small_model), DriftInput(questions), small_model, baseline)
    with pytest.raises(ValueError, match="text_auc"):
        Thresholds(text_auc=0.4)
    with pytest.raises(ValueError, match="min_feedback"):
        Thresholds(min_feedback=0)
    with pytest.raises(ValueError, match="micro_f1"):
        Baseline(micro_f1=1.5, samples_jaccard=0.5)
    with pytest.raises(ValueError, match="lack"):
        Baseline.from_metrics({"micro_f1": 0.5})


# --- pure statistics -------------------------------------------------------------------------------------


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

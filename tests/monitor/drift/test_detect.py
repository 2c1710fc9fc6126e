"""Drift detection end to end on constructed windows of real bundled questions, with the small model of the session:
what each kind detects, and what it does not."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from monitor.drift.detect import detect_drift, prepare
from monitor.drift.prepare import Prepared
from monitor.drift.types import Baseline, DriftInput
from tagwatch.data import Question
from tagwatch.model import TagModel
from tests.monitor.drift.support import NEW_TAG, THRESHOLDS, WINDOW, labelled, run, window

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
    result = run(prepare(labelled(java), small_model, THRESHOLDS), labelled(python), small_model, baseline)
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
    strict = replace(THRESHOLDS, min_current=301, min_feedback=301, min_feature_feedback=301)
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
    result = detect_drift(reference, labelled(questions), small_model, baseline, THRESHOLDS, report=True)
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


def test_sides_must_belong_to_the_run(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 23, 30)
    with pytest.raises(ValueError, match="other thresholds"):
        run(reference, DriftInput(questions), small_model, baseline, replace(THRESHOLDS, max_rows=100))
    with pytest.raises(ValueError, match="another model"):
        run(replace(reference, model_key=("v0",)), DriftInput(questions), small_model, baseline)
    with pytest.raises(ValueError, match="no true tags"):
        run(prepare(DriftInput(questions), small_model, THRESHOLDS), DriftInput(questions), small_model, baseline)

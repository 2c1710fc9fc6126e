from __future__ import annotations

import random

import numpy as np
import pytest

from retrain.evaluate import evaluate, markdown_table, run_protocol, time_predictions
from retrain.split import split_holdouts
from retrain.train import train_model
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.scoring import binarize, micro_prf

METRICS = ("micro_f1", "macro_f1", "samples_jaccard", "precision_at_1", "precision_at_3", "recall_at_3")


@pytest.fixture(scope="module")
def unseen(bundled_questions: list[Question], small_training_set: list[Question]) -> list[Question]:
    seen = {q.id for q in small_training_set}
    return [q for q in bundled_questions if q.id not in seen][::25][:1_000]


def test_evaluate_reports_every_metric_in_range(small_model: TagModel, unseen: list[Question]) -> None:
    m = evaluate(small_model, unseen)
    for name in METRICS:
        assert 0.0 <= m[name] <= 1.0, name
    assert m["n_questions"] == len(unseen)
    assert set(m["per_tag_f1"]) == set(small_model.tags)
    assert sum(m["per_tag_support"].values()) == int(binarize([q.tags for q in unseen], small_model.tags).sum())
    assert 1.0 <= m["mean_predicted_tags"] <= small_model.max_tags
    # Every leaf is a number or a {tag: number} dict (what the registry logs).
    for value in m.values():
        assert isinstance(value, int | float) or all(isinstance(v, int | float) for v in value.values())


def test_evaluate_agrees_with_the_predictions(small_model: TagModel, unseen: list[Question]) -> None:
    m = evaluate(small_model, unseen)
    predicted = [[t for t, _ in row] for row in small_model.predict(unseen)]
    y_pred = binarize(predicted, small_model.tags)
    y_true = binarize([q.tags for q in unseen], small_model.tags)
    assert m["micro_f1"] == pytest.approx(micro_prf(y_true, y_pred)[2])
    # P@1 ranks by score, suggested or not (a question may get no suggestion under the minimum top score).
    scores = small_model.predict_scores(unseen)
    top1 = [small_model.tags[int(j)] for j in np.argmax(scores, axis=1)]
    assert m["precision_at_1"] == pytest.approx(np.mean([t in q.tags for t, q in zip(top1, unseen, strict=True)]))


def test_tags_outside_the_vocabulary_are_neither_hits_nor_misses(small_model: TagModel, unseen: list[Question]) -> None:
    base = unseen[:200]
    extra = [
        Question(q.id, q.created_at, q.title, q.body, q.body_format, (*q.tags, "zz-not-a-model-tag")) for q in base
    ]
    a, b = evaluate(small_model, base), evaluate(small_model, extra)
    assert a["micro_f1"] == b["micro_f1"]
    assert a["recall_at_3"] == b["recall_at_3"]
    assert b["tag_coverage"] < a["tag_coverage"]
    outside = [Question("x", None, q.title, q.body, q.body_format, ("zz-not-a-model-tag",)) for q in base[:10]]
    m = evaluate(small_model, outside)
    # No true tag in the vocabulary: every (at least one) predicted tag is a false positive.
    assert m["micro_f1"] == 0.0
    assert m["no_vocabulary_tag_share"] == 1.0


def test_evaluate_rejects_no_questions(small_model: TagModel) -> None:
    with pytest.raises(ValueError, match="no questions"):
        evaluate(small_model, [])


def test_the_protocol_end_to_end_on_a_sample(bundled_questions: list[Question]) -> None:
    sample = random.Random(5).sample(bundled_questions, 2_500)
    result = run_protocol(sample, top_n=15, max_tags=4, seed=5, timing_questions=20)
    assert result["sizes"]["time_holdout"] == round(0.2 * sum(q.created_at is not None for q in sample))
    assert result["holdout_random"]["n_questions"] == result["sizes"]["random_holdout"]
    for holdout in ("holdout_random", "holdout_time"):
        assert result[holdout]["micro_f1"] > 0.3
    assert result["timing"]["predict_ms"] > 0
    assert result["timing"]["transform_ms"] > 0
    # The anchors' protocol: a second model on a random 80 % of all the questions, scored on the other 20 %.
    anchors = result["holdout_anchors"]
    assert anchors["n_questions"] == round(0.2 * len(sample))
    assert anchors["n_train"] == len(sample) - anchors["n_questions"]
    assert anchors["micro_f1"] > 0.3
    table = markdown_table(result)
    assert table.splitlines()[0] == "| metric | random hold-out | time hold-out | anchors' protocol |"
    assert "| micro_f1 |" in table
    without = {k: v for k, v in result.items() if k != "holdout_anchors"}
    assert markdown_table(without).splitlines()[0] == "| metric | random hold-out | time hold-out |"


def test_single_question_prediction_is_close_to_the_transform_cost(
    small_model: TagModel, unseen: list[Question]
) -> None:
    timing = time_predictions(small_model, unseen[:60], repeat=3)
    # Scoring all tags and deciding adds a fraction of what turning the text into features costs (bench target:
    # <= 1.5x at 100 tags; generous here, timings on shared CI machines are noisy).
    assert timing["predict_ms"] <= 2.5 * timing["transform_ms"]


# --- the full protocol on the bundled data (slow: ~3-4 minutes on 2 cores) ----------------------------------------
@pytest.mark.slow
def test_quality_on_the_bundled_data(bundled_questions: list[Question]) -> None:
    splits = split_holdouts(bundled_questions, seed=42)
    model = train_model(splits.train, top_n=100, max_tags=5, seed=42)
    random_holdout = evaluate(model, splits.random_holdout)
    time_holdout = evaluate(model, splits.time_holdout)
    # The targets (bench/results/model_quality.md: 0.6959 / 0.6488 measured; training is deterministic). The
    # anchors' protocol (>= 0.69, measured 0.7029) needs a second model: `python -m retrain.evaluate` runs it.
    assert random_holdout["micro_f1"] >= 0.68
    assert time_holdout["micro_f1"] >= 0.645
    assert random_holdout["precision_at_1"] >= 0.67
    # The choices that got there, made on the validation part.
    assert model.info["calibration"] == "global"
    assert 0 < model.min_top_score <= 0.3

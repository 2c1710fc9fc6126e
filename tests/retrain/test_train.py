"""Training a TagModel on the questions it is given alone."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest

from retrain.train import DEFAULT_PARAMS, top_tags, train_model
from tagwatch.data import Question
from tagwatch.model import TagModel
from tests.retrain.support import question as _q


def test_top_tags_counts_questions_and_breaks_ties_by_name() -> None:
    assert top_tags([("b", "a"), ("a",), ("c", "b"), ("d",)], 3) == ["a", "b", "c"]
    assert top_tags([("a", "a")], 5) == ["a"]  # a question counts once


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
    with pytest.raises(ValueError, match="min_top_score"):
        train_model(tiny_set, top_n=5, min_top_score=1.5)
    with pytest.raises(ValueError, match="min_top_score"):
        train_model(tiny_set, top_n=5, min_top_score="best")


def test_train_model_learns_something(tiny_set: list[Question], bundled_questions: list[Question]) -> None:
    model: TagModel = train_model(tiny_set, top_n=10, max_tags=3, seed=2)
    seen = {q.id for q in tiny_set}
    unseen = [q for q in bundled_questions if q.id not in seen][::50]
    from retrain.evaluate import evaluate

    metrics = evaluate(model, unseen)
    # 1,500 questions and 10 tags: far from the full model, far above chance (~0.15 for the top-1 prior).
    assert metrics["micro_f1"] > 0.4
    assert metrics["precision_at_1"] > 0.45

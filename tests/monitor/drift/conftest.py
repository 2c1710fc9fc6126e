"""The drift tests' reference, baseline and window pool: real bundled questions the small model never saw."""

from __future__ import annotations

import pytest

from monitor.drift.detect import prepare
from monitor.drift.prepare import Prepared
from monitor.drift.types import Baseline, DriftInput
from tagwatch.data import Question
from tagwatch.model import TagModel
from tests.monitor.drift.support import THRESHOLDS
from tests.support import unseen_questions


@pytest.fixture(scope="package")
def held_out(bundled_questions: list[Question], small_training_set: list[Question]) -> list[Question]:
    """Questions the small model never saw, shuffled (the model was trained on a random sample of all years)."""
    return unseen_questions(bundled_questions, small_training_set, seed=11)


@pytest.fixture(scope="package")
def stable_pool(held_out: list[Question]) -> list[Question]:
    # Windows drawn from here are i.i.d. with the reference and the baseline below.
    return held_out[3_000:]


@pytest.fixture(scope="package")
def reference(held_out: list[Question], small_model: TagModel) -> Prepared:
    questions = held_out[:1_500]
    return prepare(DriftInput(questions, [q.tags for q in questions]), small_model, THRESHOLDS)


@pytest.fixture(scope="package")
def baseline(held_out: list[Question], small_model: TagModel) -> Baseline:
    from retrain.evaluate import evaluate

    return Baseline.from_metrics(evaluate(small_model, held_out[1_500:3_000]))

"""The backtest's poisoned-feedback scenario, small: the real detection, policy and gate on the small model."""

from __future__ import annotations

import copy
from typing import Any

from commands.backtest import run_backtest, windows_of
from commands.scenarios import random_tags, swap_tags
from monitor.drift.types import Thresholds
from monitor.policy import Policy
from retrain.config import RetrainConfig
from tagwatch.data import Question
from tagwatch.settings import Settings
from tests.support import SMALL_MODEL_TAGS, unseen_questions


def test_swap_and_random_relabelling(small_training_set: list[Question]) -> None:
    q = next(q for q in small_training_set if "python" in q.tags)
    swapped = swap_tags()(q)
    assert "javascript" in swapped.tags
    assert "python" not in swapped.tags
    assert len(swapped.tags) == len(q.tags)
    vocabulary = ["python", "java", "c#", "javascript", "android", "ios", "html", "css"]
    wrong = random_tags(vocabulary, seed=1)(q)
    assert wrong.tags
    assert not set(wrong.tags) & set(q.tags)
    assert set(wrong.tags) <= set(vocabulary)


def test_poisoned_feedback_promotes_nothing(
    small_model: Any, small_training_set: list[Question], bundled_questions: list[Question], tmp_path: Any
) -> None:
    from retrain.evaluate import evaluate

    settings = Settings(home=tmp_path, drift_confirmations=1, retrain_cooldown_windows=1, retrain_min_labelled=300)
    unseen = unseen_questions(bundled_questions, small_training_set, seed=5)
    reference, guard, stream = small_training_set[:600], unseen[:800], unseen[800:2000]
    common: dict[str, Any] = {
        "thresholds": Thresholds.from_settings(settings),
        "policy": Policy.from_settings(settings),
        "retrain_config": RetrainConfig.from_settings(settings),
        "top_n": SMALL_MODEL_TAGS,
        "max_tags": 5,
        "seed": 3,
        "arms": ("policy",),
        "guard": guard,
    }
    baseline = evaluate(small_model, reference)
    for relabel in (swap_tags(), random_tags(small_model.tags, seed=3)):
        result = run_backtest(
            copy.copy(small_model), reference, baseline, windows_of(stream, 400), relabel=relabel, **common
        )
        retrains = [w.retrain for w in result.windows if w.retrain]
        # The lies are noticed (concept drift on the feedback), a retrain is tried, and nothing is promoted.
        assert result.alarms() >= 1
        assert retrains
        assert all(label.startswith(("held", "rejected")) for label in retrains), retrains
        assert all(w.policy_version == "1" for w in result.windows)

"""The feedback gate: feedback that contradicts the champion's confident predictions like poisoned labels do."""

from __future__ import annotations

from typing import Any

from retrain.config import RetrainConfig
from retrain.gate import feedback_disagreement


def _confident(rows: list[list[str]], tags: list[str]) -> Any:
    import numpy as np

    return np.array([[0.95 if t in row else 0.02 for t in tags] for row in rows])


def test_feedback_disagreement_flags_consistent_relabelling() -> None:
    tags = ["python", "javascript", "java"]
    truth = [["python"]] * 30 + [["javascript"]] * 30 + [["java"]] * 30
    swapped = [["javascript"]] * 30 + [["python"]] * 30 + [["java"]] * 30
    scores = _confident(truth, tags)
    config = RetrainConfig()
    lies = feedback_disagreement(tags, scores, swapped, scores, truth, config)
    assert lies.hold
    assert set(lies.suspect) == {"python", "javascript"}
    assert "java" in lies.stable
    assert "java" not in lies.suspect
    assert "suspected poisoned feedback" in lies.reason()
    honest = feedback_disagreement(tags, scores, truth, scores, truth, config)
    assert not honest.hold
    assert honest.pooled() == 0.0
    # Switched off: measured, never held.
    off = feedback_disagreement(tags, scores, swapped, scores, truth, RetrainConfig(suspect_contradiction=None))
    assert not off.hold
    assert not off.checked


def test_feedback_disagreement_spares_tags_whose_questions_drifted() -> None:
    tags = ["python", "javascript"]
    # In the trusted guard set python questions are rare; in the feedback they are 4x as common and labelled
    # otherwise: a topic that moved, not a lie about a stable one.
    guard = [["python"]] * 10 + [["javascript"]] * 90
    feedback_truth = [["python"]] * 40 + [["javascript"]] * 60
    feedback = [["python-3.x"]] * 40 + [["javascript"]] * 60
    held = feedback_disagreement(
        tags, _confident(feedback_truth, tags), feedback, _confident(guard, tags), guard, RetrainConfig()
    )
    assert "python" not in held.stable
    assert not held.hold
    # Too few confident predictions of a tag prove nothing either.
    few = feedback_disagreement(
        tags,
        _confident([["python"]] * 5 + [["javascript"]] * 95, tags),
        [["javascript"]] * 100,
        _confident([["python"]] * 5 + [["javascript"]] * 95, tags),
        [["python"]] * 5 + [["javascript"]] * 95,
        RetrainConfig(suspect_min_confident=10),
    )
    assert not few.hold

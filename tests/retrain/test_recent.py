"""The challenger's data: the newest labelled questions split into training part and hold-out, plus reference."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retrain.config import RetrainConfig
from retrain.recent import InsufficientData, mix_reference, split_recent
from tagwatch.data import Question
from tests.retrain.support import labelled as _labelled


def test_split_recent_keeps_the_newest_as_holdout(small_training_set: list[Question]) -> None:
    labelled = _labelled(small_training_set, 1000, datetime(2024, 1, 1, tzinfo=UTC))
    train, holdout = split_recent(labelled, RetrainConfig(window=800, holdout_fraction=0.25))
    assert len(holdout) == 200
    assert len(train) == 600
    assert max(q.created_at for q in train) < min(q.created_at for q in holdout)  # type: ignore[type-var]
    with pytest.raises(InsufficientData):
        split_recent(labelled[:150], RetrainConfig(min_labelled=300))


def test_mix_reference_adds_only_questions_not_already_recent(small_training_set: list[Question]) -> None:
    labelled = _labelled(small_training_set, 400, datetime(2024, 1, 1, tzinfo=UTC))
    recent, reference = labelled[200:], labelled[:300]  # 100 of the reference are recent too
    mixed = mix_reference(recent, reference, ratio=1.0, seed=0)
    ids = [q.id for q in mixed]
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == {q.id for q in labelled}
    assert len(mix_reference(recent, reference, ratio=0.25, seed=0)) == 250


def test_split_recent_caps_the_holdout(small_training_set: list[Question]) -> None:
    labelled = _labelled(small_training_set, 1000, datetime(2024, 1, 1, tzinfo=UTC))
    train, holdout = split_recent(labelled, RetrainConfig(window=1000, holdout_fraction=0.25, max_holdout=150))
    assert [q.id for q in holdout] == [q.id for q in labelled[-150:]]
    assert len(train) == 850
    # The cap never goes below the minimum hold-out.
    _, holdout = split_recent(labelled, RetrainConfig(window=1000, min_holdout=200, max_holdout=150))
    assert len(holdout) == 200

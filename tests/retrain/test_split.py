"""The hold-outs split off before training: time hold-out and random hold-out."""

from __future__ import annotations

import random

import pytest

from retrain.split import random_split, split_holdouts
from tagwatch.data import Question
from tests.retrain.support import T0
from tests.retrain.support import question as _q


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


def test_random_split_is_the_anchors_protocol() -> None:
    questions = [_q(i) for i in range(50)] + [_q(50 + i, dated=False) for i in range(50)]
    train, test = random_split(questions, test_fraction=0.2, seed=0)
    assert len(test) == 20
    assert len(train) == 80
    assert {q.id for q in train}.isdisjoint({q.id for q in test})
    # Dates play no part: undated and old questions land in the test part alike.
    assert any(q.created_at is None for q in test)
    assert any(q.created_at is not None for q in test)
    # Seeded and order-keeping.
    assert random_split(questions, seed=0) == (train, test)
    assert random_split(questions, seed=1)[1] != test
    position = {q.id: i for i, q in enumerate(questions)}
    assert [position[q.id] for q in test] == sorted(position[q.id] for q in test)
    with pytest.raises(ValueError, match="test_fraction"):
        random_split(questions, test_fraction=1.0)

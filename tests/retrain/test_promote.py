"""The retrain job on a real registry: train, judge, promote or hold; and rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retrain.config import RetrainConfig
from retrain.promote import retrain, rollback
from tagwatch.data import Question
from tests.retrain.support import labelled as _labelled
from tests.support import unseen_questions


def test_retrain_promotes_on_a_new_topic(registry_with_champion: Any, bundled_questions: list[Question]) -> None:
    registry = registry_with_champion
    # Recent questions about a topic the champion (random 2008-2025 sample, 40 tags) barely knows.
    polars = [q for q in bundled_questions if "python-polars" in q.tags][:700]
    labelled = _labelled(polars, 700, datetime(2024, 6, 1, tzinfo=UTC))
    outcome = retrain(
        registry,
        labelled,
        config=RetrainConfig(window=700, reference_size=300),
        top_n=40,
        max_tags=5,
        seed=1,
        trigger="test",
    )
    assert outcome.result == "promoted", outcome
    assert outcome.champion_version == outcome.challenger_version == "2"
    assert registry.get_alias("previous") == "1"
    assert outcome.comparison["challenger_micro_f1"] > outcome.comparison["champion_micro_f1"]
    info = registry.version_info("2")
    assert info.lineage["trigger"] == "test"
    assert info.lineage["parent_version"] == "1"
    assert "python-polars" in info.tags
    # The new reference: the newest questions of its data window (hold-out included), reference_size of them.
    assert [q.id for q in registry.load_reference("2")] == [q.id for q in labelled[-300:]]
    assert rollback(registry) == ("2", "1")
    assert registry.champion_version() == "1"
    assert registry.get_alias("previous") == "2"


def test_retrain_rejects_a_challenger_that_does_not_win(
    registry_with_champion: Any, small_training_set: list[Question]
) -> None:
    registry = registry_with_champion
    # The champion's own distribution, and a bar no challenger can clear.
    labelled = _labelled(small_training_set[600:1400], 800, datetime(2024, 1, 1, tzinfo=UTC))
    outcome = retrain(
        registry,
        labelled,
        config=RetrainConfig(window=800, min_improvement=0.5),
        top_n=40,
        max_tags=5,
        seed=1,
        trigger="test",
    )
    assert outcome.result == "rejected"
    assert registry.champion_version() == "1"
    assert registry.get_alias("challenger") == outcome.challenger_version == "2"
    assert registry.get_alias("previous") is None


def test_failed_retrain_leaves_the_champion(
    registry_with_champion: Any, small_training_set: list[Question], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_with_champion
    labelled = _labelled(small_training_set, 800, datetime(2024, 1, 1, tzinfo=UTC))
    import retrain.train as train_module

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("out of memory while fitting")

    # The one injected fault: training dies half-way.
    monkeypatch.setattr(train_module, "train_model", broken)
    outcome = retrain(
        registry, labelled, config=RetrainConfig(window=800), top_n=40, max_tags=5, seed=1, trigger="test"
    )
    assert outcome.result == "failed"
    assert "out of memory" in (outcome.error or "")
    assert registry.champion_version() == "1"
    assert [v.version for v in registry.list_versions()] == ["1"]
    # Too little data is a failure too, not a crash.
    short = retrain(registry, labelled[:100], config=RetrainConfig(), top_n=40, max_tags=5, seed=1, trigger="t")
    assert short.result == "failed"
    assert "labelled questions" in (short.error or "")
    assert registry.champion_version() == "1"


@pytest.fixture
def registry_with_guard(
    settings: Any, small_model: Any, small_training_set: list[Question], bundled_questions: list[Question]
) -> tuple[Any, list[Question]]:
    """A champion (the small model) registered with a trusted guard set of questions it never trained on, and more
    questions it never saw."""
    import copy

    from retrain.evaluate import evaluate
    from tagwatch.registry import Registry

    unseen = unseen_questions(bundled_questions, small_training_set, seed=3)
    registry = Registry.from_settings(settings)
    version = registry.register(
        copy.copy(small_model),
        params=small_model.params,
        metrics={"holdout_random": evaluate(small_model, small_training_set[:600])},
        data_window={"n_questions": len(small_training_set)},
        reference=small_training_set[:600],
        guard=unseen[:1000],
    )
    registry.promote(version)
    return registry, unseen[1000:]


SWAP = {"python": "javascript", "javascript": "python", "java": "c#", "c#": "java", "android": "ios", "ios": "android"}


def _swapped(questions: list[Question]) -> list[Question]:
    import dataclasses

    return [dataclasses.replace(q, tags=tuple(SWAP.get(t, t) for t in q.tags)) for q in questions]


def test_retrain_holds_feedback_that_swaps_frequent_tags(registry_with_guard: Any) -> None:
    registry, unseen = registry_with_guard
    labelled = _labelled(_swapped(unseen), 900, datetime(2024, 1, 1, tzinfo=UTC))
    outcome = retrain(registry, labelled, config=RetrainConfig(window=900), top_n=40, max_tags=5, seed=1, trigger="t")
    assert outcome.result == "held", outcome.comparison
    assert outcome.challenger_version is None
    feedback = outcome.comparison["feedback"]
    assert {"python", "javascript"} <= set(feedback["suspect"])
    # Nothing learned, nothing registered, nothing moved.
    assert registry.champion_version() == "1"
    assert [v.version for v in registry.list_versions()] == ["1"]
    # The same questions with honest feedback pass the check (the bar below keeps the champion: no training needed
    # to know the check is what held the first one).
    honest = _labelled(unseen, 900, datetime(2024, 1, 1, tzinfo=UTC))
    fine = retrain(
        registry,
        honest,
        config=RetrainConfig(window=900, min_improvement=0.5),
        top_n=40,
        max_tags=5,
        seed=1,
        trigger="t",
    )
    assert fine.result == "rejected"
    assert fine.comparison["feedback"]["hold"] is False
    # The challenger inherits the champion's guard set: feedback never replaces trusted labels.
    assert [q.id for q in registry.load_guard(fine.challenger_version)] == [q.id for q in registry.load_guard("1")]


def test_guard_set_stops_a_poisoned_challenger_the_feedback_check_let_through(registry_with_guard: Any) -> None:
    registry, unseen = registry_with_guard
    labelled = _labelled(_swapped(unseen), 900, datetime(2024, 1, 1, tzinfo=UTC))
    outcome = retrain(
        registry,
        labelled,
        # The first line of defence off: the challenger learns the swapped tags and wins on the (swapped) hold-out.
        config=RetrainConfig(window=900, suspect_contradiction=None),
        top_n=40,
        max_tags=5,
        seed=1,
        trigger="t",
    )
    assert outcome.result == "rejected", outcome.comparison
    comparison = outcome.comparison
    assert comparison["challenger_micro_f1"] > comparison["champion_micro_f1"]
    assert comparison["guard"]["challenger_micro_f1"] < comparison["guard"]["champion_micro_f1"] - 0.1
    assert registry.champion_version() == "1"


def test_rollback_without_previous(registry_with_champion: Any) -> None:
    with pytest.raises(LookupError, match="previous"):
        rollback(registry_with_champion)

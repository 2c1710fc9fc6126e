"""Challenger against champion: the pure comparison, and the retrain job on a real registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrain.promote import (
    InsufficientData,
    RetrainConfig,
    compare,
    feedback_disagreement,
    holdout_scores,
    mix_reference,
    retrain,
    rollback,
    split_recent,
)
from tagwatch.data import Question
from tests.support import unseen_questions


def test_holdout_scores_counts_unpredictable_tags_as_misses() -> None:
    s = holdout_scores([["python"], ["java", "spring"]], [["python", "polars"], ["java"]])
    # tp: python, java = 2; fp: spring = 1; fn: polars = 1 -> 2*2 / (4 + 1 + 1)
    assert s.micro_f1 == pytest.approx(4 / 6)
    assert s.per_tag_f1["polars"] == 0.0
    assert s.per_tag_f1["python"] == 1.0
    assert s.support == {"python": 1, "polars": 1, "java": 1}


def _scores(f1: float, per_tag: dict[str, float], support: int = 50) -> Any:
    from retrain.promote import HoldoutScores

    return HoldoutScores(f1, per_tag, dict.fromkeys(per_tag, support), 200)


def test_compare_promotes_a_clear_winner() -> None:
    c = compare(_scores(0.50, {"python": 0.8}), _scores(0.60, {"python": 0.78}), RetrainConfig())
    assert c.promote
    assert c.reasons[-1] == "promote"


def test_compare_needs_the_margin() -> None:
    c = compare(_scores(0.50, {"python": 0.8}), _scores(0.505, {"python": 0.8}), RetrainConfig(min_improvement=0.01))
    assert not c.promote
    assert "needs >= +0.0100" in c.reasons[0]


def test_compare_rejects_a_frequent_tag_regression() -> None:
    champion = _scores(0.50, {"python": 0.8, "java": 0.7})
    challenger = _scores(0.70, {"python": 0.5, "java": 0.9})
    c = compare(champion, challenger, RetrainConfig(max_tag_regression=0.15))
    assert not c.promote
    assert set(c.regressions) == {"python"}
    # A rare tag may regress: it is below the support bound.
    rare = compare(
        _scores(0.5, {"python": 0.8}, support=5),
        _scores(0.7, {"python": 0.1}, support=5),
        RetrainConfig(frequent_tag_support=20),
    )
    assert rare.promote


def test_compare_holds_a_challenger_that_falls_on_the_guard_set() -> None:
    config = RetrainConfig(guard_tolerance=0.05, guard_max_tag_drop=0.3)
    recent = (_scores(0.40, {"python": 0.5}), _scores(0.60, {"python": 0.9}))
    fine = compare(
        *recent, config, guard_champion=_scores(0.50, {"python": 0.8}), guard_challenger=_scores(0.46, {"python": 0.7})
    )
    assert fine.promote
    assert fine.to_dict()["guard"]["challenger_micro_f1"] == 0.46
    # Wins on the recent hold-out (whose labels feedback chose), loses on trusted labels: kept out.
    overall = compare(
        *recent, config, guard_champion=_scores(0.50, {"python": 0.8}), guard_challenger=_scores(0.44, {"python": 0.8})
    )
    assert not overall.promote
    assert any("may fall by 0.0500 at most" in r for r in overall.reasons)
    one_tag = compare(
        *recent,
        config,
        guard_champion=_scores(0.50, {"python": 0.8, "java": 0.7}),
        guard_challenger=_scores(0.50, {"python": 0.1, "java": 0.75}),
    )
    assert not one_tag.promote
    assert set(one_tag.guard_regressions) == {"python"}
    # Without a guard set (a version from before guards) the recent hold-out decides, and says so.
    bare = compare(*recent, config)
    assert bare.promote
    assert "guard check skipped" in " ".join(bare.reasons)


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


def _labelled(questions: list[Question], n: int, start: datetime) -> list[Question]:
    return [
        Question(
            id=f"r:{i:032x}",
            created_at=start + timedelta(minutes=i),
            title=q.title,
            body=q.body,
            body_format=q.body_format,
            tags=q.tags,
        )
        for i, q in enumerate(questions[:n])
    ]


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
    registry = Registry(settings.tracking_url, settings.artifacts_dir, settings.model_name)
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

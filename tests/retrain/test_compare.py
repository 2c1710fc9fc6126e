"""The pure judgement of a challenger against the champion: hold-out scores and the promotion rule."""

from __future__ import annotations

from typing import Any

import pytest

from retrain.compare import HoldoutScores, compare, holdout_scores
from retrain.config import RetrainConfig


def test_holdout_scores_counts_unpredictable_tags_as_misses() -> None:
    s = holdout_scores([["python"], ["java", "spring"]], [["python", "polars"], ["java"]])
    # tp: python, java = 2; fp: spring = 1; fn: polars = 1 -> 2*2 / (4 + 1 + 1)
    assert s.micro_f1 == pytest.approx(4 / 6)
    assert s.per_tag_f1["polars"] == 0.0
    assert s.per_tag_f1["python"] == 1.0
    assert s.support == {"python": 1, "polars": 1, "java": 1}


def _scores(f1: float, per_tag: dict[str, float], support: int = 50) -> Any:
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

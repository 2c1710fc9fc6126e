"""The training jobs around the stages: windows of questions, the reference sample, train-and-register."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from retrain.job import data_window, reference_sample, select_window, train_and_register
from tagwatch.data import Question
from tagwatch.settings import Settings
from tests.retrain.support import T0
from tests.retrain.support import question as q


def test_select_window_keeps_undated_questions_only_without_a_start() -> None:
    questions = [q(0), q(10), q(20), q(30, dated=False)]
    assert [x.id for x in select_window(questions, since=None, until=None)] == ["1000", "1010", "1020", "1030"]
    window = select_window(questions, since=T0 + timedelta(hours=10), until=T0 + timedelta(hours=20))
    assert [x.id for x in window] == ["1010"]  # [since, until): the question at `until` is out
    assert [x.id for x in select_window(questions, since=None, until=T0 + timedelta(hours=1))] == ["1000", "1030"]


def test_data_window_describes_the_dates_and_counts() -> None:
    assert data_window([q(2), q(0), q(5, dated=False)]) == {
        "since": T0.isoformat(),
        "until": (T0 + timedelta(hours=2)).isoformat(),
        "n_questions": 3,
        "n_undated": 1,
    }
    assert data_window([]) == {"since": None, "until": None, "n_questions": 0, "n_undated": 0}


def test_reference_sample_is_seeded_and_bounded() -> None:
    questions = [q(i) for i in range(50)]
    assert reference_sample(questions, size=100, seed=1) == questions
    sample = reference_sample(questions, size=10, seed=1)
    assert len(sample) == 10
    assert sample == reference_sample(questions, size=10, seed=1)
    assert {x.id for x in sample} <= {x.id for x in questions}


def test_train_and_register_makes_the_first_version_champion(tmp_path: Path, bundled_questions: list[Question]) -> None:
    settings = Settings(home=tmp_path, top_n_tags=20)
    questions = random.Random(3).sample(bundled_questions, 1_200)
    first = train_and_register(settings, questions, trigger="test", actor="cli:tester")
    assert (first.version, first.champion) == ("1", True)
    assert set(first.metrics) == {"holdout_random", "holdout_time"}
    assert first.data_window["n_questions"] == 1_200
    assert 0 < first.data_window["n_train"] < 1_200
    from tagwatch.registry import Registry

    registry = Registry.from_settings(settings, actor="cli:tester")
    assert registry.champion_version() == "1"
    info = registry.version_info("1")
    assert info.lineage["trigger"] == "test"
    assert info.lineage["parent_version"] is None
    assert registry.load_guard("1")  # the trusted guard set: its time hold-out
    # A second version is not champion unless asked.
    second = train_and_register(settings, questions[:600], trigger="test", make_champion=False, actor="cli:tester")
    assert (second.version, second.champion) == ("2", False)
    assert registry.champion_version() == "1"
    assert registry.version_info("2").lineage["parent_version"] == "1"

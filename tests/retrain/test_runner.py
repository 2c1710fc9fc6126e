"""The retrain runner: claims pending requests, runs them holding the promotion lock, records how they ended."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine

import retrain.promote
from retrain.promote import RetrainOutcome
from retrain.runner import RetrainRunner
from tagwatch.data import Question
from tagwatch.db import make_engine, upgrade_database
from tagwatch.locks import PROMOTION, LockBusy, hold, promotion_lock
from tagwatch.retrain_queue import (
    FAILED,
    INTERRUPTED_ERROR,
    PENDING,
    SKIPPED,
    RetrainRequest,
    claim_next,
    file_request,
    load_request,
    pending_or_running,
)
from tagwatch.settings import Settings
from tests.support import log_questions

MODEL = "tagwatch"
NOW = datetime.now(UTC)


class FakeRegistry:
    def __init__(self, champion: str | None = "1") -> None:
        self.champion = champion

    def champion_version(self) -> str | None:
        return self.champion


def _file(engine: Engine, *, parent: str | None = "1", reason: str = "drift: data") -> RetrainRequest:
    return file_request(
        engine,
        model_name=MODEL,
        reason=reason,
        requested_by="monitor",
        parent_version=parent,
        data_until=datetime.now(UTC),
    )


def _fake_outcome(result: str = "rejected", *, trigger: str = "t", seconds: float = 0.0) -> RetrainOutcome:
    return RetrainOutcome(
        result=result,
        challenger_version="2",
        champion_version="1",
        parent_version="1",
        comparison={"reasons": ["keep the champion"]},
        seconds=seconds,
        trigger=trigger,
    )


def _counted(runner: RetrainRunner) -> dict[str, float]:
    return {
        s.labels["result"]: s.value
        for m in runner.metrics.retrains.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


def test_a_pending_request_is_trained_judged_and_recorded_with_its_lineage(
    registry_with_champion: Any, settings: Settings, database_url: str, bundled_questions: list[Question]
) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    new_topic = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][:600]
    log_questions(engine, new_topic, now=NOW)
    mine = Settings(
        **{
            **settings.model_dump(),
            "database_url": database_url,
            "retrain_window": 600,
            "retrain_min_labelled": 300,
            "top_n_tags": 40,
        }
    )
    runner = RetrainRunner(mine, engine=engine, registry=registry_with_champion)
    request = _file(engine)
    (done,) = runner.run_pending()
    assert done.id == request.id
    assert done.status in ("promoted", "rejected")
    assert done.claimed_by == runner.name
    assert done.outcome is not None
    assert done.outcome["result"] == done.status
    assert done.outcome["trigger"] == "drift: data"
    assert done.outcome["data_window"]["n_train"] > 0
    version = registry_with_champion.version_info(done.outcome["challenger_version"])
    assert version.lineage["trigger"] == "drift: data"
    assert version.lineage["actor"] == "monitor"  # the request's requester moves the aliases
    assert version.lineage["parent_version"] == "1"
    metrics = generate_latest(runner.metrics.registry).decode()
    assert f'tagwatch_retrains_total{{result="{done.status}"}} 1.0' in metrics
    assert "tagwatch_retrain_duration_seconds_count 1.0" in metrics
    assert runner.run_pending() == []  # nothing left
    engine.dispose()


def test_a_request_whose_champion_moved_is_skipped(engine: Engine, settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setattr(retrain.promote, "retrain", lambda *a, **k: pytest.fail("a skipped request trained"))
    runner = RetrainRunner(settings, engine=engine, registry=FakeRegistry("2"))
    request = _file(engine, parent="1")
    (done,) = runner.run_pending()
    assert (done.id, done.status) == (request.id, SKIPPED)
    assert done.error == "the champion moved since the request was filed (1 -> 2): not run"
    assert sum(_counted(runner).values()) == 0  # no retrain happened


def test_a_request_left_running_by_a_dead_runner_is_failed_once_and_never_retried(
    engine: Engine, settings: Settings, monkeypatch: Any
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(retrain.promote, "retrain", lambda *a, **k: calls.append(k["trigger"]) or _fake_outcome())
    crashed = _file(engine, reason="drift: data")
    assert claim_next(engine, model_name=MODEL, runner="gone:4242") is not None  # then the runner died
    runner = RetrainRunner(settings, engine=engine, registry=FakeRegistry())
    assert runner.run_pending() == []
    stale = load_request(engine, crashed.id)
    assert stale is not None
    assert (stale.status, stale.error) == (FAILED, INTERRUPTED_ERROR)
    assert _counted(runner)["failed"] == 1.0
    # Not retried, however often the runner polls; a new request runs.
    assert runner.run_pending() == []
    fresh = _file(engine, reason="follow-up")
    (done,) = runner.run_pending()
    assert done.id == fresh.id
    assert calls == ["follow-up"]
    assert _counted(runner)["failed"] == 1.0


def test_a_retrain_that_raises_is_recorded_failed(engine: Engine, settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setattr(retrain.promote, "retrain", lambda *a, **k: 1 / 0)
    runner = RetrainRunner(settings, engine=engine, registry=FakeRegistry())
    _file(engine)
    (done,) = runner.run_pending()
    assert (done.status, done.error) == (FAILED, "ZeroDivisionError: division by zero")
    assert _counted(runner)["failed"] == 1.0


def test_the_runner_holds_the_promotion_lock_and_waits_for_it(
    engine: Engine, settings: Settings, monkeypatch: Any
) -> None:
    other = make_engine(engine.url)
    seen: list[bool] = []

    def fake(*args: Any, **kwargs: Any) -> RetrainOutcome:
        with hold(other, PROMOTION, model_name=MODEL) as got:
            seen.append(got)
        return _fake_outcome()

    monkeypatch.setattr(retrain.promote, "retrain", fake)
    runner = RetrainRunner(settings, engine=engine, registry=FakeRegistry())
    request = _file(engine)
    with promotion_lock(other, MODEL):  # a rollback, say: the request waits
        assert runner.run_pending() == []
    waiting = load_request(engine, request.id)
    assert waiting is not None
    assert waiting.status == PENDING
    (done,) = runner.run_pending()
    assert done.status == "rejected"
    assert seen == [False]
    other.dispose()


def test_run_now_files_and_runs_one_request(engine: Engine, settings: Settings, monkeypatch: Any) -> None:
    triggers: list[str] = []
    monkeypatch.setattr(
        retrain.promote, "retrain", lambda *a, **k: triggers.append(k["trigger"]) or _fake_outcome("promoted")
    )
    runner = RetrainRunner(settings, engine=engine, registry=FakeRegistry())
    queued = _file(engine)  # the monitor's: not run by a manual retrain
    done = runner.run_now(reason="manual", requested_by="cli:alice")
    assert (done.status, done.reason, done.requested_by, done.drift_run_id) == ("promoted", "manual", "cli:alice", None)
    assert triggers == ["manual"]
    left = load_request(engine, queued.id)
    assert left is not None
    assert left.status == PENDING
    other = make_engine(engine.url)
    with promotion_lock(other, MODEL), pytest.raises(LockBusy):
        runner.run_now(reason="manual", requested_by="cli:alice")
    other.dispose()


@pytest.mark.postgres
def test_two_runners_on_postgres_run_each_request_once_and_never_at_once(
    postgres_url: str, settings: Settings, monkeypatch: Any
) -> None:
    upgrade_database(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(2)]
    spans: list[tuple[str, float, float]] = []
    guard = threading.Lock()

    def slow(*args: Any, **kwargs: Any) -> RetrainOutcome:
        t0 = time.monotonic()
        time.sleep(0.2)
        with guard:
            spans.append((kwargs["trigger"], t0, time.monotonic()))
        return _fake_outcome(trigger=kwargs["trigger"])

    monkeypatch.setattr(retrain.promote, "retrain", slow)
    requests = [_file(engines[0], reason=f"r{i}") for i in range(4)]
    runners = [
        RetrainRunner(settings, engine=e, registry=FakeRegistry(), name=f"runner-{i}") for i, e in enumerate(engines)
    ]
    ran: dict[str, list[int]] = {}

    def work(runner: RetrainRunner) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ids = [r.id for r in runner.run_pending(wait=0.05, max_requests=1)]
            ran.setdefault(runner.name, []).extend(ids)
            if not ids and pending_or_running(runner.engine, model_name=MODEL) is None:
                return

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    all_ran = sorted(i for ids in ran.values() for i in ids)
    assert all_ran == [r.id for r in requests]  # each once
    ordered = sorted(spans, key=lambda s: s[1])
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(ordered)), "two retrains at once"
    for request in requests:
        done = load_request(engines[0], request.id)
        assert done is not None
        assert done.status == "rejected"
        assert done.claimed_by in ("runner-0", "runner-1")
    for e in engines:
        e.dispose()

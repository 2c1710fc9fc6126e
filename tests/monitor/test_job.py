"""The monitor job on a real request log (SQLite and PostgreSQL) and a real registry; the retrains it files run by the
embedded retrain runner (commands.retraining), as in ``tagwatch monitor``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy.orm import Session

from commands.retraining import embedded_runner, retrain_after
from monitor.job import NO_NEW_REQUESTS, Monitor
from monitor.runs import RunOutcome
from retrain.promote import RetrainOutcome
from retrain.runner import RetrainRunner
from tagwatch.data import Question
from tagwatch.db import DriftRun, make_engine, upgrade_database
from tagwatch.settings import Settings
from tests.support import log_questions

NOW = datetime.now(UTC)


def runner_of(monitor: Monitor) -> RetrainRunner:
    runner = embedded_runner(monitor)
    assert runner is not None
    return runner


def run_and_retrain(monitor: Monitor, runner: RetrainRunner, **kwargs: Any) -> RunOutcome:
    """One monitor run, then the retrain it filed (if any) run by the runner, as the embedded scheduler does."""
    return retrain_after(runner, monitor, monitor.run_once(**kwargs))


@pytest.fixture
def monitor_for(registry_with_champion: Any, settings: Settings) -> Any:
    made: list[Any] = []

    def build(database_url: str, **changes: Any) -> Monitor:
        s = Settings(**{**settings.model_dump(), "database_url": database_url, **changes})
        upgrade_database(database_url)
        engine = make_engine(database_url)
        made.append(engine)
        return Monitor(s, engine=engine, registry=registry_with_champion)

    yield build
    for engine in made:
        engine.dispose()


def test_small_window_is_skipped(monitor_for: Any, database_url: str, small_training_set: list[Question]) -> None:
    monitor = monitor_for(database_url, min_window=200)
    log_questions(monitor.engine, small_training_set[1000:1050], now=NOW)
    outcome = monitor.run_once(now=NOW)
    assert outcome.status == "skipped"
    assert outcome.reasons == ["window too small: 50 < 200 requests"]
    runs = monitor.history()
    assert [r.status for r in runs] == ["skipped"]
    assert runs[0].n_current == 50


def test_stable_window_raises_no_alarm(monitor_for: Any, database_url: str, small_training_set: list[Question]) -> None:
    monitor = monitor_for(database_url, window_size=600)
    # Same distribution as the champion's reference (both are random draws of the bundled questions).
    log_questions(monitor.engine, small_training_set[1000:1600], now=NOW)
    outcome = monitor.run_once(now=NOW)
    assert outcome.status == "ok", outcome.error
    result = outcome.to_dict()
    assert result["kinds"]["data"]["detected"] is False
    assert not outcome.retrain_triggered
    assert result["sizes"]["current"] == 600
    assert result["sizes"]["feedback"] == 600
    report = monitor.settings.reports_dir / outcome.report_path
    assert report.stat().st_size > 100_000  # the self-contained Evidently page
    index = (monitor.settings.reports_dir / "index.html").read_text()
    assert outcome.report_path in index
    row = monitor.history()[-1]
    assert row.status == "ok"
    assert row.data_threshold == pytest.approx(monitor.thresholds.text_auc)
    assert row.data_score is not None
    assert row.data_score < row.data_threshold
    assert row.summary is not None
    assert row.summary["kinds"]["data"]["score"] == pytest.approx(row.data_score)
    metrics = generate_latest(monitor.metrics.registry).decode()
    assert 'tagwatch_drift_detected{kind="data"} 0.0' in metrics
    assert 'tagwatch_monitor_runs_total{status="ok"} 1.0' in metrics
    assert "tagwatch_monitor_last_success_timestamp_seconds" in metrics


def test_topic_swap_is_confirmed_and_retrains(
    monitor_for: Any, database_url: str, bundled_questions: list[Question]
) -> None:
    monitor = monitor_for(
        database_url, window_size=600, drift_confirmations=2, retrain_window=1200, retrain_min_labelled=300
    )
    new_topic = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][:1200]
    runner = runner_of(monitor)
    log_questions(monitor.engine, new_topic[:600], now=NOW)
    first = run_and_retrain(monitor, runner, now=NOW)
    assert first.status == "ok", first.error
    assert "data" in [k for k, v in first.to_dict()["kinds"].items() if v["detected"]]
    assert not first.retrain_triggered  # one window is not confirmation
    log_questions(monitor.engine, new_topic[600:], now=NOW)
    second = run_and_retrain(monitor, runner, now=NOW + timedelta(seconds=1))
    assert second.confirmed["data"]
    assert second.retrain_triggered
    assert second.retrain is not None
    assert second.retrain["result"] in ("promoted", "rejected")
    row = monitor.history()[-1]
    assert row.retrain_triggered
    assert row.retrain == second.retrain
    metrics = generate_latest(monitor.metrics.registry).decode()
    assert 'tagwatch_drift_confirmed{kind="data"} 1.0' in metrics
    assert f'tagwatch_retrains_total{{result="{second.retrain["result"]}"}} 1.0' in metrics
    if second.retrain["result"] == "promoted":
        assert monitor.registry.champion_version() == "2"


def test_a_window_without_new_requests_is_not_measured_again(
    monitor_for: Any, database_url: str, small_training_set: list[Question]
) -> None:
    from monitor import runs

    monitor = monitor_for(database_url, window_size=300)
    log_questions(monitor.engine, small_training_set[1000:1300], now=NOW)
    first = monitor.run_once(now=NOW)
    assert first.status == "ok", first.error
    assert first.report_path is not None
    reports = sorted(monitor.settings.reports_dir.glob("drift-*.html"))
    assert len(reports) == 1
    last_success = monitor.metrics.last_success._value.get()

    # The same window a minute later: a run that ends well (the monitor is alive) without a report or a result.
    quiet = monitor.run_once(now=NOW + timedelta(minutes=1))
    assert quiet.status == "ok", quiet.error
    assert (quiet.result, quiet.report_path, quiet.retrain_triggered) == (None, None, False)
    assert quiet.reasons[0].startswith(f"{NO_NEW_REQUESTS} {first.id} (window up to ")
    assert quiet.confirmed == first.confirmed
    assert sorted(monitor.settings.reports_dir.glob("drift-*.html")) == reports
    row = monitor.history()[-1]
    assert (row.status, row.summary, row.report_path, row.n_current) == ("ok", None, None, 300)
    assert not runs.is_window(row)
    assert monitor.metrics.last_success._value.get() >= last_success > 0
    metrics = generate_latest(monitor.metrics.registry).decode()
    assert 'tagwatch_monitor_runs_total{status="ok"} 2.0' in metrics
    assert "tagwatch_monitor_run_duration_seconds_count 1.0" in metrics  # measurements only
    index = (monitor.settings.reports_dir / "index.html").read_text()
    assert index.count(">report</a>") == 1

    # One new request: measured again, with a report.
    log_questions(monitor.engine, small_training_set[1300:1301], now=NOW + timedelta(minutes=2))
    fresh = monitor.run_once(now=NOW + timedelta(minutes=2))
    assert fresh.result is not None
    assert fresh.report_path is not None
    assert len(list(monitor.settings.reports_dir.glob("drift-*.html"))) == 2
    assert [runs.is_window(r) for r in monitor.history()] == [True, False, True]


def test_no_champion(settings: Settings, sqlite_url: str) -> None:
    from tagwatch.registry import Registry

    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    monitor = Monitor(settings, engine=engine, registry=Registry.from_settings(settings))
    outcome = monitor.run_once()
    assert outcome.status == "skipped"
    assert outcome.reasons == ["no champion in the registry"]
    with Session(engine) as session:
        assert session.query(DriftRun).count() == 1
    engine.dispose()


# --- one run at a time (tagwatch/locks.py) ---------------------------------------------------------------------------


@pytest.fixture
def drifted(monitor_for: Any, database_url: str, bundled_questions: list[Question]) -> Monitor:
    """A monitor whose window (questions of 2022 and later, with feedback) drifted; one window confirms it."""
    monitor = monitor_for(
        database_url, window_size=300, drift_confirmations=1, retrain_window=600, retrain_min_labelled=300
    )
    new_topic = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][:600]
    log_questions(monitor.engine, new_topic, now=NOW)
    return monitor


def _free(engine: Any, name: str) -> bool:
    from tagwatch.locks import hold

    with hold(engine, name, model_name="tagwatch") as got:
        return got


def test_the_row_is_written_when_the_run_files_its_retrain_and_as_the_runner_runs_it(
    drifted: Monitor, monkeypatch: Any
) -> None:
    import retrain.promote
    from tagwatch.locks import DRIFT_RUN, PROMOTION

    other = make_engine(drifted.engine.url)
    seen: dict[str, Any] = {}

    def fake_retrain(registry: Any, labelled: list[Any], **kwargs: Any) -> RetrainOutcome:
        (row,) = drifted.history()
        seen.update(row=row, locks=(_free(other, DRIFT_RUN), _free(other, PROMOTION)), n=len(labelled))
        return RetrainOutcome(
            result="rejected",
            challenger_version="2",
            champion_version="1",
            parent_version="1",
            comparison=None,
            seconds=0.1,
            trigger=kwargs["trigger"],
        )

    monkeypatch.setattr(retrain.promote, "retrain", fake_retrain)
    outcome = drifted.run_once()
    assert outcome.status == "ok", outcome.error
    assert outcome.retrain_triggered
    # Filed, not run: the run's row says so, and no lock is held once the run has ended.
    (filed,) = drifted.history()
    assert filed.retrain is not None
    assert outcome.retrain is not None
    assert filed.retrain == outcome.retrain
    assert filed.retrain["result"] == "pending"
    assert filed.retrain["parent_version"] == "1"
    assert filed.retrain["trigger"].startswith("drift: ")
    assert seen == {}
    retrain_after(runner_of(drifted), drifted, outcome)
    # While the retrain ran, the promotion lock was held and the row said so (a runner dying now leaves this
    # behind); the drift-run lock was free: a long retrain no longer holds the next drift run back.
    assert seen["locks"] == (True, False)
    assert seen["n"] == 600
    started = seen["row"]
    assert started.retrain is not None
    assert started.id == outcome.id
    assert started.status == "ok"
    assert started.finished_at is not None
    assert started.retrain_triggered
    assert started.retrain["result"] == "running"
    assert started.retrain["trigger"] == outcome.retrain["trigger"]
    assert started.retrain["parent_version"] == "1"
    assert started.data_detected
    assert started.confirmed == outcome.confirmed
    assert started.summary is not None
    assert started.n_current == 300
    # The same row at the end.
    (row,) = drifted.history()
    assert row.status == "ok"
    assert row.finished_at is not None
    assert row.retrain is not None
    assert row.retrain == outcome.retrain
    assert row.retrain["result"] == "rejected"
    assert row.retrain["started_at"] == started.retrain["started_at"]
    assert _free(other, DRIFT_RUN)
    assert _free(other, PROMOTION)
    other.dispose()


def test_a_promotion_elsewhere_holds_the_retrain_back(
    drifted: Monitor, monkeypatch: Any, bundled_questions: list[Question]
) -> None:
    from monitor.job import PROMOTION_BUSY_REASON
    from tagwatch.locks import promotion_lock

    other = make_engine(drifted.engine.url)
    with promotion_lock(other, "tagwatch"):  # a `tagwatch retrain` or a rollback, say
        busy = drifted.run_once()
    assert busy.status == "ok", busy.error
    assert busy.confirmed["data"]
    assert not busy.retrain_triggered
    assert busy.retrain is None
    assert busy.reasons[-2].startswith("retrain: ")
    assert busy.reasons[-1] == PROMOTION_BUSY_REASON
    # It did not count as a retrain: the next window files one; a retrain that raises is recorded as failed (in its
    # request and in the run's row; the run itself ended well).
    import retrain.promote

    monkeypatch.setattr(retrain.promote, "retrain", lambda *args, **kwargs: 1 / 0)
    more = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][600:1200]
    log_questions(drifted.engine, more[:300], now=datetime.now(UTC))  # each run below measures new requests
    failed = run_and_retrain(drifted, runner_of(drifted))
    assert failed.status == "ok", failed.error
    assert failed.retrain is not None
    assert failed.retrain["result"] == "failed"
    assert failed.retrain["error"] == "ZeroDivisionError: division by zero"
    row = drifted.history()[-1]
    assert (row.status, row.retrain_triggered) == ("ok", True)
    assert row.retrain is not None
    assert row.retrain["result"] == "failed"
    assert row.retrain["error"] == "ZeroDivisionError: division by zero"
    metrics = generate_latest(drifted.metrics.registry).decode()
    assert 'tagwatch_retrains_total{result="failed"} 1.0' in metrics
    # ... and counts for the cool-down like any retrain.
    log_questions(drifted.engine, more[300:], now=datetime.now(UTC))
    cooled = drifted.run_once()
    assert not cooled.retrain_triggered
    assert cooled.reasons[-1] == "cool-down: 1 of 3 windows since the last retrain"
    # No new request since: the window is not measured again, and is no window for the cool-down; the drift stays
    # confirmed (its alert does not resolve on a quiet stream).
    quiet = drifted.run_once()
    assert (quiet.status, quiet.result, quiet.report_path) == ("ok", None, None)
    assert quiet.reasons == [
        f"{NO_NEW_REQUESTS} {cooled.id} (window up to {drifted.history()[-2].window_until.isoformat()}): "  # type: ignore[union-attr]
        "not measured again, no report"
    ]
    assert quiet.confirmed == cooled.confirmed
    metrics = generate_latest(drifted.metrics.registry).decode()
    assert 'tagwatch_drift_confirmed{kind="data"} 1.0' in metrics
    other.dispose()


class _NoChampion:
    def champion_version(self) -> None:
        return None


def test_a_run_elsewhere_skips_this_one_without_a_row(settings: Settings, database_url: str) -> None:
    from monitor.job import LOCK_BUSY_REASON
    from tagwatch.locks import DRIFT_RUN, hold

    upgrade_database(database_url)
    monitor = Monitor(settings, engine=make_engine(database_url), registry=_NoChampion())
    other = make_engine(database_url)
    with hold(other, DRIFT_RUN, model_name="tagwatch") as held:
        assert held
        outcome = monitor.run_once()
    assert (outcome.id, outcome.status, outcome.reasons) == (None, "skipped", [LOCK_BUSY_REASON])
    assert monitor.history() == []
    metrics = generate_latest(monitor.metrics.registry).decode()
    assert 'tagwatch_monitor_runs_total{status="skipped"} 1.0' in metrics
    assert monitor.run_once().id is not None  # released: the next run runs (and finds no champion)
    monitor.engine.dispose()
    other.dispose()

"""The monitor job on a real request log (SQLite and PostgreSQL) and a real registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy.orm import Session

from monitor.job import Monitor
from tagwatch.data import Question
from tagwatch.db import DriftRun, Feedback, PredictionRequest, make_engine, new_request_id, upgrade_database
from tagwatch.settings import Settings

NOW = datetime.now(UTC)


def _log(engine: Any, questions: list[Question], *, feedback: bool = True) -> None:
    with Session(engine) as session:
        for i, q in enumerate(questions):
            rid = new_request_id()
            at = NOW - timedelta(seconds=len(questions) - i)
            session.add(
                PredictionRequest(
                    id=rid,
                    created_at=at,
                    title=q.title,
                    body=q.body,
                    body_format=q.body_format,
                    predicted=[],
                    model_version="1",
                    latency_seconds=0.001,
                )
            )
            if feedback:
                session.add(Feedback(request_id=rid, tags=list(q.tags), received_at=at))
        session.commit()


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
    _log(monitor.engine, small_training_set[1000:1050])
    outcome = monitor.run_once(now=NOW)
    assert outcome.status == "skipped"
    assert outcome.reasons == ["window too small: 50 < 200 requests"]
    runs = monitor.history()
    assert [r.status for r in runs] == ["skipped"]
    assert runs[0].n_current == 50


def test_stable_window_raises_no_alarm(monitor_for: Any, database_url: str, small_training_set: list[Question]) -> None:
    monitor = monitor_for(database_url, window_size=600)
    # Same distribution as the champion's reference (both are random draws of the bundled questions).
    _log(monitor.engine, small_training_set[1000:1600])
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
    _log(monitor.engine, new_topic[:600])
    first = monitor.run_once(now=NOW)
    assert first.status == "ok", first.error
    assert "data" in [k for k, v in first.to_dict()["kinds"].items() if v["detected"]]
    assert not first.retrain_triggered  # one window is not confirmation
    _log(monitor.engine, new_topic[600:])
    second = monitor.run_once(now=NOW + timedelta(seconds=1))
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


def test_no_champion(settings: Settings, sqlite_url: str) -> None:
    from tagwatch.registry import Registry

    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    monitor = Monitor(
        settings, engine=engine, registry=Registry(settings.tracking_url, settings.artifacts_dir, settings.model_name)
    )
    outcome = monitor.run_once()
    assert outcome.status == "skipped"
    assert outcome.reasons == ["no champion in the registry"]
    with Session(engine) as session:
        assert session.query(DriftRun).count() == 1
    engine.dispose()

"""monitor.exporter: the monitor's metrics from stored drift runs (pure functions, then on SQLite and PostgreSQL, then
against a live monitor's own gauges for the same run, then over HTTP, then with a role that may only read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from monitor.exporter import Gauges, RunRow, RunsExporter, Tally, advance, apply, gauges_of, serve
from monitor.metrics import MonitorMetrics
from tagwatch.db import DriftRun, make_engine, upgrade_database

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KINDS_ORDER = ("data", "concept", "feature")


def summary(**over: Any) -> dict[str, Any]:
    """A drift_runs summary shaped as DriftResult.to_dict() writes it (only what the exporter reads)."""
    base: dict[str, Any] = {
        "sizes": {"reference": 600, "current": 300, "feedback": 250},
        "kinds": {
            "data": {"score": 0.7, "threshold": 0.55},
            "concept": {
                "score": 0.1,
                "threshold": 1.0,
                "details": {
                    "baseline": {"micro_f1": 0.61, "samples_jaccard": 0.5},
                    "observed": {"micro_f1": 0.52},
                    "signals": {"emerging_share": {"value": 0.04}},
                },
            },
            "feature": {"score": 0.2, "threshold": 0.25},
        },
        "label_free": {"current": {"micro_f1": 0.57}},
    }
    return {**base, **over}


def run(
    id: int,
    started: float,
    status: str = "ok",
    *,
    took: float | None = 3.0,
    measured: bool | None = None,
    **values: Any,
) -> DriftRun:
    """A drift_runs row started ``started`` seconds after T0: an ok run measured a window (scores, thresholds and a
    summary), any other stores no measurement (as row_values writes them)."""
    at = T0 + timedelta(seconds=started)
    measurement: dict[str, Any] = {
        "data_score": 0.7,
        "data_threshold": 0.55,
        "data_detected": True,
        "concept_score": 0.1,
        "concept_threshold": 1.0,
        "concept_detected": False,
        "feature_score": 0.2,
        "feature_threshold": 0.25,
        "feature_detected": False,
        "summary": summary(),
    }
    nothing = {k: False if k.endswith("_detected") else None for k in measurement}
    base: dict[str, Any] = {
        "id": id,
        "started_at": at,
        "finished_at": None if took is None or status == "running" else at + timedelta(seconds=took),
        "status": status,
        "model_version": "4",
        "n_current": 300,
        "n_labelled": 250,
        **(measurement if (status == "ok" if measured is None else measured) else nothing),
        # As row_values stores it: only a run that reached the policy's decision confirms anything.
        "confirmed": {"data": status == "ok", "concept": False, "feature": False},
        "retrain_triggered": False,
        "reasons": [],
    }
    return DriftRun(**{**base, **values})


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every tagwatch sample of a registry, by name and labels (the *_created timestamps left out: they differ per
    process; so do the process_* and python_* series of the process itself)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith("tagwatch_") and not s.name.endswith("_created")
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return samples(registry)[(name, tuple(sorted(labels.items())))]


# --- pure -----------------------------------------------------------------------------------------------------


def test_without_runs_nothing_succeeded_and_nothing_is_confirmed() -> None:
    g = gauges_of(None, latest_ok=None, latest_finished=None)
    assert g == Gauges()
    assert g.last_success == 0.0
    assert g.confirmed == {"data": False, "concept": False, "feature": False}


def test_the_gauges_come_from_the_newest_ok_run_and_its_summary() -> None:
    ok = run(1, 0)
    g = gauges_of(ok, latest_ok=ok, latest_finished=ok)
    assert g.kinds["data"].score == pytest.approx(0.7)
    assert g.kinds["data"].detected is True
    assert g.kinds["feature"].threshold == pytest.approx(0.25)
    assert (g.feedback_micro_f1, g.baseline_micro_f1, g.estimated_micro_f1, g.emerging_tag_share) == (
        0.52,
        0.61,
        0.57,
        0.04,
    )
    assert g.window == {"all": 300, "labelled": 250}
    assert g.champion == "4"
    assert g.last_success == (T0 + timedelta(seconds=3)).timestamp()
    assert g.confirmed["data"] is True


def test_confirmed_follows_the_newest_finished_run_whatever_its_status() -> None:
    # As in-process: a skipped run (window too small) ends with nothing confirmed, so the drift alert resolves.
    skipped = run(2, 60, "skipped")
    g = gauges_of(run(1, 0), latest_ok=run(1, 0), latest_finished=skipped)
    assert g.confirmed == {"data": False, "concept": False, "feature": False}
    assert g.kinds["data"].detected is True  # the newest measurement is still the ok run's
    assert g.last_success == (T0 + timedelta(seconds=3)).timestamp()


def test_what_a_window_did_not_measure_is_none_and_keeps_the_previous_value() -> None:
    bare = run(1, 0, concept_score=None, summary=summary(label_free={}, kinds={}))
    g = gauges_of(bare, latest_ok=bare, latest_finished=bare)
    assert g.kinds["concept"].score is None
    assert g.feedback_micro_f1 is None
    assert g.estimated_micro_f1 is None
    metrics = MonitorMetrics()
    metrics.feedback_micro_f1.set(0.5)
    metrics.drift_score.labels("concept").set(0.3)
    apply(metrics, g, [])
    assert value(metrics.registry, "tagwatch_feedback_micro_f1") == 0.5
    assert value(metrics.registry, "tagwatch_drift_score", kind="concept") == 0.3
    assert value(metrics.registry, "tagwatch_drift_score", kind="data") == pytest.approx(0.7)


def unchanged(id: int, started: float, repeats: DriftRun) -> DriftRun:
    """An ok run that found the window of ``repeats`` unchanged: no measurement, that run's confirmations."""
    return run(id, started, took=1.0, measured=False, confirmed=dict(repeats.confirmed))


def test_an_unchanged_window_is_a_success_that_moves_no_drift_gauge() -> None:
    measured_run = run(1, 0)
    again = unchanged(2, 60, measured_run)
    assert again.data_threshold is None
    g = gauges_of(measured_run, latest_ok=again, latest_finished=again)
    assert g.last_success == (T0 + timedelta(seconds=61)).timestamp()
    assert g.kinds["data"].score == pytest.approx(0.7)
    assert g.window == {"all": 300, "labelled": 250}
    assert g.confirmed["data"] is True  # repeated, as in-process
    # Counted as an ok run; timed only when it measured something (in-process: no duration observed).
    metrics = MonitorMetrics()
    apply(metrics, g, [RunRow(2, again.started_at, again.finished_at, "ok", measured=False)])
    assert value(metrics.registry, "tagwatch_monitor_runs_total", status="ok") == 1
    assert value(metrics.registry, "tagwatch_monitor_run_duration_seconds_count") == 0


def test_a_row_without_a_summary_falls_back_on_its_own_counts() -> None:
    g = gauges_of(run(1, 0, summary=None, n_current=12, n_labelled=5), latest_ok=None, latest_finished=None)
    assert g.window == {"all": 12, "labelled": 5}
    assert g.baseline_micro_f1 is None


def row(id: int, started: float, status: str = "ok") -> RunRow:
    at = T0 + timedelta(seconds=started)
    return RunRow(id, at, None if status == "running" else at + timedelta(seconds=2), status)


def test_each_run_is_counted_once_when_it_finishes() -> None:
    tally = Tally(T0)
    tally, new = advance(tally, [row(1, 0), row(2, 10, "running")])
    assert [r.id for r in new] == [1]
    assert tally.since == T0 + timedelta(seconds=10)  # held at the run still in progress
    # Read again: run 2 finished, run 3 started at the same instant as run 2.
    tally, new = advance(tally, [row(2, 10, "failed"), row(3, 10, "skipped")])
    assert [(r.id, r.status) for r in new] == [(2, "failed"), (3, "skipped")]
    assert tally.counted == {2, 3}
    tally, new = advance(tally, [row(2, 10, "failed"), row(3, 10, "skipped")])
    assert new == []
    tally, new = advance(tally, [row(2, 10, "failed"), row(3, 10, "skipped"), row(4, 20)])
    assert [r.id for r in new] == [4]
    assert (tally.since, tally.counted) == (T0 + timedelta(seconds=20), {4})
    # Nothing new: the tally stays.
    assert advance(tally, [row(4, 20)]) == (tally, [])
    assert advance(Tally(T0), []) == (Tally(T0), [])


def test_apply_counts_runs_by_status_and_times_the_ok_ones() -> None:
    metrics = MonitorMetrics()
    apply(metrics, Gauges(), [row(1, 0), row(2, 60, "failed"), row(3, 120)])
    reg = metrics.registry
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 2
    assert value(reg, "tagwatch_monitor_runs_total", status="failed") == 1
    assert value(reg, "tagwatch_monitor_runs_total", status="skipped") == 0
    assert value(reg, "tagwatch_monitor_run_duration_seconds_count") == 2
    assert value(reg, "tagwatch_monitor_run_duration_seconds_sum") == pytest.approx(4.0)
    assert value(reg, "tagwatch_monitor_last_success_timestamp_seconds") == 0


# --- on a real database ---------------------------------------------------------------------------------------


def store(engine: Engine, *rows: DriftRun) -> None:
    with Session(engine) as session:
        for r in rows:
            session.merge(r)
        session.commit()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_exporter_reads_the_newest_runs_and_counts_those_since_it_started(engine: Engine) -> None:
    # Two runs before the exporter started (one ok: the last success), then it starts.
    store(engine, run(1, 0), run(2, 60, "failed", took=1.0))
    clock = Clock()
    exporter = RunsExporter(
        engine, interval_seconds=60, started_at=T0 + timedelta(seconds=100), refresh_seconds=5, clock=clock
    )
    exporter.refresh()
    reg = exporter.metrics.registry
    assert value(reg, "tagwatch_monitor_interval_seconds") == 60
    assert value(reg, "tagwatch_monitor_last_success_timestamp_seconds") == (T0 + timedelta(seconds=3)).timestamp()
    assert value(reg, "tagwatch_drift_score", kind="data") == pytest.approx(0.7)
    assert value(reg, "tagwatch_drift_confirmed", kind="data") == 0  # the newest finished run failed
    assert value(reg, "tagwatch_monitor_champion_info", version="4") == 1
    assert value(reg, "tagwatch_baseline_micro_f1") == pytest.approx(0.61)
    assert value(reg, "tagwatch_monitor_window_questions", part="labelled") == 250
    assert all(value(reg, "tagwatch_monitor_runs_total", status=s) == 0 for s in ("ok", "failed", "skipped"))

    # A run in progress, then (within the refresh period: not read yet) it ends with a new champion.
    store(engine, run(3, 120, "running"))
    clock.now += 10
    exporter.refresh()
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 0
    store(engine, run(3, 120, "ok", took=7.0, model_version="5", data_score=0.4, data_detected=False))
    clock.now += 1
    exporter.refresh()
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 0  # throttled
    clock.now += 5
    exporter.refresh()
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 1
    assert value(reg, "tagwatch_monitor_run_duration_seconds_sum") == pytest.approx(7.0)
    assert value(reg, "tagwatch_monitor_last_success_timestamp_seconds") == (T0 + timedelta(seconds=127)).timestamp()
    assert value(reg, "tagwatch_drift_score", kind="data") == pytest.approx(0.4)
    assert value(reg, "tagwatch_drift_detected", kind="data") == 0
    assert value(reg, "tagwatch_drift_confirmed", kind="data") == 1
    info = {k: v for k, v in samples(reg).items() if k[0] == "tagwatch_monitor_champion_info"}
    assert info == {("tagwatch_monitor_champion_info", (("version", "5"),)): 1}
    # Read again and again: still counted once.
    exporter.refresh(force=True)
    exporter.refresh(force=True)
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 1
    # The next run finds the window unchanged: a success that measures nothing (the gauges stay, no duration).
    store(engine, unchanged(4, 180, run(3, 120, model_version="5")))
    exporter.refresh(force=True)
    assert value(reg, "tagwatch_monitor_runs_total", status="ok") == 2
    assert value(reg, "tagwatch_monitor_run_duration_seconds_count") == 1
    assert value(reg, "tagwatch_monitor_last_success_timestamp_seconds") == (T0 + timedelta(seconds=181)).timestamp()
    assert value(reg, "tagwatch_drift_score", kind="data") == pytest.approx(0.4)
    assert value(reg, "tagwatch_drift_confirmed", kind="data") == 1


def test_over_http_metrics_are_read_per_scrape_and_health_reads_nothing(engine: Engine) -> None:
    exporter = RunsExporter(engine, interval_seconds=300, started_at=T0, refresh_seconds=0)
    server = serve(exporter, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        first = httpx.get(f"{base}/metrics", timeout=10)
        assert first.status_code == 200
        assert "tagwatch_monitor_last_success_timestamp_seconds 0.0" in first.text
        assert 'tagwatch_monitor_runs_total{status="failed"} 0.0' in first.text
        store(engine, run(1, 0), run(2, 60, "failed"))
        text_ = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'tagwatch_monitor_runs_total{status="failed"} 1.0' in text_
        assert 'tagwatch_monitor_runs_total{status="ok"} 1.0' in text_
        assert 'tagwatch_drift_score{kind="data"} 0.7' in text_
        scraped = {f.name: f for f in text_string_to_metric_families(text_)}
        last = scraped["tagwatch_monitor_last_success_timestamp_seconds"].samples[0].value
        assert last == (T0 + timedelta(seconds=3)).timestamp()
        assert "# HELP tagwatch_drift_confirmed 1 when the policy confirmed drift" in text_
        assert "\nprocess_resident_memory_bytes " in text_  # the exporter process's own memory and CPU
        zipped = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert zipped.headers["content-encoding"] == "gzip"
        assert "tagwatch_drift_score" in zipped.text
        # The database goes away: the scrape fails (the monitor looks down, not fresh); /health still answers.
        engine.dispose()
        exporter.engine = create_engine("sqlite:////nonexistent/dir/x.db")
        broken = httpx.get(f"{base}/metrics", timeout=10)
        assert broken.status_code == 503
        assert "drift_runs" in broken.text
        health = httpx.get(f"{base}/health", timeout=10)
        assert (health.status_code, health.text) == (200, "ok\n")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.postgres
def test_a_role_that_may_only_read_drift_runs_suffices(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    owner = make_engine(postgres_url)
    store(owner, run(1, 0))
    with owner.begin() as conn:
        conn.execute(text("DROP ROLE IF EXISTS tagwatch_test_exporter_ro"))
        conn.execute(text("CREATE ROLE tagwatch_test_exporter_ro LOGIN"))
        conn.execute(text("GRANT SELECT ON drift_runs TO tagwatch_test_exporter_ro"))
    url = make_url(postgres_url).set(username="tagwatch_test_exporter_ro", password=None)
    reader = make_engine(url)
    try:
        with pytest.raises(Exception, match="permission denied"):  # it really cannot write
            store(reader, run(2, 60))
        exporter = RunsExporter(reader, interval_seconds=60, started_at=T0 - timedelta(seconds=1))
        exporter.refresh()
        assert value(exporter.metrics.registry, "tagwatch_monitor_runs_total", status="ok") == 1
        assert value(exporter.metrics.registry, "tagwatch_drift_score", kind="data") == pytest.approx(0.7)
    finally:
        reader.dispose()
        with owner.begin() as conn:
            conn.execute(text("REVOKE ALL ON drift_runs FROM tagwatch_test_exporter_ro"))
            conn.execute(text("DROP ROLE tagwatch_test_exporter_ro"))
        owner.dispose()


# --- the same numbers as a live monitor -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_exporter_shows_what_the_live_monitor_showed_after_the_same_runs(
    database_url: str, registry_with_champion: Any, settings: Any, bundled_questions: list[Any]
) -> None:
    from monitor.job import Monitor
    from tagwatch.settings import Settings
    from tests.support import log_questions

    s = Settings(**{**settings.model_dump(), "database_url": database_url, "window_size": 300, "min_window": 200})
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        started = datetime.now(UTC)
        live = Monitor(s, engine=engine, registry=registry_with_champion, retrain_enabled=False)
        live.metrics.interval.set(s.monitor_interval_seconds)  # as start_scheduler does
        exporter = RunsExporter(engine, interval_seconds=s.monitor_interval_seconds, started_at=started)
        drifted = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022]
        log_questions(engine, drifted[:300], now=started)
        assert live.run_once().status == "ok"
        log_questions(engine, drifted[300:350], now=datetime.now(UTC))
        second = live.run_once()
        assert second.status == "ok", second.error
        # No new request: the third run finds the second's window unchanged (ok, nothing measured).
        third = live.run_once()
        assert third.status == "ok", third.error
        assert third.result is None
        exporter.refresh()
        mine, theirs = samples(exporter.metrics.registry), samples(live.metrics.registry)
        # Every series of the live monitor, with the same labels; equal values except the clock readings.
        assert mine.keys() == theirs.keys()
        last = ("tagwatch_monitor_last_success_timestamp_seconds", ())
        assert mine[last] == pytest.approx(theirs[last], abs=1.0)
        durations = [k for k in mine if k[0].startswith("tagwatch_monitor_run_duration_seconds")]
        assert mine[("tagwatch_monitor_run_duration_seconds_count", ())] == 2
        assert mine[("tagwatch_monitor_runs_total", (("status", "ok"),))] == 3
        assert mine[("tagwatch_monitor_run_duration_seconds_sum", ())] == pytest.approx(
            theirs[("tagwatch_monitor_run_duration_seconds_sum", ())], rel=0.2, abs=1.0
        )
        for key in mine.keys() - {last, *durations}:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
        assert generate_latest(exporter.metrics.registry).count(b"# HELP") == generate_latest(
            live.metrics.registry
        ).count(b"# HELP")
    finally:
        engine.dispose()

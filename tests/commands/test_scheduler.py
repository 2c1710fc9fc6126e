"""The monitor process's scheduler: the drift job, the embedded retrain job, and the wake-up between them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commands.scheduler import (
    DRIFT_JOB,
    PRUNE_JOB,
    PRUNE_START_DELAY_SECONDS,
    RETRAIN_JOB,
    filed_a_retrain,
    start_scheduler,
)
from monitor.metrics import MonitorMetrics
from monitor.runs import RunOutcome
from tagwatch.settings import Settings

HOUR = 3600.0


class StubMonitor:
    """What the scheduler asks of a monitor: ``run_once`` and ``metrics``; each run files a retrain or not."""

    def __init__(self, files: list[bool], settings: Settings | None = None) -> None:
        self.metrics = MonitorMetrics()
        self.files = files
        self.runs = threading.Semaphore(0)
        # What the prune job takes from the monitor (when it runs: not within these tests' hour).
        self.settings = settings or Settings(prune_interval_seconds=2 * HOUR)
        self.engine = self.registry = None

    def run_once(self) -> RunOutcome:
        outcome = RunOutcome(id=1, status="ok", started_at=datetime.now(UTC), model_version="1")
        if self.files.pop(0):
            outcome.retrain_triggered = True
            outcome.retrain = {"result": "pending", "request_id": 1, "trigger": "drift: data"}
        self.runs.release()
        return outcome


class StubRunner:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(home=tmp_path, retrain_poll_seconds=HOUR)
        self.calls = threading.Semaphore(0)

    def run_pending(self) -> list[Any]:
        self.calls.release()
        return []


def _start(monitor: StubMonitor, runner: StubRunner | None) -> Any:
    scheduler = start_scheduler(
        monitor,  # type: ignore[arg-type]
        interval_seconds=HOUR,
        background=True,
        first_run_now=False,
        runner=runner,  # type: ignore[arg-type]
    )
    scheduler.start()
    return scheduler


def _run_drift_now(scheduler: Any, monitor: StubMonitor) -> None:
    scheduler.modify_job(DRIFT_JOB, next_run_time=datetime.now(UTC))
    assert monitor.runs.acquire(timeout=10), "the drift job did not run"


def test_both_jobs_are_scheduled_with_a_runner(tmp_path: Path) -> None:
    monitor, runner = StubMonitor([]), StubRunner(tmp_path)
    scheduler = _start(monitor, runner)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {DRIFT_JOB, RETRAIN_JOB, PRUNE_JOB}
        assert jobs[DRIFT_JOB].trigger.interval.total_seconds() == HOUR
        assert jobs[PRUNE_JOB].trigger.interval.total_seconds() == 2 * HOUR  # TAGWATCH_PRUNE_INTERVAL_SECONDS
        assert jobs[PRUNE_JOB].max_instances == 1
        assert jobs[RETRAIN_JOB].trigger.interval.total_seconds() == HOUR  # TAGWATCH_RETRAIN_POLL_SECONDS
        assert jobs[RETRAIN_JOB].max_instances == 1
        # The runner's first poll is at start: requests left by the last stop run at once.
        assert runner.calls.acquire(timeout=10)
    finally:
        scheduler.shutdown(wait=True)
    assert monitor.metrics.interval._value.get() == HOUR


def test_without_a_runner_only_the_drift_job_runs(tmp_path: Path) -> None:
    monitor = StubMonitor([True])
    scheduler = _start(monitor, None)
    try:
        assert {job.id for job in scheduler.get_jobs()} == {DRIFT_JOB, PRUNE_JOB}
        _run_drift_now(scheduler, monitor)  # files, and there is nobody to wake: no error
    finally:
        scheduler.shutdown(wait=True)


def test_a_filed_retrain_wakes_the_runner_at_once(tmp_path: Path) -> None:
    monitor, runner = StubMonitor([False, True]), StubRunner(tmp_path)
    scheduler = _start(monitor, runner)
    try:
        assert runner.calls.acquire(timeout=10)  # the start-up poll
        _run_drift_now(scheduler, monitor)  # files nothing: the runner sleeps on (its interval is an hour)
        assert not runner.calls.acquire(timeout=0.5)
        start = time.monotonic()
        _run_drift_now(scheduler, monitor)  # files a retrain
        assert runner.calls.acquire(timeout=10), "the runner was not woken"
        assert time.monotonic() - start < 10
    finally:
        scheduler.shutdown(wait=True)


def test_filed_a_retrain() -> None:
    outcome = RunOutcome(id=1, status="ok", started_at=datetime.now(UTC), model_version="1")
    assert not filed_a_retrain(outcome)
    outcome.retrain = {"result": "promoted"}
    assert not filed_a_retrain(outcome)
    outcome.retrain = {"result": "pending"}
    assert filed_a_retrain(outcome)


def test_by_default_the_runner_is_the_embedded_one_the_settings_ask_for(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    for setting, jobs in (("embedded", {DRIFT_JOB, RETRAIN_JOB, PRUNE_JOB}), ("off", {DRIFT_JOB, PRUNE_JOB})):
        monitor = StubMonitor([])
        # What embedded_runner takes from the monitor: its settings, engine, registry and metrics registry.
        monitor.settings = Settings(home=tmp_path, retrain_runner=setting)  # type: ignore[attr-defined]
        monitor.engine = monitor.registry = None  # type: ignore[attr-defined]
        scheduler = start_scheduler(monitor, interval_seconds=HOUR, background=True)  # type: ignore[arg-type]
        assert {job.id for job in scheduler.get_jobs()} == jobs, setting
        exported = generate_latest(monitor.metrics.registry).decode()
        # Embedded, the runner's metrics are on the monitor's /metrics.
        assert ("tagwatch_retrains_total" in exported) == (setting == "embedded")


def test_the_prune_job_starts_a_minute_after_the_monitor_or_after_one_interval(tmp_path: Path) -> None:
    for first_run_now, delay in ((True, PRUNE_START_DELAY_SECONDS), (False, 2 * HOUR)):
        monitor = StubMonitor([True])
        before = datetime.now(UTC)
        scheduler = start_scheduler(
            monitor,  # type: ignore[arg-type]
            interval_seconds=HOUR,
            background=True,
            first_run_now=first_run_now,
            runner=None,
        )
        scheduler.start()
        try:
            job = scheduler.get_job(PRUNE_JOB)
            assert job.coalesce
            wait = (job.next_run_time - before).total_seconds()
            assert delay - 1 <= wait <= delay + 5, (first_run_now, wait)
        finally:
            scheduler.shutdown(wait=True)


def test_the_prune_job_prunes_with_the_monitors_request_log_and_registry(
    settings: Settings, registry_with_champion: Any, sqlite_url: str, monkeypatch: Any
) -> None:
    """The demo and `tagwatch monitor` run the real prune in their scheduler: it runs, and deletes nothing they need."""
    from monitor.job import Monitor
    from tagwatch.db import make_engine, upgrade_database

    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    ran: list[Any] = []
    import commands.prune

    real = commands.prune.run_prune
    monkeypatch.setattr(commands.prune, "run_prune", lambda *a, **k: ran.append(real(*a, **k)) or ran[-1])
    monitor = Monitor(settings, engine=engine, registry=registry_with_champion)
    scheduler = start_scheduler(monitor, interval_seconds=HOUR, background=True, first_run_now=False, runner=None)
    scheduler.start()
    try:
        scheduler.modify_job(PRUNE_JOB, next_run_time=datetime.now(UTC))
        deadline = time.monotonic() + 60
        while not ran and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
        engine.dispose()
    (result,) = ran
    assert result.errors.keys() <= {"partitions", "requests"}  # until tagwatch.db.partitions exists
    assert result.model_versions is not None
    assert result.model_versions.deleted == ()
    assert registry_with_champion.champion_version() == "1"


def test_the_monitor_metrics_endpoint_gzips_and_has_the_process_series() -> None:
    import gzip
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from commands.scheduler import serve_metrics
    from retrain.metrics import RetrainMetrics

    monitor = StubMonitor([])
    RetrainMetrics(monitor.metrics.registry)  # as embedded_runner does: the process series are not registered twice
    server = serve_metrics(monitor, host="127.0.0.1", port=0)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            zipped = gzip.decompress(response.read()).decode()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers.get("Content-Encoding") is None
            plain = response.read().decode()
    finally:
        server.shutdown()
    names = [family.name for family in text_string_to_metric_families(zipped)]
    assert names == [family.name for family in text_string_to_metric_families(plain)]
    assert {"process_resident_memory_bytes", "python_gc_objects_collected", "tagwatch_drift_score"} <= set(names)
    assert "tagwatch_retrains" in names
    assert len(names) == len(set(names))


def test_the_retrain_worker_registry_has_the_process_series() -> None:
    from retrain.metrics import RetrainMetrics

    names = {family.name for family in RetrainMetrics().registry.collect()}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_gc_objects_collected"} <= names

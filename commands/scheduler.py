"""The monitor process: an APScheduler schedule running ``Monitor.run_once`` (and, embedded, the retrain runner), and
its own /metrics endpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from monitor.job import MONITOR_ACTOR, Monitor
from monitor.metrics import MonitorMetrics
from monitor.runs import RunOutcome
from tagwatch.retrain_queue import PENDING
from tagwatch.settings import Settings

if TYPE_CHECKING:
    from commands.prune import PruneResult
    from retrain.runner import RetrainRunner

log = logging.getLogger(__name__)

DRIFT_JOB = "drift-check"
RETRAIN_JOB = "retrain"
PRUNE_JOB = "prune"
# The first prune of a monitor started with its first run now: a minute later, not at the same moment as the first
# drift run and retrain poll (a prune holds the promotion lock while it deletes model versions).
PRUNE_START_DELAY_SECONDS = 60.0
# start_scheduler's default runner: the embedded one when the settings ask for it (TAGWATCH_RETRAIN_RUNNER).
FROM_SETTINGS: Final = "from-settings"


def build_monitor(settings: Settings, *, metrics: MonitorMetrics | None = None) -> Monitor:
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.registry import Registry

    if settings.auto_migrate:
        upgrade_database(settings.db_url)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    return Monitor(
        settings,
        engine=engine,
        # Its alias moves (promotions by the embedded runner) are recorded in alias_moves as "monitor".
        registry=Registry.from_settings(settings, actor=MONITOR_ACTOR, engine=engine),
        metrics=metrics,
    )


def filed_a_retrain(outcome: RunOutcome) -> bool:
    """Whether the run filed a retrain request (still pending when the run ended)."""
    return outcome.retrain is not None and outcome.retrain.get("result") == PENDING


def start_scheduler(
    monitor: Monitor,
    *,
    interval_seconds: float,
    background: bool,
    first_run_now: bool = True,
    runner: RetrainRunner | Literal["from-settings"] | None = FROM_SETTINGS,
    retrain_interval_seconds: float | None = None,
    prune_interval_seconds: float | None = None,
) -> Any:
    """Run ``monitor.run_once`` every ``interval_seconds`` (never two at once; missed runs are merged), and with a
    ``runner`` ``runner.run_pending`` every ``retrain_interval_seconds`` (default ``TAGWATCH_RETRAIN_POLL_SECONDS``)
    and at once when a drift run has filed a request. By default the runner is the embedded one
    (``commands.retraining.embedded_runner``: none when ``TAGWATCH_RETRAIN_RUNNER=off``); None: no retrain job.
    And ``tagwatch prune`` (``commands.prune.run_prune``) every ``prune_interval_seconds`` (default
    ``TAGWATCH_PRUNE_INTERVAL_SECONDS``), the first time a minute after the start (after one interval without
    ``first_run_now``).

    Across processes too: each run holds the drift-run lock (``tagwatch.locks``), so a second monitor, or a
    ``tagwatch drift-check``, skips its run while one is in progress instead of measuring beside it; each retrain holds
    the promotion lock. The two jobs run in threads of their own: a long retrain never delays a drift run.
    """
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    if isinstance(runner, str):  # FROM_SETTINGS
        from commands.retraining import embedded_runner

        runner = embedded_runner(monitor)
    monitor.metrics.interval.set(interval_seconds)
    scheduler = BackgroundScheduler(timezone=UTC) if background else BlockingScheduler(timezone=UTC)

    def drift_run() -> RunOutcome:
        outcome = monitor.run_once()
        if runner is not None and filed_a_retrain(outcome):
            scheduler.modify_job(RETRAIN_JOB, next_run_time=datetime.now(UTC))  # wake the runner now
        return outcome

    _every(scheduler, drift_run, DRIFT_JOB, interval_seconds, first_run_now=first_run_now)
    if runner is not None:
        add_retrain_job(
            scheduler, runner, interval_seconds=retrain_interval_seconds or runner.settings.retrain_poll_seconds
        )
    add_prune_job(
        scheduler,
        monitor,
        interval_seconds=prune_interval_seconds or monitor.settings.prune_interval_seconds,
        first_run_now=first_run_now,
    )
    return scheduler


def add_retrain_job(scheduler: Any, runner: RetrainRunner, *, interval_seconds: float) -> None:
    """Run ``runner.run_pending`` every ``interval_seconds``, the first time now (requests left by a stop run)."""
    _every(scheduler, runner.run_pending, RETRAIN_JOB, interval_seconds, first_run_now=True)


def add_prune_job(scheduler: Any, monitor: Monitor, *, interval_seconds: float, first_run_now: bool) -> None:
    """Run ``tagwatch prune`` (``commands.prune.run_prune``) on the monitor's request log and registry every
    ``interval_seconds``: the first time ``PRUNE_START_DELAY_SECONDS`` from now (at most one interval) when
    ``first_run_now``, else after one interval. A failing part is logged; the job runs again next interval."""

    def prune() -> PruneResult:
        from commands.prune import run_prune

        return run_prune(monitor.settings, engine=monitor.engine, registry=monitor.registry)

    delay = min(PRUNE_START_DELAY_SECONDS, interval_seconds) if first_run_now else interval_seconds
    _every(scheduler, prune, PRUNE_JOB, interval_seconds, first_run_at=datetime.now(UTC) + timedelta(seconds=delay))


def _every(
    scheduler: Any,
    job: Callable[[], object],
    job_id: str,
    seconds: float,
    *,
    first_run_now: bool = False,
    first_run_at: datetime | None = None,
) -> None:
    """Run ``job`` every ``seconds``: never two at once, missed runs merged into one. The first run: now
    (``first_run_now``), else at ``first_run_at``; neither: paused until ``modify_job`` sets a time (the demo
    triggers its drift runs so)."""
    scheduler.add_job(
        job,
        "interval",
        seconds=seconds,
        id=job_id,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(seconds)),
        next_run_time=datetime.now(UTC) if first_run_now else first_run_at,
    )


def serve_metrics(monitor: Monitor, *, host: str, port: int) -> Any:
    """Expose the monitor's metrics at http://host:port/metrics (a thread of its own). Returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=monitor.metrics.registry)
    log.info("monitor metrics on http://%s:%d/metrics", host, server.server_port)
    return server

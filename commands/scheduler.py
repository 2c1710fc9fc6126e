"""The monitor process: an APScheduler schedule running ``Monitor.run_once``, and its own /metrics endpoint."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from monitor.job import Monitor
from monitor.metrics import MonitorMetrics
from tagwatch.settings import Settings

log = logging.getLogger(__name__)


def build_monitor(settings: Settings, *, metrics: MonitorMetrics | None = None) -> Monitor:
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.registry import registry_for

    if settings.auto_migrate:
        upgrade_database(settings.db_url)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    return Monitor(
        settings,
        engine=engine,
        # Its alias moves (promotions after a retrain) are recorded in alias_moves as "monitor".
        registry=registry_for(settings, actor="monitor", engine=engine),
        metrics=metrics,
    )


def start_scheduler(monitor: Monitor, *, interval_seconds: float, background: bool, first_run_now: bool = True) -> Any:
    """Run ``monitor.run_once`` every ``interval_seconds`` (never two at once; missed runs are merged).

    Across processes too: each run holds the drift-run lock (``tagwatch.locks``), so a second monitor, or a
    ``tagwatch drift-check``, skips its run while one is in progress instead of measuring and retraining beside it.
    """
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    monitor.metrics.interval.set(interval_seconds)
    scheduler = BackgroundScheduler(timezone=UTC) if background else BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        monitor.run_once,
        "interval",
        seconds=interval_seconds,
        id="drift-check",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_seconds)),
        next_run_time=datetime.now(UTC) if first_run_now else None,
    )
    return scheduler


def serve_metrics(monitor: Monitor, *, host: str, port: int) -> Any:
    """Expose the monitor's metrics at http://host:port/metrics (a thread of its own). Returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=monitor.metrics.registry)
    log.info("monitor metrics on http://%s:%d/metrics", host, server.server_port)
    return server

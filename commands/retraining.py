"""Wiring of the retrain runner (retrain.runner): built from the settings, embedded beside the monitor, alone as
``tagwatch retrain-worker``, or once for ``tagwatch retrain``.

Light to import (the CLI registers ``worker_command`` from here): the stages are imported where they are used.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.job import Monitor
    from monitor.runs import RunOutcome
    from retrain.metrics import RetrainMetrics
    from retrain.promote import ChallengerRegistry, RetrainOutcome
    from retrain.runner import RetrainRunner
    from tagwatch.settings import Settings

log = logging.getLogger(__name__)

# The actor of the runner's registry: every promotion is recorded under its request's requested_by instead.
RUNNER_ACTOR = "retrain-runner"


def build_runner(
    settings: Settings,
    *,
    engine: Engine | None = None,
    metrics: RetrainMetrics | None = None,
    registry: ChallengerRegistry | None = None,
) -> RetrainRunner:
    """The runner of ``settings``' model on the request log (``engine``, made from the settings when not given)."""
    from retrain.runner import RetrainRunner
    from tagwatch.db import make_engine
    from tagwatch.registry import Registry

    engine = engine or make_engine(settings.db_url)
    if registry is None:
        registry = Registry.from_settings(settings, actor=RUNNER_ACTOR, engine=engine)
    return RetrainRunner(settings, engine=engine, registry=registry, metrics=metrics)


def embedded_runner(monitor: Monitor) -> RetrainRunner | None:
    """The runner ``tagwatch monitor`` runs beside its drift job (``TAGWATCH_RETRAIN_RUNNER=embedded``): on the
    monitor's engine and registry, its metrics on the monitor's /metrics. None when the runner is off."""
    from retrain.metrics import RetrainMetrics

    if monitor.settings.retrain_runner != "embedded":
        return None
    return build_runner(
        monitor.settings,
        engine=monitor.engine,
        metrics=RetrainMetrics(monitor.metrics.registry),
        registry=monitor.registry,
    )


def retrain_after(
    runner: RetrainRunner | None, monitor: Monitor, outcome: RunOutcome, *, wait: float = 3600.0
) -> RunOutcome:
    """Run what the drift run ``outcome`` filed now (one-shot runs: ``tagwatch drift-check``, the demo), waiting up
    to ``wait`` seconds for the promotion lock (held elsewhere longer: the request stays pending for the runner that
    holds it), and read its retrain back from the run's row. Nothing without a runner or a filed request."""
    from sqlalchemy.orm import Session

    from commands.scheduler import filed_a_retrain
    from tagwatch.db import DriftRun

    if runner is None or not filed_a_retrain(outcome) or outcome.id is None:
        return outcome
    runner.run_pending(wait=wait)
    with Session(monitor.engine) as session:
        row = session.get(DriftRun, outcome.id)
        if row is not None:
            outcome.retrain = row.retrain
    return outcome


def retrain_now(settings: Settings, *, actor: str, wait: float = 0.0) -> RetrainOutcome:
    """``tagwatch retrain``: file a manual request and run it at once; its outcome (raises ``LockBusy`` when the
    promotion lock stays held elsewhere for ``wait`` seconds: nothing filed)."""
    from retrain.runner import outcome_of
    from tagwatch.db import make_engine

    engine = make_engine(settings.db_url)
    try:
        request = build_runner(settings, engine=engine).run_now(reason="manual", requested_by=actor, wait=wait)
    finally:
        engine.dispose()
    return outcome_of(request)


def run_worker(settings: Settings, *, host: str, port: int, interval_seconds: float | None = None) -> None:
    """``tagwatch retrain-worker``: the runner alone, polling every ``interval_seconds`` (default
    ``TAGWATCH_RETRAIN_POLL_SECONDS``), its metrics on http://host:port/metrics (port 0: none), until interrupted."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from prometheus_client import start_http_server

    from commands.scheduler import add_retrain_job
    from tagwatch.db import upgrade_database

    if settings.auto_migrate:
        upgrade_database(settings.db_url)
    runner = build_runner(settings)
    if port:
        server, _thread = start_http_server(port, addr=host, registry=runner.metrics.registry)
        log.info("retrain worker metrics on http://%s:%d/metrics", host, server.server_port)
    scheduler = BlockingScheduler(timezone="UTC")
    add_retrain_job(scheduler, runner, interval_seconds=interval_seconds or settings.retrain_poll_seconds)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
    runner.engine.dispose()


def worker_command(
    host: Annotated[str | None, typer.Option(help="Interface for the worker's /metrics.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the worker's /metrics (0: none).")] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            min=1.0, help="Seconds between polls for pending requests (default: TAGWATCH_RETRAIN_POLL_SECONDS)."
        ),
    ] = None,
) -> None:
    """Run the retrain runner alone: claim the retrain requests the monitor files, train, judge and promote, until
    interrupted (run `tagwatch monitor` with TAGWATCH_RETRAIN_RUNNER=off beside it)."""
    from commands.cli.console import setup_logging
    from tagwatch.settings import get_settings

    setup_logging()
    settings = get_settings()
    run_worker(
        settings,
        host=host or settings.retrain_worker_host,
        port=settings.retrain_worker_port if port is None else port,
        interval_seconds=interval,
    )

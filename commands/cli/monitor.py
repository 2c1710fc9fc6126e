"""Drift commands: ``monitor`` on a schedule, ``drift-check`` once."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from commands.cli.console import setup_logging
from commands.cli.options import JsonOpt
from tagwatch.settings import get_settings

# `drift-check --exit-code`: the run confirmed drift (1 is a failure, 2 a usage error, as everywhere).
EXIT_DRIFT = 3


def monitor(
    interval: Annotated[
        float | None, typer.Option(min=1.0, help="Seconds between runs (default: TAGWATCH_MONITOR_INTERVAL_SECONDS).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface for the monitor's /metrics.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the monitor's /metrics (0: none).")] = None,
    exporter: Annotated[
        bool,
        typer.Option(
            "--exporter",
            help="Run no drift job: serve the monitor's metrics read from the drift_runs table, for drift runs made "
            "elsewhere (`tagwatch drift-check` on a schedule: a CronJob). --interval is then the schedule's interval.",
        ),
    ] = False,
) -> None:
    """Run the drift monitor on a schedule (APScheduler) and expose its metrics, until interrupted."""
    setup_logging()
    settings = get_settings()
    if exporter:
        run_exporter(
            host=host or settings.monitor_host,
            port=settings.monitor_port if port is None else port,
            interval=interval or settings.monitor_interval_seconds,
        )
        return
    from commands.scheduler import build_monitor, serve_metrics, start_scheduler

    mon = build_monitor(settings)
    metrics_port = settings.monitor_port if port is None else port
    if metrics_port:
        serve_metrics(mon, host=host or settings.monitor_host, port=metrics_port)
    scheduler = start_scheduler(mon, interval_seconds=interval or settings.monitor_interval_seconds, background=False)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


def run_exporter(*, host: str, port: int, interval: float) -> None:
    """``tagwatch monitor --exporter``: the metrics of drift runs made elsewhere, until interrupted (Ctrl-C, SIGTERM).
    Reads drift_runs only (the monitor's database role, or a read-only one); runs no migration."""
    import signal
    import threading

    from monitor.exporter import RunsExporter, serve
    from tagwatch.db import make_engine

    if not port:
        typer.echo("tagwatch monitor --exporter: --port 0 serves nothing; give the port to scrape", err=True)
        raise typer.Exit(2)
    engine = make_engine(get_settings().db_url)
    try:
        server = serve(RunsExporter(engine, interval_seconds=interval), host=host, port=port)
    except OSError as exc:
        engine.dispose()
        typer.echo(f"tagwatch monitor --exporter: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    stop = threading.Event()
    # A Deployment's pod is stopped with SIGTERM: end as on Ctrl-C, not with a traceback.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.shutdown()
    engine.dispose()


def drift_check(
    as_json: JsonOpt = False,
    no_retrain: Annotated[bool, typer.Option("--no-retrain", help="Measure and decide, but start no retrain.")] = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help=f"Exit {EXIT_DRIFT} when the run confirms drift of any kind (default: 0, whatever it found).",
        ),
    ] = False,
) -> None:
    """Run the drift monitor once on the current window and print its summary.

    Exit codes: 0 the run was made (or skipped), 1 it failed, 2 usage or an invalid setting, 3 drift confirmed
    (only with --exit-code).

    Like a scheduled run it holds the drift-run lock: while another run (a running monitor's) holds it, nothing is
    measured (status skipped, no run recorded)."""
    setup_logging()
    from commands.retraining import embedded_runner, retrain_after
    from commands.scheduler import build_monitor, filed_a_retrain

    mon = build_monitor(get_settings())
    outcome = mon.run_once(allow_retrain=not no_retrain)
    if filed_a_retrain(outcome):  # run now by the embedded runner (lock held elsewhere: left pending for its holder)
        outcome = retrain_after(embedded_runner(mon), mon, outcome, wait=0)
    result = outcome.to_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif outcome.id is None and outcome.status == "skipped":
        typer.echo("not run: " + "; ".join(result["decision"]["reasons"]))
    else:
        typer.echo(f"run {result['run_id']}: {result['status']} (model {result['model_version']})")
        for kind, k in result["kinds"].items():
            flag = "CONFIRMED" if k["confirmed"] else ("detected" if k["detected"] else "-")
            typer.echo(f"  {kind:<8} score {k['score']} threshold {k['threshold']} {flag}")
        typer.echo("  decision: " + "; ".join(result["decision"]["reasons"]))
        if result["report"]:
            typer.echo(f"  report: {get_settings().reports_dir / result['report']}")
    if outcome.status == "failed":
        raise typer.Exit(1)
    if exit_code and any(k.get("confirmed") for k in result.get("kinds", {}).values()):
        raise typer.Exit(EXIT_DRIFT)

"""The long-running HTTP processes: ``serve`` the prediction API, ``alert-sink`` for Alertmanager's webhooks."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from commands.cli.console import setup_logging
from tagwatch.settings import get_settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Run the prediction service (FastAPI) until interrupted."""
    setup_logging()
    import uvicorn

    from service.app import create_app
    from service.auth import ProductionConfigError

    try:
        api = create_app(get_settings())
    except ProductionConfigError as exc:
        typer.echo(f"tagwatch: invalid setting: {exc}", err=True)
        raise typer.Exit(2) from None
    # In-flight requests get 5 s after SIGTERM; then the lifespan drains the request log (TAGWATCH_LOG_DRAIN_SECONDS).
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_level="info",
        # uvicorn's lines go through setup_logging's handler (JSON with TAGWATCH_LOG_FORMAT=json); the access log is
        # the app's own (TAGWATCH_ACCESS_LOG: with the request id and the duration).
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def alert_sink(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 9095,
    keep: Annotated[int, typer.Option(min=1, help="Notifications kept in memory for GET /alerts.")] = 200,
) -> None:
    """Receive Alertmanager webhooks on POST /alerts: log one line per alert, keep the last ones for GET /alerts."""
    import signal

    from commands.alertsink import AlertSink

    sink = AlertSink(host, port, keep=keep, echo=typer.echo)
    sink.bind()
    # As a container's PID 1 the process ignores SIGTERM unless it handles it: stop cleanly on `docker stop`.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    typer.echo(f"alert sink listening on {sink.url}/alerts", err=True)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sink.serve_forever()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)

"""The ``tagwatch`` command. Each subcommand is a thin edge: parse options, call a stage, print the result.

One module per group of commands; this module builds the app and lists the commands in their help order. The
stage packages (service, monitor, retrain) are imported inside the command functions, so ``tagwatch --help`` stays
cheap.
"""

from __future__ import annotations

import typer

from commands import retraining
from commands.cli import deployment, model, monitor, prune, registry, replay, serve, simulate
from tagwatch.settings import get_settings

app = typer.Typer(
    help="tagwatch: tag suggestions for Stack Overflow questions, kept healthy in production.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _check_settings() -> None:
    """Read the settings once before any command: a wrong value is one clear line, not a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            name = f"TAGWATCH_{where.upper()}: " if where else ""
            typer.echo(f"tagwatch: invalid setting: {name}{err['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None


app.command("train")(model.train)
app.command("evaluate")(model.evaluate)
app.command("serve")(serve.serve)
app.command("replay")(replay.replay)
app.command("monitor")(monitor.monitor)
app.command("drift-check")(monitor.drift_check)
app.command("retrain")(registry.retrain_cmd)
app.command("retrain-worker")(retraining.worker_command)
app.command("rollback")(registry.rollback)
app.command("history")(registry.history)
app.command("backtest")(simulate.backtest)
app.command("migrate")(deployment.migrate)
app.command("init")(deployment.init)
app.command("prune")(prune.prune)
app.command("alert-sink")(serve.alert_sink)
app.command("demo")(simulate.demo)


def main() -> None:  # pragma: no cover - console entry point
    app()

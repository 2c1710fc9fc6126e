"""Commands that move or list the champion: ``retrain`` now, ``rollback`` to an earlier version, the ``history``."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated

import typer

from commands.cli.console import printable, redact, setup_logging
from commands.cli.options import JsonOpt, WaitOpt
from tagwatch.settings import get_settings


def retrain_cmd(
    as_json: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Train a challenger on recent labelled requests now; promote it only if it beats the champion.

    Files a retrain request and runs it at once, holding the promotion lock: one retrain, promotion or rollback at a
    time, the monitor's included. Recorded in the registry and in retrain_requests, not in drift_runs (the monitor's
    runs)."""
    setup_logging()
    from commands.retraining import retrain_now
    from tagwatch.history import local_actor
    from tagwatch.locks import PROMOTION, LockBusy

    settings = get_settings()
    try:
        outcome = retrain_now(settings, actor=local_actor(), wait=wait)
    except LockBusy:
        message = "a retrain or promotion is running (monitor?): nothing done" + (
            f" after waiting {wait:g} s" if wait else "; --wait SECONDS waits for it"
        )
        if as_json:
            typer.echo(json.dumps({"result": "busy", "error": message, "lock": PROMOTION}, indent=2))
        typer.echo(f"tagwatch retrain: {message}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        result = {**outcome.to_dict(), "lock": PROMOTION, "recorded_in_drift_runs": False}
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(
            f"retrain: {outcome.result}; challenger {outcome.challenger_version}, champion "
            f"{outcome.champion_version}" + (f"; {outcome.error}" if outcome.error else "")
        )
        if outcome.comparison:
            typer.echo("  " + "; ".join(outcome.comparison["reasons"]))
    if outcome.result == "failed":
        raise typer.Exit(1)


def rollback(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="VERSION",
            help="Make this version champion, however old (default: the previous champion). Refused, with nothing "
            "moved, if the version does not exist or its artifacts are gone.",
        ),
    ] = None,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Put an earlier model back as champion; the current one becomes previous (the service follows within its
    reload interval). Recorded in the history (`tagwatch history`) with trigger "rollback" and your user name.

    Holds the promotion lock: no retrain or promotion (the monitor's included) can move the champion meanwhile."""
    setup_logging()
    from retrain.promote import rollback as do_rollback
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.history import local_actor
    from tagwatch.locks import LockBusy, promotion_lock
    from tagwatch.registry import Registry, RegistryError

    settings = get_settings()
    actor = local_actor()
    if settings.auto_migrate:
        upgrade_database(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with promotion_lock(engine, settings.model_name, wait=wait):
            registry = Registry.from_settings(settings, actor=actor, engine=engine)
            old, new = do_rollback(registry, to, trigger="rollback", actor=actor)
    except LockBusy:
        typer.echo(
            "rollback refused: a retrain or promotion is running (monitor?); no alias moved"
            + (f" after waiting {wait:g} s" if wait else "; --wait SECONDS waits for it"),
            err=True,
        )
        raise typer.Exit(1) from None
    except (LookupError, RegistryError, ValueError) as exc:
        typer.echo(f"rollback refused: {exc}; no alias moved", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"model": settings.model_name, "from": old, "to": new, "moved": old != new}, indent=2))
        return
    if old == new:
        typer.echo(f"{settings.model_name} version {new} is the champion already: nothing moved")
        return
    typer.echo(f"champion {old or '-'} -> {new}" + (f" (previous is now {old})" if old else ""))


def history(
    as_json: JsonOpt = False,
    alias: Annotated[
        str | None, typer.Option(help="Only this alias's moves (champion, previous, challenger; default: all).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N moves.")] = None,
) -> None:
    """Every recorded move of the model's aliases, newest first: when, alias, from -> to, trigger, who."""
    from sqlalchemy.exc import SQLAlchemyError

    from tagwatch.db import make_engine
    from tagwatch.history import list_moves

    settings = get_settings()
    engine = make_engine(settings.db_url)
    try:
        moves = list_moves(engine, model_name=settings.model_name, alias=alias, limit=limit)
    except SQLAlchemyError as exc:
        typer.echo(
            f"cannot read the history from {redact(settings.db_url)}: {type(exc).__name__} "
            "(is the database at head? `tagwatch migrate`)",
            err=True,
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in moves], indent=2))
        return
    if not moves:
        typer.echo(f"no {alias + ' ' if alias else ''}alias move recorded for {settings.model_name}")
        return
    rows = [
        (
            f"{m.moved_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            m.alias,
            f"{m.from_version or '-'} -> {m.to_version or '-'}",
            m.trigger,
            m.actor,
        )
        for m in moves
    ]
    header = ("moved at (UTC)", "alias", "from -> to", "trigger", "who")
    widths = [max(len(printable(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [printable(cell) for cell in row]
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False)) + "  " + cells[4])

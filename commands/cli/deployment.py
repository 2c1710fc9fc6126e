"""Preparing a deployment: ``migrate`` the database and the registry's store (and roles), ``init`` a first model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from commands.cli.console import redact, setup_logging
from commands.cli.model import metrics_table, summary
from commands.cli.options import DataOpt, JsonOpt, parse_date
from tagwatch import progress
from tagwatch.settings import Settings, get_settings

Echo = Callable[[str], Any]


def _quiet(_line: str) -> None:
    """The echo of --json: the lines of a table go nowhere, the JSON document says it all."""


def migrate(as_json: JsonOpt = False) -> None:
    """Create or upgrade the request-log database (Alembic) and the model registry's store."""
    setup_logging()
    result = migrate_all(get_settings(), echo=_quiet if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(result, indent=2))


def migrate_all(settings: Settings, echo: Echo = typer.echo) -> dict[str, Any]:
    """Upgrade the database and create the registry's store. Returns what was done (the --json document): the
    database and registry URLs (passwords redacted), the partitions and roles created, and the champion version
    (None: no champion)."""
    from tagwatch.db import upgrade_database
    from tagwatch.registry import Registry

    upgrade_database(settings.db_url)
    echo(f"database at head: {redact(settings.db_url)}")
    partitions = ensure_request_partitions(settings, echo)
    # The registry store creates its tables on first use: do it here, once, not in several processes at once.
    champion = Registry.from_settings(settings).champion_version()
    echo(f"registry ready: {redact(settings.tracking_url)}")
    # The API replicas mount the home volume read-only (the Helm chart) and serve reports/ from it: it must exist
    # before the first drift run writes into it.
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    roles = ensure_database_roles(settings, echo)
    return {
        "database": redact(settings.db_url),
        "registry": redact(settings.tracking_url),
        "partitions_created": partitions,
        "roles": roles,
        "champion": champion,
    }


def ensure_request_partitions(settings: Settings, echo: Echo = typer.echo) -> list[str]:
    """PostgreSQL: this month's request-log partitions and TAGWATCH_PARTITIONS_AHEAD more (`tagwatch prune` keeps
    creating them ahead); nothing on SQLite."""
    from datetime import UTC, datetime

    from tagwatch.db import make_engine
    from tagwatch.db.partitions import ensure_partitions

    engine = make_engine(settings.db_url)
    try:
        created = ensure_partitions(engine, now=datetime.now(UTC), ahead=settings.partitions_ahead)
    finally:
        engine.dispose()
    if created:
        echo(f"request-log partitions created: {', '.join(created)}")
    return list(created)


def ensure_database_roles(settings: Settings, echo: Echo = typer.echo) -> list[dict[str, Any]]:
    """The least-privilege database roles of a deployment (tagwatch/roles.py), for the role passwords that are set."""
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url

    from tagwatch.roles import ROLE_KINDS, RolesError, ensure_roles

    variables = {kind: f"TAGWATCH_{kind.upper()}_DB_PASSWORD" for kind in ROLE_KINDS}
    if make_url(settings.db_url).get_backend_name() == "sqlite":
        echo("database roles: none (SQLite has no roles; every process opens the files itself)")
        return []
    passwords: dict[str, SecretStr | None] = {kind: getattr(settings, f"{kind}_db_password") for kind in ROLE_KINDS}
    if not any(p is not None and p.get_secret_value() for p in passwords.values()):
        echo(f"database roles: none created (set {', '.join(variables.values())} to create them)")
        return []
    try:
        results = ensure_roles(settings.db_url, settings.tracking_url, passwords, prefix=settings.db_role_prefix)
    except RolesError as exc:
        typer.echo(f"tagwatch: database roles: {exc}", err=True)
        raise typer.Exit(1) from None
    for result in results:
        if result.action == "skipped":
            echo(f"database role {result.role}: skipped ({variables[result.kind]} is not set)")
        else:
            echo(f"database role {result.role} {result.action}: {', '.join(result.databases)}")
    return [{"role": r.role, "kind": r.kind, "action": r.action, "databases": list(r.databases)} for r in results]


def init(
    data: DataOpt = None,
    until: Annotated[
        str, typer.Option(help="Train on questions created before this date (YYYY-MM-DD).")
    ] = "2019-01-01",
    max_train: Annotated[
        int, typer.Option(min=200, help="Train on a seeded sample of at most this many of those questions.")
    ] = 12_000,
    if_empty: Annotated[
        bool,
        typer.Option(
            "--if-empty/--always",
            help="Train only when the registry has no champion (default), or register a new version anyway "
            "(it becomes champion only when there is none).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Prepare a deployment (the compose stack's one-shot init): migrate, create the registry, train a first model."""
    setup_logging()
    import random

    from retrain.job import load_data, select_window, train_and_register

    settings = get_settings()
    echo: Echo = _quiet if as_json else typer.echo
    cutoff = parse_date(until, "--until")
    migrated = migrate_all(settings, echo)
    champion = migrated["champion"]
    if champion is not None and if_empty:
        echo(f"{settings.model_name} version {champion} is champion: no model to train")
        if as_json:
            typer.echo(json.dumps({"migrate": migrated, "trained": False, "version": champion}, indent=2))
        return
    questions = select_window(load_data(data or settings.data_path), since=None, until=cutoff)
    if len(questions) > max_train:
        # A seeded sample, kept in time order (the time hold-out is the newest part of it).
        keep = set(random.Random(settings.seed).sample(range(len(questions)), max_train))
        questions = [q for i, q in enumerate(questions) if i in keep]
    if len(questions) < 200:
        typer.echo(f"Only {len(questions)} questions created before {until}; at least 200 are needed.", err=True)
        raise typer.Exit(2)
    echo(f"training on {len(questions)} questions created before {until} ...")
    with progress.show():
        run = train_and_register(settings, questions, trigger="init")
    if as_json:
        document = {
            "migrate": migrated,
            "trained": True,
            "version": run.version,
            "champion": run.champion,
            "questions": len(questions),
            "data_window": run.data_window,
            "seconds": round(run.seconds, 1),
            "metrics": summary(run.metrics),
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"Registered {settings.model_name} version {run.version}"
        f"{' (champion)' if run.champion else ''} in {run.seconds:.0f} s; window {run.data_window}"
    )
    typer.echo(metrics_table(summary(run.metrics)))

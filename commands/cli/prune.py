"""``tagwatch prune``: bound what tagwatch keeps (old requests, reports and model versions), once."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from commands.cli.console import printable, setup_logging
from commands.cli.options import JsonOpt
from tagwatch.settings import get_settings


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing: list what would be deleted (no partition is created).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete what is past its retention: logged requests (TAGWATCH_RETENTION_DAYS), drift reports
    (TAGWATCH_REPORT_RETENTION_DAYS), model versions beyond the champion, previous, challenger and the newest
    TAGWATCH_KEEP_MODEL_VERSIONS; create the request log's next partitions; report the spill directory (never deleted:
    its files are requests not yet written). Safe to run twice. Exit 1 when a part failed."""
    setup_logging()
    from commands.prune import prune_from_settings, summary_lines

    try:
        result = prune_from_settings(get_settings(), dry_run=dry_run)
    except Exception as exc:  # the database or the registry cannot be reached at all
        typer.echo(f"tagwatch prune: failed: {type(exc).__name__}: {printable(str(exc))}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(f"tagwatch prune{' (dry run: nothing changed)' if dry_run else ''}:")
        for line in summary_lines(result):
            typer.echo("  " + printable(line))
    if not result.ok:
        failed = ", ".join(sorted(result.errors))
        typer.echo(f"tagwatch prune: failed: {failed} (the other parts ran; see above)", err=True)
        raise typer.Exit(1)

"""Option types shared by several commands, and the parsing of their values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Questions file (bundled CSV, SEDE CSV, StackSample "
        "Questions.csv, or a data-dump Posts.xml). Default: bundled data."
    ),
]
SinceOpt = Annotated[str | None, typer.Option(help="Only questions created on or after this date (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only questions created before this date (YYYY-MM-DD).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# The promotion lock's wait, for every command that moves the champion.
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0.0,
        metavar="SECONDS",
        help="Wait up to this long for a retrain or promotion running elsewhere (the monitor's) to end "
        "(default: give up at once).",
    ),
]


def parse_date(value: str | None, option: str) -> datetime | None:
    """``value`` (YYYY-MM-DD, or any ISO date-time) as an aware datetime, UTC when it names no zone."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2018-01-31", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""Helpers of the CLI tests: the command under Typer's runner and a tiny questions file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

# A tiny questions file in the bundled format (17 rows, 7 readable questions, dated 2008-2010 or undated).
TINY_DATA = Path(__file__).parents[2] / "tagwatch" / "fixtures" / "bundled_small.csv"


def invoke(*args: str) -> Result:
    """``tagwatch ARGS`` in process; ``result.output`` holds stdout and stderr, ``result.stdout`` stdout alone."""
    from commands.cli import app

    return CliRunner().invoke(app, list(args), prog_name="tagwatch")

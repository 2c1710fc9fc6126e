"""Where drift reports live: their file names, shared by the monitor that writes them and the API that serves them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

INDEX_NAME = "index.html"
REPORT_GLOB = "drift-*.html"


def report_filename(started_at: datetime) -> str:
    """A sortable, URL-safe file name for the report of a run started at ``started_at``."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    return f"drift-{started_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}.html"


def latest_report_name(directory: Path) -> str | None:
    """The file name of the newest report in ``directory`` (names sort by time), or None."""
    names = sorted(p.name for p in directory.glob(REPORT_GLOB)) if directory.is_dir() else []
    return names[-1] if names else None

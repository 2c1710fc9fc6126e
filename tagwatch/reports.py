"""Where drift reports live: their file names, shared by the monitor that writes them and the API that serves them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

INDEX_NAME = "index.html"
REPORT_GLOB = "drift-*.html"


_REPORT_NAME = re.compile(r"drift-(\d{8}T\d{6}\.\d{6})Z\.html")


def report_filename(started_at: datetime) -> str:
    """A sortable, URL-safe file name for the report of a run started at ``started_at``."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    return f"drift-{started_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}.html"


def latest_report_name(directory: Path) -> str | None:
    """The file name of the newest report in ``directory`` (names sort by time), or None."""
    names = sorted(p.name for p in directory.glob(REPORT_GLOB)) if directory.is_dir() else []
    return names[-1] if names else None


def report_time(name: str) -> datetime | None:
    """When the run of the report named ``name`` started (from its name), or None for a name not ours."""
    found = _REPORT_NAME.fullmatch(name)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)

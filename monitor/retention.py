"""Bounded drift reports: a report (~4 MB) is kept ``report_retention_days`` days, then deleted.

``expired_reports`` is the pure choice (report names and a cutoff -> the names to delete: a report's name carries the
start of its run). ``prune_reports`` does it: first the drift_runs rows of older runs stop naming their report (so
neither the dashboards nor the reports index link a file that is about to go), then the files go. Run twice, or
after a crash between the two steps, it finds only what is left: the rows are cleared by time, the files by name.
The reports index is rewritten by the caller (``monitor.job.write_reports_index``), where an old run then reads
"expired".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from tagwatch.db import DriftRun
from tagwatch.reports import REPORT_GLOB, report_time

log = logging.getLogger(__name__)

# A report being written is a hidden temporary file first (monitor.report._write_atomic); one left by a process that
# died while writing is deleted once it is as old as an expired report.
_TEMPORARY_GLOB = ".drift-*.tmp"


@dataclass(frozen=True)
class ReportPrune:
    """What a prune of drift reports did (or, ``dry_run``, would do)."""

    reports_dir: Path
    cutoff: datetime
    dry_run: bool
    deleted: tuple[str, ...] = ()  # file names (dry run: would be deleted)
    bytes_deleted: int = 0
    runs_unlinked: int = 0  # drift_runs rows whose report_path was cleared (dry run: would be)
    reports_kept: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports_dir": str(self.reports_dir),
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "deleted": len(self.deleted),
            "deleted_names": list(self.deleted[:50]),  # a first run after months may delete thousands
            "bytes_deleted": self.bytes_deleted,
            "runs_unlinked": self.runs_unlinked,
            "reports_kept": self.reports_kept,
            "seconds": round(self.seconds, 3),
        }


def expired_reports(names: Iterable[str], *, cutoff: datetime) -> list[str]:
    """The reports among ``names`` whose run started before ``cutoff``, oldest first; names that are not report
    names (the index, anything else) are never chosen."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    dated = [(at, name) for name in names if (at := report_time(name)) is not None]
    return [name for at, name in sorted(dated) if at < cutoff]


def prune_reports(engine: Engine, reports_dir: Path, *, older_than: datetime, dry_run: bool = False) -> ReportPrune:
    """Delete the reports of runs started before ``older_than`` and clear their drift_runs rows' ``report_path``."""
    started = time.perf_counter()
    names = [p.name for p in reports_dir.glob(REPORT_GLOB)] if reports_dir.is_dir() else []
    expired = expired_reports(names, cutoff=older_than)
    stale_temporaries = [
        p for p in (reports_dir.glob(_TEMPORARY_GLOB) if reports_dir.is_dir() else []) if _mtime(p) < older_than
    ]
    named = DriftRun.report_path.is_not(None) & (DriftRun.started_at < older_than)
    with Session(engine) as session:
        unlinked = session.scalar(select(func.count()).select_from(DriftRun).where(named)) or 0
        if not dry_run and unlinked:
            session.execute(update(DriftRun).where(named).values(report_path=None))
            session.commit()
    deleted_bytes = 0
    deleted: list[str] = []
    for path in [*(reports_dir / n for n in expired), *stale_temporaries]:
        try:
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:  # deleted meanwhile (another prune)
            continue
        deleted_bytes += size
        deleted.append(path.name)
    if deleted and not dry_run:
        log.info("deleted %d drift reports (%d bytes) of runs before %s", len(deleted), deleted_bytes, older_than)
    return ReportPrune(
        reports_dir=reports_dir,
        cutoff=older_than,
        dry_run=dry_run,
        deleted=tuple(deleted),
        bytes_deleted=deleted_bytes,
        runs_unlinked=int(unlinked),
        reports_kept=len(names) - len(expired),
        seconds=time.perf_counter() - started,
    )


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return datetime.max.replace(tzinfo=UTC)

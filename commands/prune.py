"""``tagwatch prune``: everything tagwatch keeps, bounded in one run.

The parts, each on its own (one failing does not stop the others; the run then fails):

- partitions: PostgreSQL's monthly request-log partitions created ``partitions_ahead`` months ahead
  (``tagwatch.db.partitions.ensure_partitions``; nothing on SQLite);
- requests: logged requests and their feedback older than ``retention_days`` (``prune_requests``: whole months
  dropped on PostgreSQL, batched deletes on SQLite);
- reports: drift reports older than ``report_retention_days`` (``monitor.retention``), then the reports index again;
- model versions: all but the champion, ``previous``, ``challenger`` (any alias) and the newest
  ``keep_model_versions``, with their artifact directories (``tagwatch.registry.pruning``, under the promotion lock);
- spill: the spill directory's size against its cap, reported only. Spill files hold rows the database has not taken
  yet (an outage); the API replays and deletes them. Deleting them would lose requests, so prune never does.

Every part is idempotent (a CronJob may start it twice) and ``dry_run`` changes nothing, listing what would go. The
monitor's scheduler runs ``run_prune`` every ``prune_interval_seconds`` (``commands.scheduler``); the chart's CronJob
runs the command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.retention import ReportPrune
    from tagwatch.db.partitions import RequestPrune
    from tagwatch.registry import Registry
    from tagwatch.registry.pruning import VersionPrune
    from tagwatch.settings import Settings

log = logging.getLogger(__name__)

PARTS = ("partitions", "requests", "reports", "model_versions", "spill")
SPILL_NOTE = "spill files are requests not yet written to the database: prune reports them and never deletes them"


class PartResult(Protocol):
    """A part's typed result: ``tagwatch.db.partitions.RequestPrune``, ``ReportPrune``, ``VersionPrune``, ..."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SpillReport:
    """The spill directory against its cap (``spill_max_bytes``) and the share that counts as nearly full."""

    directory: Path
    files: int
    bytes: int
    limit_bytes: int
    warn_ratio: float

    @property
    def ratio(self) -> float | None:
        return self.bytes / self.limit_bytes if self.limit_bytes > 0 else None

    @property
    def nearly_full(self) -> bool:
        return self.ratio is not None and self.ratio > self.warn_ratio

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "files": self.files,
            "bytes": self.bytes,
            "limit_bytes": self.limit_bytes,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "warn_ratio": self.warn_ratio,
            "nearly_full": self.nearly_full,
            "note": SPILL_NOTE,
        }


@dataclass(frozen=True)
class PartitionsEnsured:
    """The monthly request-log partitions created ahead by this run (none on SQLite, none when all existed)."""

    ahead: int
    created: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ahead": self.ahead, "created": list(self.created)}


@dataclass(frozen=True)
class PruneResult:
    """One prune run: each part's typed result (None: not run, see ``errors`` or ``skipped``)."""

    started_at: datetime
    dry_run: bool
    partitions: PartitionsEnsured | None = None
    requests: RequestPrune | None = None
    reports: ReportPrune | None = None
    model_versions: VersionPrune | None = None
    spill: SpillReport | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why it did not run (not a failure)
    errors: dict[str, str] = field(default_factory=dict)  # part -> what failed
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name in PARTS:
            value: PartResult | None = getattr(self, name)
            status = "failed" if name in self.errors else ("skipped" if name in self.skipped else "ok")
            parts[name] = {
                "status": status,
                "result": value.to_dict() if value is not None else None,
                "reason": self.errors.get(name) or self.skipped.get(name),
            }
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "parts": parts,
        }


def run_prune(
    settings: Settings,
    *,
    engine: Engine,
    registry: Registry,
    now: datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Run every part against the request log ``engine`` and ``registry``; never raises for a part's failure."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    found: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}

    def part(name: str, work: Callable[[], object]) -> None:
        try:
            found[name] = work()
        except Exception as exc:
            log.exception("prune: %s failed", name)
            errors[name] = f"{type(exc).__name__}: {exc}"

    if dry_run:
        skipped["partitions"] = "dry run: no partition is created"
    else:
        part("partitions", lambda: _ensure_partitions(engine, now=now, ahead=settings.partitions_ahead))
    part(
        "requests",
        lambda: _prune_requests(engine, older_than=now - timedelta(days=settings.retention_days), dry_run=dry_run),
    )
    part("reports", lambda: _prune_reports(settings, engine, now=now, dry_run=dry_run))
    part("model_versions", lambda: _prune_versions(registry, engine, settings.keep_model_versions, dry_run=dry_run))
    part("spill", lambda: spill_report(settings))
    versions: VersionPrune | None = found.get("model_versions")
    if versions is not None and versions.skipped:
        skipped["model_versions"] = versions.skipped
    result = PruneResult(
        started_at=now,
        dry_run=dry_run,
        partitions=found.get("partitions"),
        requests=found.get("requests"),
        reports=found.get("reports"),
        model_versions=versions,
        spill=found.get("spill"),
        skipped=skipped,
        errors=errors,
        seconds=time.perf_counter() - started,
    )
    log.info("prune%s: %s", " (dry run)" if dry_run else "", "; ".join(summary_lines(result)))
    return result


def _ensure_partitions(engine: Engine, *, now: datetime, ahead: int) -> PartitionsEnsured:
    from tagwatch.db.partitions import ensure_partitions

    return PartitionsEnsured(ahead=ahead, created=tuple(ensure_partitions(engine, now=now, ahead=ahead)))


def _prune_requests(engine: Engine, *, older_than: datetime, dry_run: bool) -> RequestPrune:
    from tagwatch.db.partitions import prune_requests

    return prune_requests(engine, older_than=older_than, dry_run=dry_run)


def _prune_reports(settings: Settings, engine: Engine, *, now: datetime, dry_run: bool) -> ReportPrune:
    from monitor.job import write_reports_index
    from monitor.retention import prune_reports

    cutoff = now - timedelta(days=settings.report_retention_days)
    result = prune_reports(engine, settings.reports_dir, older_than=cutoff, dry_run=dry_run)
    if not dry_run and (result.deleted or result.runs_unlinked):
        write_reports_index(engine, settings)  # no link to a deleted report stays
    return result


def _prune_versions(registry: Registry, engine: Engine, keep_newest: int, *, dry_run: bool) -> VersionPrune:
    from tagwatch.registry.pruning import prune_versions

    return prune_versions(registry, engine, keep_newest=keep_newest, dry_run=dry_run)


def spill_report(settings: Settings) -> SpillReport:
    """The spill directory's usage (one scan of it)."""
    from service.requestlog.spill import spill_usage

    usage = spill_usage(settings.spill_dir)
    return SpillReport(
        directory=settings.spill_dir,
        files=usage.files,
        bytes=usage.bytes,
        limit_bytes=settings.spill_max_bytes,
        warn_ratio=settings.spill_warn_ratio,
    )


def summary_lines(result: PruneResult) -> list[str]:
    """One line per part, for people (the command's output, the scheduler's log)."""
    would = "would delete" if result.dry_run else "deleted"
    lines = []
    for name in PARTS:
        if name in result.errors:
            lines.append(f"{name}: FAILED: {result.errors[name]}")
            continue
        if name in result.skipped:
            lines.append(f"{name}: skipped: {result.skipped[name]}")
            continue
        lines.append(f"{name}: {_describe(name, result, would)}")
    return lines


def _describe(name: str, result: PruneResult, would: str) -> str:
    if name == "partitions" and result.partitions is not None:
        created = ", ".join(result.partitions.created) or "none missing"
        return f"created {created} ({result.partitions.ahead} months ahead)"
    if name == "requests" and result.requests is not None:
        q = result.requests
        dropped = f" ({', '.join(q.partitions_dropped)})" if q.partitions_dropped else ""
        if q.rows_deleted is not None:
            rows = f", {q.rows_deleted} row(s)"
        else:
            rows = f", about {q.rows_estimate} row(s)" if q.rows_estimate is not None else ""
        return (
            f"{would} logged requests and feedback before {q.cutoff:%Y-%m-%d %H:%M} UTC ({q.backend}): "
            f"{len(q.partitions_dropped)} partition(s){dropped}{rows}"
        )
    if name == "reports" and result.reports is not None:
        r = result.reports
        return (
            f"{would} {len(r.deleted)} report(s) ({_mb(r.bytes_deleted)}) of runs before "
            f"{r.cutoff:%Y-%m-%d %H:%M} UTC; "
            f"{r.runs_unlinked} run(s) now read 'expired'; {r.reports_kept} kept"
        )
    if name == "model_versions" and result.model_versions is not None:
        v = result.model_versions
        kept = ", ".join(f"{n} ({'+'.join(why)})" for n, why in v.kept.items()) or "none"
        deleted = ", ".join(v.deleted) or "none"
        return f"{would} version(s) {deleted} ({_mb(v.artifacts_bytes)} of artifacts); kept {kept}"
    if name == "spill" and result.spill is not None:
        s = result.spill
        share = "no cap" if s.ratio is None else f"{s.ratio:.1%} of {_mb(s.limit_bytes)}"
        warning = f" NEARLY FULL (> {s.warn_ratio:.0%})" if s.nearly_full else ""
        return f"{s.files} file(s), {_mb(s.bytes)} in {s.directory}: {share}{warning}; {SPILL_NOTE}"
    return "-"


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def prune_from_settings(settings: Settings, *, dry_run: bool = False, now: datetime | None = None) -> PruneResult:
    """``tagwatch prune``: the settings' request log and registry (the request log migrated first with
    ``auto_migrate``, except in a dry run, which changes nothing)."""
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.registry import Registry

    if settings.auto_migrate and not dry_run:
        upgrade_database(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        return run_prune(settings, engine=engine, registry=Registry.from_settings(settings), now=now, dry_run=dry_run)
    finally:
        engine.dispose()

"""Request-log retention: monthly partitions created ahead and dropped whole on PostgreSQL, batched deletes on SQLite.

PostgreSQL (migration 0005): ``prediction_requests`` and ``feedback`` are partitioned by month of the request's
``created_at``. ``ensure_partitions`` creates the months to come (and moves any row a DEFAULT partition caught
into its month); ``prune_requests`` drops whole months entirely older than the cutoff, feedback first. Both call
SECURITY DEFINER functions of the migration, so they work as the monitor role, which owns nothing. Each month is
dropped in a transaction of its own under a ``lock_timeout``: a DROP needs an ACCESS EXCLUSIVE lock on the parent
table for a few milliseconds, and waiting long for it behind a long read would queue the service's inserts behind
it; on a timeout the month is tried again, then left for the next run.

SQLite: rows (feedback, then requests) older than the cutoff are deleted in batches of ``batch_rows``, one short
transaction each, so the service's writer is never locked out for long.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tagwatch.db.schema import UTCDateTime

log = logging.getLogger(__name__)
T = TypeVar("T")

PARENTS = ("prediction_requests", "feedback")
# prediction_requests_p2026_01, feedback_default, ...: the partitions, not tables of the schema of their own.
PARTITION_NAME = re.compile(r"^(prediction_requests|feedback)_(p\d{4}_\d{2}|default)$")
SQLITE_BATCH_ROWS = 5_000
LOCK_TIMEOUT_SECONDS = 0.5
ATTEMPTS = 5


def is_partition(name: str) -> bool:
    """Whether ``name`` is one of the request log's partitions (left out of schema comparisons and grants)."""
    return PARTITION_NAME.match(name) is not None


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: the partitions left out of schema comparisons (autogenerate)."""
    return not (type_ == "table" and name is not None and is_partition(name))


@dataclass(frozen=True, slots=True)
class DroppedPartition:
    """A partition dropped (or, in a dry run, to drop): its name, table, month and estimated rows."""

    name: str
    table: str
    month_start: datetime
    rows_estimate: int


@dataclass(frozen=True, slots=True)
class RequestPrune:
    """What a retention run of the request log did (or, with ``dry_run``, would do)."""

    backend: str  # "postgresql" | "sqlite"
    cutoff: datetime
    dry_run: bool
    # PostgreSQL: the partitions dropped, feedback's before its month's requests (dry run: those that would be).
    partitions_dropped: tuple[str, ...]
    # SQLite: rows deleted (dry run: that would be), feedback and requests together. PostgreSQL: None (counting a
    # month's rows would scan it; see rows_estimate).
    rows_deleted: int | None
    seconds: float
    # PostgreSQL: the planner's estimate of the rows in the partitions dropped (pg_class.reltuples).
    rows_estimate: int | None = None
    dropped: tuple[DroppedPartition, ...] = ()
    # SQLite: the rows deleted per table.
    rows_by_table: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "partitions_dropped": list(self.partitions_dropped),
            "rows_deleted": self.rows_deleted,
            "rows_estimate": self.rows_estimate,
            "rows_by_table": dict(self.rows_by_table),
            "months": sorted({d.month_start.strftime("%Y-%m") for d in self.dropped}),
            "seconds": round(self.seconds, 4),
        }


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} is naive: give a timezone-aware (UTC) datetime")
    return value.astimezone(UTC)


def _is_lock_timeout(exc: OperationalError) -> bool:
    import psycopg

    return isinstance(exc.orig, psycopg.errors.LockNotAvailable)


def _with_lock_timeout(conn: Connection, seconds: float) -> None:
    # SET LOCAL: for this transaction only (a pooled connection goes back with the server's default).
    conn.execute(text(f"SET LOCAL lock_timeout = '{max(1, round(seconds * 1000))}ms'"))


def _retrying(what: str, attempts: int, step: Callable[[], T]) -> T:
    """``step()`` again after a lock timeout (a short pause, then a retry), up to ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except OperationalError as exc:
            if not _is_lock_timeout(exc) or attempt == attempts:
                raise
            log.info("%s: lock not granted in time (attempt %d of %d); retrying", what, attempt, attempts)
            time.sleep(min(2.0, 0.2 * 2**attempt))
    raise AssertionError("unreachable")


def ensure_partitions(
    engine: Engine,
    *,
    now: datetime,
    ahead: int,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    attempts: int = ATTEMPTS,
) -> list[str]:
    """PostgreSQL: create the partitions of this month (of ``now``, UTC) and the ``ahead`` months after it that are
    missing, for both tables, and move rows a DEFAULT partition caught into their months. Returns the partitions
    created (none on SQLite, none when all exist)."""
    now = _require_aware("now", now)
    if not 0 <= ahead <= 119:
        raise ValueError(f"ahead must be between 0 and 119 months, got {ahead}")
    if engine.dialect.name != "postgresql":
        return []

    def step() -> list[str]:
        with engine.begin() as conn:
            _with_lock_timeout(conn, lock_timeout)
            rows = conn.execute(
                text("SELECT * FROM tagwatch_ensure_partitions(:now, :months)").bindparams(
                    bindparam("now", type_=UTCDateTime())
                ),
                {"now": now, "months": ahead + 1},
            )
            return [str(name) for (name,) in rows]

    created = _retrying("creating request-log partitions", attempts, step)
    if created:
        log.info("request log: created partitions %s", ", ".join(created))
    return created


def prune_requests(
    engine: Engine,
    *,
    older_than: datetime,
    dry_run: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    attempts: int = ATTEMPTS,
    batch_rows: int = SQLITE_BATCH_ROWS,
) -> RequestPrune:
    """Remove logged requests and their feedback older than ``older_than``.

    PostgreSQL: the months entirely older than the cutoff are dropped, a month at a time (its feedback partition,
    then its requests partition); a month with any row at or after the cutoff stays whole. SQLite: the rows older
    than the cutoff are deleted, ``batch_rows`` per transaction, feedback first. ``dry_run``: nothing changes; the
    result says what would go.
    """
    cutoff = _require_aware("older_than", older_than)
    start = time.perf_counter()
    if engine.dialect.name == "postgresql":
        dropped = _prune_postgresql(engine, cutoff, dry_run=dry_run, lock_timeout=lock_timeout, attempts=attempts)
        return RequestPrune(
            backend="postgresql",
            cutoff=cutoff,
            dry_run=dry_run,
            partitions_dropped=tuple(d.name for d in dropped),
            rows_deleted=None,
            rows_estimate=sum(d.rows_estimate for d in dropped),
            dropped=tuple(dropped),
            seconds=time.perf_counter() - start,
        )
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    by_table = _prune_sqlite(engine, cutoff, dry_run=dry_run, batch_rows=batch_rows)
    return RequestPrune(
        backend=engine.dialect.name,
        cutoff=cutoff,
        dry_run=dry_run,
        partitions_dropped=(),
        rows_deleted=sum(n for _, n in by_table),
        rows_by_table=tuple(by_table),
        seconds=time.perf_counter() - start,
    )


def _drop_call(conn: Connection, cutoff: datetime, *, dry_run: bool) -> list[DroppedPartition]:
    rows = conn.execute(
        text("SELECT * FROM tagwatch_drop_partitions_before(:cutoff, :dry_run)").bindparams(
            bindparam("cutoff", type_=UTCDateTime())
        ),
        {"cutoff": cutoff, "dry_run": dry_run},
    )
    return [
        DroppedPartition(name=str(name), table=str(table), month_start=month.astimezone(UTC), rows_estimate=int(n))
        for name, table, month, n in rows
    ]


def _prune_postgresql(
    engine: Engine, cutoff: datetime, *, dry_run: bool, lock_timeout: float, attempts: int
) -> list[DroppedPartition]:
    with engine.begin() as conn:
        planned = _drop_call(conn, cutoff, dry_run=True)
    if dry_run:
        return planned
    dropped: list[DroppedPartition] = []
    # One month per call and per transaction; never more calls than months planned (a month appearing meanwhile
    # waits for the next run).
    for _ in range(len({p.month_start for p in planned})):

        def step() -> list[DroppedPartition]:
            with engine.begin() as conn:
                _with_lock_timeout(conn, lock_timeout)
                return _drop_call(conn, cutoff, dry_run=False)

        month = _retrying("dropping a request-log month", attempts, step)
        if not month:
            break
        log.info(
            "request log: dropped %s (month %s, ~%d rows)",
            ", ".join(d.name for d in month),
            month[0].month_start.strftime("%Y-%m"),
            sum(d.rows_estimate for d in month),
        )
        dropped.extend(month)
    return dropped


_SQLITE_TABLES = (("feedback", "request_created_at"), ("prediction_requests", "created_at"))


def _prune_sqlite(engine: Engine, cutoff: datetime, *, dry_run: bool, batch_rows: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for table, column in _SQLITE_TABLES:  # constants: safe to format into the statements
        if dry_run:
            count = text(f"SELECT count(*) FROM {table} WHERE {column} < :cutoff").bindparams(
                bindparam("cutoff", type_=UTCDateTime())
            )
            with engine.connect() as conn:
                out.append((table, int(conn.execute(count, {"cutoff": cutoff}).scalar_one())))
            continue
        delete = text(
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} < :cutoff LIMIT :n)"
        ).bindparams(bindparam("cutoff", type_=UTCDateTime()))
        total = 0
        while True:
            with engine.begin() as conn:  # one short write transaction per batch
                deleted = conn.execute(delete, {"cutoff": cutoff, "n": batch_rows}).rowcount
            total += deleted
            if deleted < batch_rows:
                break
        out.append((table, total))
    return out

"""Where the writer's rows are: held in memory (rows and estimated bytes), waiting to be written (request ids), in
spill files (rows to replay), or lost; with the counters (``WriterStats``) and gauges that show it.

One lock guards it all, shared by the request threads, the writer thread and its watchdog.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from service.metrics import ServiceMetrics
from service.requestlog.rows import PredictionRow, Row
from service.requestlog.spill import SpillFile, SpillWriter

log = logging.getLogger(__name__)

LossReason = Literal["spill_full", "spill_error"]


@dataclass(eq=False)
class Item:
    """A row the writer holds in memory, and where else it is stored."""

    row: Row
    source: SpillFile | None = None  # the spill file the row is still stored in; None: only in memory
    held_since: float = 0.0
    next_check: float = 0.0
    orphan: bool = False
    size: int = 0  # estimated bytes counted in the writer's memory total while the item is held
    spilled: bool = False  # a copy was appended to the spill file while a write hung (see the watchdog)

    @property
    def durable(self) -> bool:
        """Whether the row is also on disk (a spill file), not only in memory."""
        return self.source is not None or self.spilled


@dataclass
class WriterStats:
    """Counters since the writer was created (a snapshot; see ``RequestLogWriter.stats``)."""

    method: Literal["copy", "insert"] = "insert"
    predictions_written: int = 0  # new rows stored
    feedback_written: int = 0  # feedback records inserted (a record already stored, by id, is skipped)
    copy_rows: int = 0  # prediction rows stored with COPY
    insert_rows: int = 0  # prediction rows stored with INSERT (SQLite, or the fallback after a duplicate)
    copy_fallbacks: int = 0  # COPY batches that hit a stored id: re-written with ON CONFLICT DO NOTHING
    duplicates_skipped: int = 0  # prediction rows already in the database (a replayed or retried row)
    feedback_duplicates_skipped: int = 0  # feedback records already in the database (the same id, replayed)
    batches_written: int = 0
    write_failures: int = 0
    rows_spilled: int = 0
    rows_replayed: int = 0  # rows read back from spill files and resolved
    spill_files_replayed: int = 0
    feedback_held: int = 0  # feedback rows waiting for their request right now
    feedback_deferred: int = 0  # feedback rows that had to wait for their request at least once
    orphans_dropped: int = 0  # feedback whose request never appeared (after orphan_timeout)
    rows_rejected: int = 0  # rows the database refused as invalid: kept in a rejected-*.jsonl file
    rows_lost: int = 0  # rows that could be neither written nor spilled (spill dir full or failing), all causes
    rows_dropped_spill_full: int = 0  # of which: the spill dir had reached its byte cap
    stalls: int = 0  # writes that hung longer than stall_timeout (rows spilled meanwhile)


class Ledger:
    """The writer's accounts (see the module docstring). ``lock`` also guards the writer's own health, closed and
    flush-waiter state, so that a submitted row is either queued before a health change or spilled after it."""

    def __init__(self, spill: SpillWriter, stats: WriterStats, metrics: ServiceMetrics | None) -> None:
        self.lock = threading.Lock()
        self.spill = spill
        self.stats = stats
        self.metrics = metrics
        self.pending: Counter[str] = Counter()  # request ids submitted (or in spill files), not written yet
        self.memory_bytes = 0
        self.spill_rows = 0  # rows in spill files still to replay
        self._losses: Counter[str] = Counter()  # rows lost since the last error log, by reason
        self._loss_logged: dict[str, float] = {}

    # --- requests waiting to be written ------------------------------------------------------------------------
    def is_pending(self, request_id: str) -> bool:
        with self.lock:
            return self.pending.get(request_id, 0) > 0

    def unpend_locked(self, request_id: str) -> None:
        n = self.pending.get(request_id, 0)
        if n <= 1:
            self.pending.pop(request_id, None)
        else:
            self.pending[request_id] = n - 1

    # --- memory -------------------------------------------------------------------------------------------------
    def hold(self, item: Item) -> None:
        """``item`` (with its ``size`` set) is held in memory now."""
        with self.lock:
            self.memory_bytes += item.size

    def release(self, items: Iterable[Item]) -> None:
        """Items no longer held in memory: take them off the memory total."""
        freed = 0
        for it in items:
            freed += it.size
            it.size = 0
        if freed:
            with self.lock:
                self.memory_bytes -= freed

    # --- spill files --------------------------------------------------------------------------------------------
    def spill_items(self, items: Sequence[Item], *, sync: bool, close: bool = False) -> list[Item]:
        """Append memory rows to the spill file; rows beyond the spill cap are dropped (counted, logged). Never
        raises: returns the items the spill dir failed to take (still held; the caller keeps or loses them)."""
        if not items:
            return []
        try:
            dropped = set(self.spill.append([it.row for it in items], sync=sync, close=close))
        except Exception as exc:
            self.log_loss("spill_error", 0, exc)
            return list(items)
        full = [it for i, it in enumerate(items) if i in dropped]
        spilled = [it for i, it in enumerate(items) if i not in dropped]
        self.release(spilled)
        self.count_spilled(len(spilled))
        self.lose(full, "spill_full")
        return []

    def spill_copies(self, items: list[Item]) -> bool:
        """Append copies of rows that stay where they are (in the writer's batch); mark them durable."""
        try:
            dropped = set(self.spill.append([it.row for it in items], sync=True))
        except Exception as exc:
            self.log_loss("spill_error", 0, exc)
            return False
        copied = [it for i, it in enumerate(items) if i not in dropped]
        for it in copied:
            it.spilled = True
        self.count_spilled(len(copied))
        return True

    def count_spilled(self, rows: int) -> None:
        """``rows`` were appended to the spill file: stats, the replay backlog and their metrics."""
        if not rows:
            return
        with self.lock:
            self.stats.rows_spilled += rows
            self.spill_rows += rows
            pending = self.spill_rows
        if self.metrics is not None:
            self.metrics.log_rows_spilled.inc(rows)
            self.metrics.log_spill_pending.set(pending)

    def show_spill_pending(self) -> None:
        if self.metrics is not None:
            with self.lock:
                pending = self.spill_rows
            self.metrics.log_spill_pending.set(pending)

    # --- losses -------------------------------------------------------------------------------------------------
    def lose(self, items: Sequence[Item], reason: LossReason) -> None:
        """Rows that can be neither written nor spilled: counted, logged (at most every 10 s per reason)."""
        if not items:
            return
        self.release(items)
        with self.lock:
            self.stats.rows_lost += len(items)
            if reason == "spill_full":
                self.stats.rows_dropped_spill_full += len(items)
            for it in items:
                if isinstance(it.row, PredictionRow):
                    self.unpend_locked(it.row.id)
        if self.metrics is not None:
            self.metrics.log_rows_dropped.labels(reason=reason).inc(len(items))
        self.log_loss(reason, len(items))

    def log_loss(self, reason: LossReason, rows: int, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        with self.lock:
            self._losses[reason] += rows
            due = now - self._loss_logged.get(reason, -math.inf) >= 10.0
            if not due:
                return
            self._loss_logged[reason] = now
            lost, self._losses[reason] = self._losses[reason], 0
        if reason == "spill_full":
            log.error(
                "request log: the spill dir %s holds %d bytes, its cap is %d (TAGWATCH_SPILL_MAX_BYTES): %d rows "
                "were DROPPED (logged at most every 10s)",
                self.spill.directory,
                self.spill.disk_bytes,
                self.spill.max_bytes,
                lost,
            )
        elif exc is not None:
            log.error(
                "request log: cannot write to the spill dir %s (%s: %s); rows are kept in memory while it has "
                "room, else LOST (%d so far; logged at most every 10s)",
                self.spill.directory,
                type(exc).__name__,
                exc,
                lost,
            )
        else:
            log.error("request log: %d rows could be neither written nor spilled: they are LOST", lost)

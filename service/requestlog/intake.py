"""Where a submitted row goes: the bounded in-memory queue while the database takes writes, else the spill file.

Write-ahead: from a failed (or hung) batch write to the next successful one the writer is unhealthy, and new rows
are appended straight to the spill file, flushed to the kernel before ``submit`` returns. A row that does not fit
in memory (``queue_size`` rows, ``queue_bytes`` estimated bytes) is spilled too; once the writer is closed rows
are spilled and the file closed at once, for the next process to replay.
"""

from __future__ import annotations

import logging
import queue
import time

from service.requestlog.ledger import Item, Ledger
from service.requestlog.rows import PredictionRow, Row, row_bytes

log = logging.getLogger(__name__)


class Intake:
    """The queue between the request threads and the writer thread. ``healthy`` and ``closed`` are read and
    written under ``ledger.lock``, so that a row is either queued before a change or spilled after it."""

    def __init__(self, ledger: Ledger, *, queue_size: int, queue_bytes: int, batch_size: int) -> None:
        self._ledger = ledger
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._queue_bytes = queue_bytes
        self._batch_size = batch_size
        self.closed = False
        # False from a failed (or hung) write to the next successful one: rows then go to the spill file.
        self.healthy = True
        self._failing_since: float | None = None  # the first failed write of this outage (monotonic)

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def set_healthy(self, healthy: bool) -> None:
        with self._ledger.lock:
            self.healthy = healthy

    def write_succeeded(self) -> None:
        """A batch (or a probe) was written: back to the in-memory path."""
        if not self.healthy or self._failing_since is not None:
            down = time.monotonic() - (self._failing_since or time.monotonic())
            log.warning("request log: database writes work again after %.1fs", down)
        self.set_healthy(True)
        self._failing_since = None
        if self._ledger.metrics is not None:
            self._ledger.metrics.log_last_write.set(time.time())

    def write_failed(self, exc: BaseException, *, rows: int) -> None:
        """Writing a batch of ``rows`` rows (or a probe) failed: write-ahead until a write succeeds."""
        self.set_healthy(False)
        with self._ledger.lock:
            self._ledger.stats.write_failures += 1
        if self._ledger.metrics is not None:
            self._ledger.metrics.log_write_failures.inc()
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "request log: writing a batch of %d rows failed (%s: %s); spilling rows until a write succeeds, "
                "retrying with backoff",
                rows,
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc) else "",
            )
        else:
            log.debug("request log: write failed again: %s", exc)

    def close(self) -> None:
        with self._ledger.lock:
            self.closed = True

    def submit(self, row: Row) -> bool:
        """Queue (or spill) a row; never raises because of the database. True when the writer should wake up (a
        batch is full, or memory half full)."""
        item = Item(row)
        size = row_bytes(row)
        queued = False
        ledger = self._ledger
        with ledger.lock:
            if isinstance(row, PredictionRow):
                ledger.pending[row.id] += 1
            closed = self.closed
            write_ahead = not self.healthy
            if not closed and not write_ahead:
                queued = self._enqueue_locked(item, size)
        if closed:
            # No thread to replay it any more: close the file at once so that the next process can.
            ledger.lose(ledger.spill_items([item], sync=True, close=True), "spill_error")
            return False
        if not queued:
            # The database is away (write-ahead), or memory is full. The append is flushed to the kernel before
            # this returns; the watchdog fsyncs it within a flush interval.
            failed = ledger.spill_items([item], sync=False)
            if failed and write_ahead:
                with ledger.lock:  # the spill dir fails too: memory, while it has room, rather than nothing
                    queued = self._enqueue_locked(item, size)
                if queued:
                    failed = []
            ledger.lose(failed, "spill_error")
            if not queued:
                return False
        return self.busy()

    def busy(self) -> bool:
        """Whether a full batch waits, or the rows held in memory take half the bound or more."""
        return self._queue.qsize() >= self._batch_size or 2 * self._ledger.memory_bytes >= self._queue_bytes

    def _enqueue_locked(self, item: Item, size: int) -> bool:
        if self._ledger.memory_bytes + size > self._queue_bytes:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        item.size = size
        self._ledger.memory_bytes += size
        return True

    def take(self, limit: int | None = None) -> list[Item]:
        """Up to ``limit`` queued rows (all of them by default), oldest first."""
        out: list[Item] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def put_back(self, items: list[Item]) -> None:
        """Rows taken that the spill dir failed to take: back to memory (still counted there), else lost."""
        for it in items:
            try:
                self._queue.put_nowait(it)
            except queue.Full:
                self._ledger.lose([it], "spill_error")

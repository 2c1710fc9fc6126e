"""The request log writer: a bounded in-memory queue drained into the database by one background thread.

Request handlers call ``submit_prediction`` / ``submit_feedback``, which never block and never raise because of the
database. The thread builds batches (held feedback, queued rows, rows read back from spill files), writes them
(``service.requestlog.batch``), and switches to write-ahead (new rows straight to the spill file) from a failed or
hung write to the next successful one. Bounds and durability: see the package docstring.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine

from service.metrics import ServiceMetrics
from service.requestlog.batch import PermanentError, count_written, write_batch
from service.requestlog.held import HeldFeedback
from service.requestlog.intake import Intake
from service.requestlog.ledger import Item, Ledger, WriterStats
from service.requestlog.rejected import RejectedRows
from service.requestlog.replay import Replayer
from service.requestlog.rows import FeedbackRow, PredictionRow
from service.requestlog.spill import SpillWriter
from service.requestlog.watchdog import Watchdog
from tagwatch.db import ping
from tagwatch.db.requestlog import supports_copy

log = logging.getLogger(__name__)

StepResult = Literal["idle", "ok", "failed"]


class RequestLogWriter:
    """Writes prediction and feedback rows to the request log in the background, losing none it can keep.

    ``queue_size`` / ``queue_bytes``: most rows, and most estimated bytes (``row_bytes``), held in memory (the
    queue, the batch being written or retried, held feedback, rows read back from spill files); what does not
    fit goes to the spill file. ``flush_interval``: longest time a row waits in memory before its batch is
    written, and longest time a spilled row waits for its fsync. ``spill_dir``: where spill files go;
    ``spill_max_bytes``: their cap, beyond which rows are dropped. ``max_backoff``: cap of the retry delay while
    the database is down. ``stall_timeout``: a write taking longer counts as an outage (rows are spilled
    meanwhile). ``orphan_timeout``: how long feedback whose request is nowhere to be found is retried before it
    is dropped (with an error log).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int,
        queue_bytes: int,
        batch_size: int,
        flush_interval: float,
        spill_dir: Path,
        spill_max_bytes: int,
        metrics: ServiceMetrics | None = None,
        max_backoff: float = 5.0,
        stall_timeout: float = 5.0,
        orphan_timeout: float = 600.0,
        rescan_interval: float = 30.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or queue_bytes < 1:
            raise ValueError(
                f"queue_size, queue_bytes and batch_size must be >= 1, got {queue_size}, {queue_bytes}, {batch_size}"
            )
        if spill_max_bytes < 0:
            raise ValueError(f"spill_max_bytes must be >= 0, got {spill_max_bytes}")
        if not flush_interval > 0 or not max_backoff > 0 or not stall_timeout > 0:
            raise ValueError("flush_interval, max_backoff and stall_timeout must be > 0")
        self.engine = engine
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self.spill_dir = Path(spill_dir)
        self._use_copy = supports_copy(engine)
        self._spill = SpillWriter(self.spill_dir, max_bytes=spill_max_bytes)
        # Its lock also guards _flush_waiters.
        self._ledger = Ledger(self._spill, WriterStats(method="copy" if self._use_copy else "insert"), metrics)
        self._intake = Intake(self._ledger, queue_size=queue_size, queue_bytes=queue_bytes, batch_size=batch_size)
        self._rejected = RejectedRows(self.spill_dir)
        self._flush_waiters: list[threading.Event] = []

        self._wake = threading.Event()  # data, flush or stop: ends the idle wait
        self._control = threading.Event()  # flush or stop only: ends a backoff wait
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog = Watchdog(
            self._spill, self._intake, interval=flush_interval, stall_timeout=stall_timeout, on_stall=self._on_stall
        )

        # Owned by the writer thread.
        self._batch: list[Item] = []
        self._held = HeldFeedback(self._ledger, orphan_timeout=orphan_timeout, batch_size=batch_size)
        self._replay = Replayer(self._ledger, self._rejected, queue_bytes=queue_bytes, rescan_interval=rescan_interval)

        if metrics is not None:
            metrics.log_queue_capacity.set(queue_size)
            metrics.log_queue_depth.set_function(self._intake.qsize)
            metrics.log_queue_capacity_bytes.set(queue_bytes)
            metrics.log_queue_bytes.set_function(lambda: self._ledger.memory_bytes)
            metrics.log_spill_pending.set(0)
            metrics.log_spill_capacity_bytes.set(spill_max_bytes)
            metrics.log_spill_bytes.set_function(lambda: self._spill.disk_bytes)

    # --------------------------------------------------------------------------------------------- public API

    @property
    def healthy(self) -> bool:
        """False from a failed (or hung) batch write to the next successful one (True before the first write).
        While False, new rows go straight to the spill file."""
        return self._intake.healthy

    @property
    def stats(self) -> WriterStats:
        with self._ledger.lock:
            return dataclasses.replace(self._ledger.stats, feedback_held=len(self._held))

    @property
    def spill_pending(self) -> int:
        """Rows in spill files that this writer still has to replay."""
        with self._ledger.lock:
            return self._ledger.spill_rows

    @property
    def memory_bytes(self) -> int:
        """Estimated bytes of the rows held in memory (bounded by ``queue_bytes`` plus one row)."""
        return self._ledger.memory_bytes

    @property
    def spill_bytes(self) -> int:
        """Bytes of spill files in the spill directory (bounded by ``spill_max_bytes``)."""
        return self._spill.disk_bytes

    def start(self) -> None:
        """Claim spill files left by earlier processes (replayed in the background), then start the thread."""
        if self._thread is not None:
            raise RuntimeError("the request log writer was already started")
        self._replay.start()
        self._watchdog.start()
        self._thread = threading.Thread(target=self._run, name="tagwatch-requestlog", daemon=True)
        self._thread.start()

    def submit_prediction(self, row: PredictionRow) -> None:
        """Queue a prediction row. Never blocks on the database; never raises because of it."""
        if not isinstance(row, PredictionRow):
            raise TypeError(f"expected a PredictionRow, got {type(row).__name__}")
        if self._intake.submit(row):
            self._wake.set()

    def submit_feedback(self, row: FeedbackRow) -> None:
        """Queue a feedback row. Never blocks on the database; never raises because of it."""
        if not isinstance(row, FeedbackRow):
            raise TypeError(f"expected a FeedbackRow, got {type(row).__name__}")
        if self._intake.submit(row):
            self._wake.set()

    def is_pending(self, request_id: str) -> bool:
        """Whether a prediction with this id was submitted here and is not in the database yet.

        Check this *before* ``tagwatch.db.request_exists``: a row leaves the pending set only after its
        commit, so in that order a request being written at that very moment is found by one check or the
        other.
        """
        return self._ledger.is_pending(request_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is durable: written to the database, including replayed spill
        files, or, when the database cannot be written right now, in a spill file. False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._memory_rows_left()
        done = threading.Event()
        with self._ledger.lock:
            self._flush_waiters.append(done)
        self._control.set()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.1):
            if not thread.is_alive():
                return done.is_set()
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def stop(self, timeout: float) -> None:
        """Write what can be written within ``timeout`` seconds, spill the rest; later submits are spilled."""
        self._intake.close()
        self._stop_requested.set()
        self._control.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            deadline = time.monotonic() + timeout
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
                hung = self._watchdog.write_started is not None and not self._intake.healthy
                if hung and not self._memory_rows_left():
                    break  # a write hangs and every row is on disk already: no reason to wait for it
            if thread.is_alive():
                log.error(
                    "request log writer did not finish within %.1fs (a database call hangs): spilling what is left "
                    "in memory",
                    time.monotonic() - deadline + timeout,
                )
        # Rows the thread did not take (never started, or stuck in a database call), or could not spill. Spilling
        # a row the thread then still writes is harmless: replays are idempotent.
        leftovers = self._intake.take()
        leftovers += [it for it in list(self._batch) if not it.durable] + self._held.in_memory_only()
        if leftovers:
            self._ledger.lose(self._ledger.spill_items(leftovers, sync=True), "spill_error")
        self._watchdog.stop(timeout)
        self._spill.close()
        self._ledger.show_spill_pending()

    # --------------------------------------------------------------------------------------------- the thread

    def _memory_rows_left(self) -> bool:
        return (
            not self._intake.empty() or any(not it.durable for it in self._batch) or self._held.waiting_in_memory_only()
        )

    def _run(self) -> None:
        backoff = 0.0
        result: StepResult = "idle"
        while True:
            if not self._stop_requested.is_set():
                if backoff > 0 and not self._flush_waiters:
                    self._control.wait(backoff)
                elif result == "idle" or not (self._flush_waiters or self._work_ready()):
                    # Nothing was written last time: wait for data, a flush, a stop or the interval.
                    idle = min(self._flush_interval, 0.05) if self._flush_waiters else self._flush_interval
                    self._wake.wait(idle)
            self._wake.clear()
            self._control.clear()
            stopping = self._stop_requested.is_set()
            with self._ledger.lock:
                waiters = list(self._flush_waiters)
            try:
                result = self._step(stopping)
            except Exception:  # a bug must not kill the thread: keep the rows, log, retry later
                log.exception("request log: unexpected error in the writer thread")
                self._intake.set_healthy(False)
                result = "failed"
            if result == "failed":
                backoff = min(self._max_backoff, max(2 * backoff, min(0.05, self._max_backoff)))
                # Write-ahead: while the database is away nothing stays only in memory; new rows are spilled by
                # the intake (the writer is unhealthy now), the retried batch is read back from the spill file.
                self._spill_memory_rows()
            else:
                backoff = 0.0
            if stopping and result != "ok":
                self._spill_memory_rows()  # e.g. feedback held for a request that waits in a spill file
                break
            if waiters and self._flush_satisfied():
                with self._ledger.lock:
                    self._flush_waiters = [w for w in self._flush_waiters if w not in waiters]
                for w in waiters:
                    w.set()
        self._finish_thread()

    def _on_stall(self, seconds: float) -> None:
        log.warning(
            "request log: a batch write has hung for %.1fs: spilling the rows in memory and new rows until a "
            "write succeeds",
            seconds,
        )
        self._intake.set_healthy(False)
        # Copies of the rows the writer thread holds (it is stuck in a database call): whichever way that call
        # ends, the row is stored once (idempotent replays). The queue is taken over.
        held = [it for it in list(self._batch) if not it.durable] + self._held.in_memory_only()
        if not held or self._ledger.spill_copies(held):
            self._intake.put_back(self._ledger.spill_items(self._intake.take(), sync=True))
        with self._ledger.lock:
            self._ledger.stats.stalls += 1

    def _flush_satisfied(self) -> bool:
        if not self._intake.empty():
            return False
        if self._intake.healthy:
            return not self._batch and not self._held.waiting() and not self._replay.work_left()
        return not any(not it.durable for it in self._batch) and not self._held.waiting_in_memory_only()

    def _finish_thread(self) -> None:
        self._replay.close()
        held = self._held.items
        self._ledger.release(it for it in self._batch + held if it.durable)
        self._batch = [it for it in self._batch if not it.durable]
        self._held.items = [it for it in held if not it.durable]
        self._spill.close()
        with self._ledger.lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        for w in waiters:
            w.set()

    def _spill_memory_rows(self) -> None:
        """Move every row held only in memory to the spill file. Rows the spill dir fails to take stay in the
        batch (retried with it); rows already on disk leave memory."""
        held = self._held.items
        items = [it for it in self._batch if not it.durable]
        items += self._intake.take()
        items += [it for it in held if not it.durable]
        on_disk = [it for it in self._batch if it.spilled] + [it for it in held if it.spilled]
        self._ledger.release(on_disk)
        self._batch = [it for it in self._batch if it.source is not None]
        self._held.items = [it for it in held if it.source is not None]
        failed = self._ledger.spill_items(items, sync=True)
        self._batch = failed + self._batch

    def _work_ready(self) -> bool:
        """Whether to skip the idle wait: a full batch waits, or spill files are being replayed."""
        if self._batch or self._intake.qsize() >= self._batch_size:
            return True
        if self._intake.busy() and not self._intake.empty():
            return True
        if self._held.due():
            return True
        return self._intake.healthy and self._replay.work_left()

    def _step(self, stopping: bool) -> StepResult:
        """Build (or retry) one batch and write it."""
        if not self._batch:
            batch, expired = self._held.release()
            self._replay.resolve(expired)
            batch += self._intake.take(self._batch_size - len(batch))
            if not stopping and len(batch) < self._batch_size:
                batch += self._replay.read(self._batch_size - len(batch), have=len(batch))
            self._batch = batch
        if not self._batch:
            if self._intake.healthy or stopping:
                return "idle"
            return self._probe()  # nothing to retry with (e.g. all spilled rows dropped): ask the database
        with self._watchdog.writing():
            try:
                try:
                    self._write(self._batch)
                except PermanentError:
                    self._write_one_by_one(self._batch)
            except Exception as exc:
                self._intake.write_failed(exc, rows=len(self._batch))
                return "failed"
        self._batch = []
        self._intake.write_succeeded()
        return "ok"

    def _write(self, batch: list[Item]) -> None:
        written = write_batch(self.engine, batch, is_pending=self.is_pending, use_copy=self._use_copy)
        count_written(self._ledger, written)
        self._held.hold(written.waiting, written.orphans)
        self._replay.resolve(written.resolved)

    def _probe(self) -> Literal["ok", "failed"]:
        with self._watchdog.writing():
            try:
                ping(self.engine)
            except Exception as exc:
                self._intake.write_failed(exc, rows=len(self._batch))
                return "failed"
        self._intake.write_succeeded()
        return "ok"

    def _write_one_by_one(self, batch: list[Item]) -> None:
        """A batch the database refused as data: write rows one by one, keep refused ones aside."""
        for i, item in enumerate(batch):
            try:
                self._write([item])
            except PermanentError as exc:
                self._reject(item, exc.__cause__ or exc)
            except Exception:
                self._batch = batch[i:]
                raise

    def _reject(self, item: Item, exc: BaseException) -> None:
        self._rejected.add_row(item.row, exc)
        with self._ledger.lock:
            self._ledger.stats.rows_rejected += 1
            if isinstance(item.row, PredictionRow):
                self._ledger.unpend_locked(item.row.id)
        self._replay.resolve([item])

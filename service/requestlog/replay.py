"""Replaying spill files: their rows are read back into the writer's batches once the database takes writes again.

The files replayed are this process's (sealed when its writes succeed again) and those no live process owns (left
by a process that stopped or crashed: claimed at start and on a rescan every ``rescan_interval``). A file stays
locked while it is replayed and is deleted once every row read from it was written, rejected or dropped; a line
that cannot be read goes to the rejected rows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from service.requestlog.ledger import Item, Ledger
from service.requestlog.rejected import RejectedRows
from service.requestlog.rows import decode_row, prediction_id, row_bytes
from service.requestlog.spill import SPILL_PREFIX, SpillFile, claim, fsync_dir

log = logging.getLogger(__name__)


class Replayer:
    """The spill files the writer thread replays (owned by that thread; their rows counted in ``ledger``).

    ``queue_bytes`` bounds the memory the rows read back may take (with the rest of the writer's rows).
    """

    def __init__(self, ledger: Ledger, rejected: RejectedRows, *, queue_bytes: int, rescan_interval: float) -> None:
        self.files: list[SpillFile] = []
        self._ledger = ledger
        self._spill = ledger.spill
        self._rejected = rejected
        self._queue_bytes = queue_bytes
        self._rescan_interval = rescan_interval
        self._next_rescan = 0.0

    def start(self) -> None:
        """Claim the files left by earlier processes; look for more every ``rescan_interval`` from now."""
        self.claim_leftovers()
        self._next_rescan = time.monotonic() + self._rescan_interval

    def work_left(self) -> bool:
        """Whether rows wait in spill files: unread ones being replayed, or this process's active file."""
        return any(not rp.eof for rp in self.files) or self._spill.rows > 0

    def claim_leftovers(self) -> None:
        """Lock spill files no live process owns, and register their requests as pending."""
        self._spill.recount()  # another process may have added or removed files since
        directory = self._spill.directory
        if not directory.is_dir():
            return
        mine = {rp.path for rp in self.files}
        if self._spill.path is not None:
            mine.add(self._spill.path)
        for path in sorted(directory.glob(f"{SPILL_PREFIX}*.jsonl")):
            if path in mine:
                continue
            try:
                claimed = claim(path)
            except OSError as exc:
                log.warning("request log: cannot open spill file %s: %s", path, exc)
                continue
            if claimed is None:
                continue
            rp, ids = claimed
            with self._ledger.lock:
                for request_id in ids:
                    self._ledger.pending[request_id] += 1
                self._ledger.spill_rows += rp.rows
            self._ledger.show_spill_pending()
            log.warning("request log: replaying %d rows left in %s", rp.rows, path)
            self.files.append(rp)

    def read(self, limit: int, *, have: int) -> list[Item]:
        """Up to ``limit`` rows from spill files, oldest file first, while the memory bound has room (one row at
        least when the batch has ``have`` == 0 rows otherwise, so that a row bigger than the bound moves on)."""
        if not any(not rp.eof for rp in self.files):
            sealed = self._spill.seal()
            if sealed is not None:
                path, fh, rows = sealed
                self.files.append(SpillFile(path=path, lock=fh, rows=rows))
            elif time.monotonic() >= self._next_rescan:
                self._next_rescan = time.monotonic() + self._rescan_interval
                self.claim_leftovers()
        out: list[Item] = []
        for rp in list(self.files):
            if len(out) >= limit:
                break
            if rp.eof:
                continue
            if rp.reader is None:
                try:
                    rp.reader = open(rp.path, "rb")  # noqa: SIM115 - closed at end of file
                except OSError as exc:  # removed or made unreadable behind our back: nothing left to replay
                    log.error("request log: cannot read spill file %s (%s); skipping it", rp.path, exc)
                    rp.lock.close()
                    self.files.remove(rp)
                    continue
            while len(out) < limit and (not (out or have) or self._ledger.memory_bytes < self._queue_bytes):
                line = rp.reader.readline()
                if not line:
                    rp.eof = True
                    rp.reader.close()
                    rp.reader = None
                    break
                if not line.strip():
                    continue
                try:
                    row = decode_row(json.loads(line))
                except Exception as exc:
                    self._reject_line(rp.path, line, exc)
                    continue
                rp.outstanding += 1
                item = Item(row, source=rp, size=row_bytes(row))
                self._ledger.hold(item)
                out.append(item)
            self._finish_if_done(rp)
            if out and self._ledger.memory_bytes >= self._queue_bytes:
                break
        return out

    def resolve(self, items: Iterable[Item]) -> None:
        """Rows that are done (written, rejected or dropped): delete their spill files once those are done."""
        items = list(items)
        self._ledger.release(items)
        from_files = 0
        touched: list[SpillFile] = []
        for it in items:
            if it.source is not None:
                it.source.outstanding -= 1
                from_files += 1
                touched.append(it.source)
        if from_files:
            with self._ledger.lock:
                self._ledger.spill_rows = max(0, self._ledger.spill_rows - from_files)
                self._ledger.stats.rows_replayed += from_files
            self._ledger.show_spill_pending()
            for rp in dict.fromkeys(touched):
                self._finish_if_done(rp)

    def close(self) -> None:
        """Stop replaying: release the files' locks (the next process replays what is left)."""
        for rp in self.files:
            if rp.reader is not None:
                rp.reader.close()
            rp.lock.close()  # releases the flock: the file is replayed by the next process
        self.files = []

    def _finish_if_done(self, rp: SpillFile) -> None:
        if not rp.done() or rp not in self.files:
            return
        size = os.fstat(rp.lock.fileno()).st_size
        rp.path.unlink(missing_ok=True)
        rp.lock.close()
        self.files.remove(rp)
        self._spill.forget(size)
        fsync_dir(rp.path.parent)
        with self._ledger.lock:
            self._ledger.stats.spill_files_replayed += 1
        log.info("request log: replayed and removed %s", rp.path.name)

    def _reject_line(self, path: Path, line: bytes, exc: BaseException) -> None:
        self._rejected.add_line(path, line, exc)
        request_id = prediction_id(line)
        with self._ledger.lock:
            self._ledger.stats.rows_rejected += 1
            self._ledger.spill_rows = max(0, self._ledger.spill_rows - 1)
            if request_id is not None:  # registered as pending when the file was claimed
                self._ledger.unpend_locked(request_id)

"""Held feedback: feedback rows that wait for their request (a foreign key) before they can be written.

A row waits while its request is still on its way here (queued, in a failed batch, in a spill file: *pending*); a
row whose request is nowhere to be found (an *orphan*) is re-checked every second and dropped, with an error log,
after ``orphan_timeout``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from service.requestlog.ledger import Item, Ledger
from service.requestlog.rows import FeedbackRow, encode_row

log = logging.getLogger(__name__)


class HeldFeedback:
    """The feedback rows held back by the writer thread (owned by that thread; counted in ``ledger``)."""

    def __init__(self, ledger: Ledger, *, orphan_timeout: float, batch_size: int) -> None:
        self.items: list[Item] = []
        self._ledger = ledger
        self._orphan_timeout = orphan_timeout
        self._batch_size = batch_size

    def __len__(self) -> int:
        return len(self.items)

    def _request_pending(self, item: Item) -> bool:
        row = item.row
        return isinstance(row, FeedbackRow) and self._ledger.is_pending(row.request_id)

    def hold(self, waiting: Sequence[Item], orphans: Sequence[Item]) -> None:
        """Feedback a batch could not write: ``waiting`` for a pending request, ``orphans`` for an unknown one."""
        now = time.monotonic()
        with self._ledger.lock:
            self._ledger.stats.feedback_deferred += sum(1 for it in [*waiting, *orphans] if not it.held_since)
        for it in waiting:
            it.orphan = False
            it.held_since = it.held_since or now
        for it in orphans:
            it.orphan = True
            it.held_since = it.held_since or now
            it.next_check = now + min(1.0, self._orphan_timeout)
        if orphans:
            log.warning(
                "request log: %d feedback rows refer to requests not in the database yet; holding them",
                len(orphans),
            )
        self.items.extend([*waiting, *orphans])

    def release(self) -> tuple[list[Item], list[Item]]:
        """Held feedback that may be written now (its request was written, or an orphan is due a re-check; at most a
        batch, oldest first), and orphans that waited past ``orphan_timeout`` (dropped: the caller resolves them)."""
        if not self.items:
            return [], []
        now = time.monotonic()
        out: list[Item] = []
        keep: list[Item] = []
        expired: list[Item] = []
        for it in self.items:
            if self._request_pending(it):
                keep.append(it)
            elif it.orphan and now - it.held_since > self._orphan_timeout:
                row = it.row
                assert isinstance(row, FeedbackRow)
                log.error(
                    "request log: dropping feedback for request %s: no such request appeared in %.0fs: %s",
                    row.request_id,
                    self._orphan_timeout,
                    json.dumps(encode_row(row)),
                )
                with self._ledger.lock:
                    self._ledger.stats.orphans_dropped += 1
                expired.append(it)
            elif not it.orphan or it.next_check <= now:
                out.append(it)
            else:
                keep.append(it)
        # Oldest first; what does not fit in one batch waits for the next.
        self.items = out[self._batch_size :] + keep
        return out[: self._batch_size], expired

    def due(self) -> bool:
        """Whether a held row may be tried now (its request is not pending, and it is no orphan waiting to be
        re-checked)."""
        now = time.monotonic()
        return any(not it.orphan or it.next_check <= now for it in self.items if not self._request_pending(it))

    def waiting(self) -> bool:
        """Whether a row waits for a request that is on its way (orphans aside)."""
        return any(not it.orphan for it in self.items)

    def in_memory_only(self) -> list[Item]:
        """Held rows stored nowhere else (orphans included)."""
        return [it for it in self.items if not it.durable]

    def waiting_in_memory_only(self) -> bool:
        """Whether a row waiting for a request on its way is stored nowhere else."""
        return any(not it.durable and not it.orphan for it in self.items)

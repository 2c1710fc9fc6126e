"""Writing one batch: predictions first, then the feedback whose requests exist, in one transaction.

Feedback whose request is still on its way (pending here) or not in the database (an orphan) is not written but
handed back, to be held (``service.requestlog.held``). The statements are the core's (``tagwatch.db.requestlog``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from service.requestlog.ledger import Item, Ledger
from service.requestlog.rows import FeedbackRow, PredictionRow
from tagwatch.db.requestlog import (
    FEEDBACK,
    PREDICTIONS,
    insert_feedback,
    insert_predictions,
    is_data_error,
    request_times,
)

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The database refused the data itself: retrying the same rows will never succeed."""


@dataclass
class WrittenBatch:
    """A committed batch: which rows were stored (or found stored already), which feedback must wait."""

    predictions: list[tuple[Item, PredictionRow]]
    feedback: list[Item]  # written (or already stored, by id)
    waiting: list[Item]  # feedback whose request is queued behind, in a failed batch or in a spill file
    orphans: list[Item]  # feedback whose request is not in the database (yet)
    inserted: int  # new prediction rows
    feedback_inserted: int  # new feedback records
    copied: bool  # predictions went in with COPY
    fallback: bool  # COPY hit a stored id and INSERT did it

    @property
    def resolved(self) -> list[Item]:
        """The rows done with: stored, or found stored already."""
        return [it for it, _ in self.predictions] + self.feedback


def write_batch(
    engine: Engine, batch: Sequence[Item], *, is_pending: Callable[[str], bool], use_copy: bool
) -> WrittenBatch:
    """One transaction: predictions first, then the feedback whose requests exist. Raises ``PermanentError`` when
    the database refused the data, anything else on other failures (nothing is then stored)."""
    preds: list[tuple[Item, PredictionRow]] = []
    feedback: list[tuple[Item, FeedbackRow]] = []
    for it in batch:
        if isinstance(it.row, PredictionRow):
            preds.append((it, it.row))
        else:
            feedback.append((it, it.row))
    batch_ids = {row.id for _, row in preds}
    waiting: list[Item] = []
    candidates: list[tuple[Item, FeedbackRow]] = []
    for it, fb in feedback:
        if fb.request_id not in batch_ids and is_pending(fb.request_id):
            waiting.append(it)  # its request is queued behind, in a failed batch or in a spill file
        else:
            candidates.append((it, fb))
    ready: list[tuple[Item, FeedbackRow]] = []
    orphans: list[Item] = []
    feedback_inserted = 0
    try:
        with engine.begin() as conn:
            inserted, copied, fallback = insert_predictions(conn, [row for _, row in preds], use_copy=use_copy)
            if candidates:
                # A request of this batch, or a stored one: feedback is stored with its request's created_at (the
                # partition key it shares with its request).
                times = {row.id: row.created_at for _, row in preds}
                times |= request_times(conn, {fb.request_id for _, fb in candidates} - times.keys())
                ready = [(it, fb) for it, fb in candidates if fb.request_id in times]
                orphans = [it for it, fb in candidates if fb.request_id not in times]
                feedback_inserted = insert_feedback(conn, [fb for _, fb in ready], times)
    except Exception as exc:
        if is_data_error(exc):
            raise PermanentError(str(exc)) from exc
        raise
    return WrittenBatch(
        predictions=preds,
        feedback=[it for it, _ in ready],
        waiting=waiting,
        orphans=orphans,
        inserted=inserted,
        feedback_inserted=feedback_inserted,
        copied=copied,
        fallback=fallback,
    )


def count_written(ledger: Ledger, written: WrittenBatch) -> None:
    """A committed batch in the accounts: its requests are no longer pending; stats, metrics, a log of duplicates."""
    preds, inserted, feedback_inserted = written.predictions, written.inserted, written.feedback_inserted
    with ledger.lock:
        for _, row in preds:
            ledger.unpend_locked(row.id)
        st = ledger.stats
        st.batches_written += 1
        st.predictions_written += inserted
        st.feedback_written += feedback_inserted
        st.duplicates_skipped += len(preds) - inserted
        st.feedback_duplicates_skipped += len(written.feedback) - feedback_inserted
        if written.copied:
            st.copy_rows += inserted
        else:
            st.insert_rows += inserted
        st.copy_fallbacks += int(written.fallback)
    if len(preds) > inserted:
        log.info(
            "request log: %d prediction rows were already stored (a retried or replayed batch)",
            len(preds) - inserted,
        )
    if ledger.metrics is not None:
        if inserted:
            ledger.metrics.log_rows_written.labels(table=PREDICTIONS).inc(inserted)
        if feedback_inserted:
            ledger.metrics.log_rows_written.labels(table=FEEDBACK).inc(feedback_inserted)

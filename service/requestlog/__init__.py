"""The request log: what the API answered and the feedback it received, written to the database by a background
writer that never blocks a request and loses no row it can keep.

Request handlers call ``submit_prediction`` / ``submit_feedback``, which never block and never raise because
of the database. The thread writes batches (PostgreSQL: COPY for predictions, several times faster than
executemany; feedback: INSERT). Spill files are replayed, then deleted, once writes succeed again, including files
a previous process left behind. The writer only ever inserts (the API's database role needs INSERT and SELECT, no
UPDATE or DELETE), and every row has an id of its own: predictions and feedback records are written with
``ON CONFLICT (id) DO NOTHING``, so a row replayed twice, e.g. after a crash between a commit and the deletion of
its spill file, is stored once. Feedback is append-only: a later submission for a request is a new record, and
readers take the latest (``tagwatch.db.fetch_requests``).

Bounds and durability:
- Memory: the rows held (queue, the batch being written or retried, held feedback) are bounded in rows
  (``queue_size``) and in estimated bytes (``queue_bytes``); a row that does not fit goes to the spill file.
- Write-ahead while the database is away: once a batch write fails, or a write has hung for ``stall_timeout``,
  the rows held in memory are spilled at once and new rows are appended straight to the spill file, flushed to
  the kernel before ``submit_*`` returns (they survive a kill of the process); the file is fsync'd at most
  ``flush_interval`` later (that covers the machine). The next successful write returns to the in-memory path.
  So a SIGKILL loses only rows submitted while the database looked healthy and not yet written: at most one
  flush interval of rows, plus those of the last batch in flight and, at the start of an outage, those submitted
  before a write failed (or ``stall_timeout`` went by).
- Disk: spill files in the spill directory (this process's and leftovers) are capped at ``spill_max_bytes``;
  rows beyond the cap are dropped, counted (``tagwatch_request_log_rows_dropped_total``) and logged.

Ordering: feedback references its request (foreign key). Within a batch predictions are written first;
feedback for a request that is still waiting here (queued, in a failed batch or in a spill file) is held back
until the request is written.

Modules: ``rows`` (row types, validated, and their spill-file encoding), ``intake`` (the bounded queue or the spill
file, per submitted row), ``writer`` (the thread that builds and writes batches), ``batch`` (one batch, one
transaction; the statements are ``tagwatch.db.requestlog``), ``held`` (feedback waiting for its request), ``spill``
(spill files), ``replay`` (reading them back), ``rejected`` (rows the database refused), ``ledger`` (where each row
is, the counters and gauges), ``watchdog`` (fsync and stalled writes).
"""

from service.requestlog.ledger import WriterStats
from service.requestlog.rows import (
    FeedbackRow,
    PredictionRow,
    Row,
    decode_row,
    encode_row,
    legacy_feedback_id,
    row_bytes,
)
from service.requestlog.writer import RequestLogWriter

__all__ = [
    "FeedbackRow",
    "PredictionRow",
    "RequestLogWriter",
    "Row",
    "WriterStats",
    "decode_row",
    "encode_row",
    "legacy_feedback_id",
    "row_bytes",
]

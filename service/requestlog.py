"""The request log writer: a bounded in-memory queue drained into the database by one background thread.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import numbers
import os
import queue
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from service.metrics import ServiceMetrics
from tagwatch.db import Base, Feedback, PredictionRequest, ping
from tagwatch.text import BODY_FORMATS

try:  # advisory file locks keep two processes from replaying the same spill file; POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PREDICTIONS = PredictionRequest.__tablename__
FEEDBACK = Feedback.__tablename__
SPILL_PREFIX = "spill-"
REJECTED_PREFIX = "rejected-"

_COPY_SQL = (
    f"COPY {PREDICTIONS} "
    "(id, created_at, title, body, body_format, predicted, model_version, latency_seconds) FROM STDIN"
)
_MAX_ID_CHARS = 64
_ID_QUERY_CHUNK = 500


# ------------------------------------------------------------------------------------------------------- rows


def _check_text(name: str, value: object, *, allow_empty: bool = True, max_chars: int | None = None) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{name} has {len(value)} characters, at most {max_chars} allowed")
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: refuse here, with a clear
    # message, instead of failing a whole batch in the writer thread.
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text: {exc.reason}") from None
    return value


def _check_time(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} is naive: give a timezone-aware (UTC) datetime")
    return value


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One answered prediction to log. Validated on construction: a bad row fails here, in the caller."""

    id: str
    created_at: datetime
    title: str
    body: str
    predicted: list[dict[str, Any]]  # [{"tag": str, "score": float}, ...]
    model_version: str | None
    latency_seconds: float
    body_format: str | None = None

    def __post_init__(self) -> None:
        _check_text("id", self.id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_time("created_at", self.created_at)
        _check_text("title", self.title)
        _check_text("body", self.body)
        if self.body_format is not None and self.body_format not in BODY_FORMATS:
            raise ValueError(f"body_format must be one of {BODY_FORMATS} or None, got {self.body_format!r}")
        if self.model_version is not None:
            _check_text("model_version", self.model_version, max_chars=_MAX_ID_CHARS)
        if isinstance(self.latency_seconds, bool) or not isinstance(self.latency_seconds, numbers.Real):
            raise TypeError(f"latency_seconds must be a number, got {type(self.latency_seconds).__name__}")
        if not math.isfinite(self.latency_seconds) or self.latency_seconds < 0:
            raise ValueError(f"latency_seconds must be finite and >= 0, got {self.latency_seconds}")
        if not isinstance(self.predicted, list | tuple):
            raise TypeError(
                f"predicted must be a list of {{'tag', 'score'}} dicts, got {type(self.predicted).__name__}"
            )
        clean: list[dict[str, Any]] = []
        for i, item in enumerate(self.predicted):
            if not isinstance(item, dict) or set(item) != {"tag", "score"}:
                raise ValueError(f"predicted[{i}] must be a dict with exactly the keys 'tag' and 'score': {item!r}")
            tag = _check_text(f"predicted[{i}].tag", item["tag"], allow_empty=False)
            score = item["score"]
            # numbers.Real: numpy scalars (float32 too) are fine, stored as plain floats.
            if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise ValueError(f"predicted[{i}].score must be a finite number, got {score!r}")
            clean.append({"tag": str(tag), "score": float(score)})
        # A copy: the caller may reuse its list; the row is what gets written.
        object.__setattr__(self, "predicted", clean)
        object.__setattr__(self, "latency_seconds", float(self.latency_seconds))


def _new_feedback_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback submission: the true tags of a logged request, and the name of the API key that sent them
    (None while feedback is open). Records are append-only: a later submission for the same request is another
    record (its own ``id``, uuid4 hex by default), and readers take the latest."""

    request_id: str
    tags: Sequence[str]
    received_at: datetime
    key_name: str | None = None
    id: str = dataclasses.field(default_factory=_new_feedback_id)

    def __post_init__(self) -> None:
        _check_text("id", self.id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_text("request_id", self.request_id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_time("received_at", self.received_at)
        if self.key_name is not None:
            _check_text("key_name", self.key_name, allow_empty=False, max_chars=_MAX_ID_CHARS)
        if isinstance(self.tags, str) or not isinstance(self.tags, Sequence):
            raise TypeError(f"tags must be a list of str, got {type(self.tags).__name__}")
        for i, tag in enumerate(self.tags):
            _check_text(f"tags[{i}]", tag, allow_empty=False)
        object.__setattr__(self, "tags", tuple(self.tags))


# Spill files written before feedback records had ids: such a line gets an id derived from its content, the same
# every time it is read, so a file replayed twice is still stored once.
_LEGACY_FEEDBACK_NAMESPACE = uuid.UUID("5d0c5f0e-7a7b-4d34-9f5e-3c1f0b6f2a91")


def legacy_feedback_id(request_id: str, tags: Sequence[str], received_at: datetime) -> str:
    """The id of a feedback line spilled without one: uuid5 of its request, instant (UTC) and tags, as hex."""
    when = received_at.astimezone(UTC).isoformat() if received_at.utcoffset() is not None else received_at.isoformat()
    content = json.dumps([request_id, when, list(tags)], ensure_ascii=False, separators=(",", ":"))
    return uuid.uuid5(_LEGACY_FEEDBACK_NAMESPACE, content).hex


Row = PredictionRow | FeedbackRow


def encode_row(row: Row) -> dict[str, Any]:
    """A row as a JSON object (the spill file format)."""
    if isinstance(row, PredictionRow):
        return {
            "kind": "prediction",
            "id": row.id,
            "created_at": row.created_at.isoformat(),
            "title": row.title,
            "body": row.body,
            "body_format": row.body_format,
            "predicted": row.predicted,
            "model_version": row.model_version,
            "latency_seconds": row.latency_seconds,
        }
    return {
        "kind": "feedback",
        "id": row.id,
        "request_id": row.request_id,
        "tags": list(row.tags),
        "received_at": row.received_at.isoformat(),
        "key_name": row.key_name,
    }


def decode_row(obj: Any) -> Row:
    """The inverse of ``encode_row``; raises ValueError (or TypeError/KeyError) on anything else."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind == "prediction":
        return PredictionRow(
            id=obj["id"],
            created_at=datetime.fromisoformat(obj["created_at"]),
            title=obj["title"],
            body=obj["body"],
            body_format=obj.get("body_format"),
            predicted=obj["predicted"],
            model_version=obj["model_version"],
            latency_seconds=obj["latency_seconds"],
        )
    if kind == "feedback":
        received_at = datetime.fromisoformat(obj["received_at"])
        feedback_id = obj.get("id")
        if feedback_id is None:  # spilled before feedback records had ids
            feedback_id = legacy_feedback_id(obj["request_id"], obj["tags"], received_at)
        return FeedbackRow(
            id=feedback_id,
            request_id=obj["request_id"],
            tags=obj["tags"],
            received_at=received_at,
            key_name=obj.get("key_name"),
        )
    raise ValueError(f"unknown row kind {kind!r}")


def _dumps(row: Row) -> bytes:
    return json.dumps(encode_row(row), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


_PREDICTION_PREFIX = b'{"kind":"prediction","id":"'


def _prediction_id(line: bytes) -> str | None:
    """The request id of a spilled prediction line, without parsing the whole (possibly long) line."""
    if line.startswith(_PREDICTION_PREFIX):
        end = line.find(b'"', len(_PREDICTION_PREFIX))
        if end > 0:
            return line[len(_PREDICTION_PREFIX) : end].decode("utf-8", errors="replace")
    try:
        obj = json.loads(line)
    except ValueError:
        return None  # reported when the file is replayed
    if isinstance(obj, dict) and obj.get("kind") == "prediction" and isinstance(obj.get("id"), str):
        return str(obj["id"])
    return None


# Memory of a row besides its strings: the dataclass, its datetime, the queue item and slot (tracemalloc: ~300 B),
# and per suggested tag its {"tag", "score"} dict (~200 B).
_ROW_OVERHEAD = 320
_TAG_OVERHEAD = 200


def row_bytes(row: Row) -> int:
    """Estimated memory a row holds, in O(1) per string: ``sys.getsizeof`` of a str is its real size (1, 2 or 4
    bytes per character, by its widest character, plus a header)."""
    if isinstance(row, PredictionRow):
        return (
            _ROW_OVERHEAD
            + sys.getsizeof(row.id)
            + sys.getsizeof(row.title)
            + sys.getsizeof(row.body)
            + _TAG_OVERHEAD * len(row.predicted)
            + sum(sys.getsizeof(p["tag"]) for p in row.predicted)
        )
    return (
        _ROW_OVERHEAD
        + sys.getsizeof(row.id)
        + sys.getsizeof(row.request_id)
        + (sys.getsizeof(row.key_name) if row.key_name is not None else 0)
        + sum(sys.getsizeof(t) + 8 for t in row.tags)
    )


# ------------------------------------------------------------------------------------------------ spill files


def _try_lock(fh: IO[bytes]) -> bool:
    if fcntl is None:  # pragma: no cover - Windows: one process per spill dir assumed
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened and synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _SpillWriter:
    """Appends rows to this process's active spill file. Thread-safe: request threads and the writer use it.

    Every append is flushed to the kernel before it returns (it survives a kill of the process); fsync happens
    when asked (``sync=True``) or through ``sync_if_dirty``, which the writer calls every flush interval from a
    thread of its own, so that a request handler never waits for a disk sync. The file stays locked (flock)
    while this process owns it, so another process never replays it meanwhile.

    ``max_bytes`` caps the spill files in the directory (``spill-*.jsonl``: this process's and leftovers, counted
    from the directory at start and on ``recount``, plus what was appended since): rows that would go beyond
    are not written but handed back to the caller.
    """

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None
        self._path: Path | None = None
        self._rows = 0
        self._dirty = False
        self._disk_bytes: int | None = None  # None: not counted yet
        self._counted_at = -math.inf

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def disk_bytes(self) -> int:
        """Bytes of spill files in the directory, as last counted plus appended since."""
        return self._disk_bytes or 0

    def recount(self) -> int:
        with self._lock:
            return self._recount_locked()

    def _recount_locked(self) -> int:
        total = 0
        if self.directory.is_dir():
            for path in self.directory.glob(f"{SPILL_PREFIX}*.jsonl"):
                with contextlib.suppress(FileNotFoundError):  # replayed and deleted meanwhile
                    total += path.stat().st_size
        self._disk_bytes = total
        self._counted_at = time.monotonic()
        return total

    def forget(self, size: int) -> None:
        """A spill file of ``size`` bytes was deleted."""
        with self._lock:
            if self._disk_bytes is not None:
                self._disk_bytes = max(0, self._disk_bytes - size)

    def _open(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Names sort by creation time, so files are replayed oldest first.
        name = f"{SPILL_PREFIX}{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        fh = open(path, "xb")  # noqa: SIM115 - kept open across calls, closed in seal()/close()
        _try_lock(fh)
        _fsync_dir(self.directory)
        self._fh, self._path, self._rows, self._dirty = fh, path, 0, False
        return fh

    def append(self, rows: Sequence[Row], *, sync: bool, close: bool = False) -> list[int]:
        """Write rows, flushed to the kernel; fsync too when ``sync``. Returns the positions (in ``rows``) of the
        rows not written because the directory reached ``max_bytes``. Raises OSError when the directory fails.

        ``close``: also close the file, releasing its lock, so that the next writer can replay it.
        """
        lines = [_dumps(r) for r in rows]
        with self._lock:
            if self._disk_bytes is None:
                self._recount_locked()
            room = self.max_bytes - self.disk_bytes
            if sum(map(len, lines)) > room and time.monotonic() - self._counted_at >= 1.0:
                # Files may have been replayed and deleted by another process since the last count.
                room = self.max_bytes - self._recount_locked()
            kept: list[bytes] = []
            dropped: list[int] = []
            for i, line in enumerate(lines):
                if len(line) <= room:
                    kept.append(line)
                    room -= len(line)
                else:
                    dropped.append(i)
            if kept:
                data = b"".join(kept)
                fh = self._fh or self._open()
                fh.write(data)
                # In the kernel now: survives a crash of this process; the fsync covers the machine.
                fh.flush()
                self._disk_bytes = self.disk_bytes + len(data)
                self._rows += len(kept)
                self._dirty = True
            if sync:
                self._sync_locked()
            if close:
                self._close_locked()
        return dropped

    def _sync_locked(self) -> None:
        if self._fh is not None and self._dirty:
            os.fsync(self._fh.fileno())
            self._dirty = False

    def sync_if_dirty(self) -> None:
        """fsync the active file if rows were appended since the last fsync; appends are not held up meanwhile."""
        with self._lock:
            if self._fh is None or not self._dirty:
                return
            fd = os.dup(self._fh.fileno())  # valid even if the file is sealed or closed during the fsync
            self._dirty = False
        try:
            os.fsync(fd)
        except OSError:
            with self._lock:
                self._dirty = True
            raise
        finally:
            os.close(fd)

    def seal(self) -> tuple[Path, IO[bytes], int] | None:
        """Hand the active file over for replay, still locked; the next append starts a new file."""
        with self._lock:
            if self._fh is None or self._path is None or self._rows == 0:
                return None
            self._sync_locked()
            out = (self._path, self._fh, self._rows)
            self._fh, self._path, self._rows = None, None, 0
            return out

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fh is None:
            return
        self._sync_locked()
        self._fh.close()
        if self._rows == 0 and self._path is not None:
            self._path.unlink(missing_ok=True)
        self._fh, self._path, self._rows = None, None, 0


@dataclass(eq=False)
class _Replay:
    """A spill file being replayed. Deleted once every row read from it was written (or rejected)."""

    path: Path
    lock: IO[bytes]  # holds the flock until the file is deleted or the writer stops
    rows: int  # valid rows in the file, for the spill-pending gauge
    reader: IO[bytes] | None = None
    eof: bool = False
    outstanding: int = 0  # rows read and not yet resolved

    def done(self) -> bool:
        return self.eof and self.outstanding == 0


@dataclass(eq=False)
class _Item:
    row: Row
    source: _Replay | None = None  # the spill file the row is still stored in; None: only in memory
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


class _PermanentError(Exception):
    """The database refused the data itself: retrying the same rows will never succeed."""


def _is_permanent(exc: BaseException) -> bool:
    import sqlite3

    import psycopg

    orig: BaseException | None = exc.orig if isinstance(exc, StatementError) else exc
    if orig is None:
        return False
    return isinstance(
        orig,
        ValueError
        | TypeError
        | psycopg.DataError
        | psycopg.IntegrityError
        | sqlite3.DataError
        | sqlite3.IntegrityError,
    )


# ------------------------------------------------------------------------------------------------- the writer


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
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_size)
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._stall_timeout = stall_timeout
        self._orphan_timeout = orphan_timeout
        self._rescan_interval = rescan_interval
        self.spill_dir = Path(spill_dir)
        self._metrics = metrics
        self._use_copy = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._spill = _SpillWriter(self.spill_dir, max_bytes=spill_max_bytes)

        # Guards _pending, _closed, _healthy (writes), _memory_bytes, _flush_waiters, _stats, _spill_rows, _losses.
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._closed = False
        self._flush_waiters: list[threading.Event] = []
        self._stats = WriterStats(method="copy" if self._use_copy else "insert")
        self._spill_rows = 0
        self._memory_bytes = 0
        # False from a failed (or hung) write to the next successful one: rows then go to the spill file.
        self._healthy = True
        self._losses: Counter[str] = Counter()  # rows lost since the last error log, by reason
        self._loss_logged: dict[str, float] = {}

        self._wake = threading.Event()  # data, flush or stop: ends the idle wait
        self._control = threading.Event()  # flush or stop only: ends a backoff wait
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self._write_started: float | None = None  # when the write in progress began (monotonic)

        # Owned by the writer thread.
        self._batch: list[_Item] = []
        self._held: list[_Item] = []
        self._replays: list[_Replay] = []
        self._next_rescan = 0.0
        self._failing_since: float | None = None

        if metrics is not None:
            metrics.log_queue_capacity.set(queue_size)
            metrics.log_queue_depth.set_function(self._queue.qsize)
            metrics.log_queue_capacity_bytes.set(queue_bytes)
            metrics.log_queue_bytes.set_function(lambda: self._memory_bytes)
            metrics.log_spill_pending.set(0)
            metrics.log_spill_capacity_bytes.set(spill_max_bytes)
            metrics.log_spill_bytes.set_function(lambda: self._spill.disk_bytes)

    # --------------------------------------------------------------------------------------------- public API

    @property
    def healthy(self) -> bool:
        """False from a failed (or hung) batch write to the next successful one (True before the first write).
        While False, new rows go straight to the spill file."""
        return self._healthy

    @property
    def stats(self) -> WriterStats:
        with self._lock:
            return dataclasses.replace(self._stats, feedback_held=len(self._held))

    @property
    def spill_pending(self) -> int:
        """Rows in spill files that this writer still has to replay."""
        with self._lock:
            return self._spill_rows

    @property
    def memory_bytes(self) -> int:
        """Estimated bytes of the rows held in memory (bounded by ``queue_bytes`` plus one row)."""
        return self._memory_bytes

    @property
    def spill_bytes(self) -> int:
        """Bytes of spill files in the spill directory (bounded by ``spill_max_bytes``)."""
        return self._spill.disk_bytes

    def start(self) -> None:
        """Claim spill files left by earlier processes (replayed in the background), then start the thread."""
        if self._thread is not None:
            raise RuntimeError("the request log writer was already started")
        self._claim_leftovers()
        self._next_rescan = time.monotonic() + self._rescan_interval
        self._watchdog = threading.Thread(target=self._watch, name="tagwatch-requestlog-sync", daemon=True)
        self._watchdog.start()
        self._thread = threading.Thread(target=self._run, name="tagwatch-requestlog", daemon=True)
        self._thread.start()

    def submit_prediction(self, row: PredictionRow) -> None:
        """Queue a prediction row. Never blocks on the database; never raises because of it."""
        if not isinstance(row, PredictionRow):
            raise TypeError(f"expected a PredictionRow, got {type(row).__name__}")
        self._submit(row)

    def submit_feedback(self, row: FeedbackRow) -> None:
        """Queue a feedback row. Never blocks on the database; never raises because of it."""
        if not isinstance(row, FeedbackRow):
            raise TypeError(f"expected a FeedbackRow, got {type(row).__name__}")
        self._submit(row)

    def is_pending(self, request_id: str) -> bool:
        """Whether a prediction with this id was submitted here and is not in the database yet.

        Check this *before* ``tagwatch.db.request_exists``: a row leaves the pending set only after its
        commit, so in that order a request being written at that very moment is found by one check or the
        other.
        """
        with self._lock:
            return self._pending.get(request_id, 0) > 0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is durable: written to the database, including replayed spill
        files, or, when the database cannot be written right now, in a spill file. False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._memory_rows_left()
        done = threading.Event()
        with self._lock:
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
        with self._lock:
            self._closed = True
        self._stop_requested.set()
        self._control.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            deadline = time.monotonic() + timeout
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
                if self._write_started is not None and not self._healthy and not self._memory_rows_left():
                    break  # a write hangs and every row is on disk already: no reason to wait for it
            if thread.is_alive():
                log.error(
                    "request log writer did not finish within %.1fs (a database call hangs): spilling what is left "
                    "in memory",
                    time.monotonic() - deadline + timeout,
                )
        # Rows the thread did not take (never started, or stuck in a database call), or could not spill. Spilling
        # a row the thread then still writes is harmless: replays are idempotent.
        leftovers = self._drain_queue()
        leftovers += [it for it in list(self._batch) + list(self._held) if not it.durable]
        if leftovers:
            self._lose(self._spill_items(leftovers, sync=True), "spill_error")
        self._watchdog_stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout)
        self._spill.close()
        if self._metrics is not None:
            self._metrics.log_spill_pending.set(self.spill_pending)

    # --------------------------------------------------------------------------------------------- submitting

    def _submit(self, row: Row) -> None:
        item = _Item(row)
        size = row_bytes(row)
        queued = False
        with self._lock:
            if isinstance(row, PredictionRow):
                self._pending[row.id] += 1
            closed = self._closed
            write_ahead = not self._healthy
            if not closed and not write_ahead:
                queued = self._enqueue_locked(item, size)
        if closed:
            # No thread to replay it any more: close the file at once so that the next process can.
            self._lose(self._spill_items([item], sync=True, close=True), "spill_error")
            return
        if not queued:
            # The database is away (write-ahead), or memory is full. The append is flushed to the kernel before
            # this returns; the watchdog fsyncs it within a flush interval.
            failed = self._spill_items([item], sync=False)
            if failed and write_ahead:
                with self._lock:  # the spill dir fails too: memory, while it has room, rather than nothing
                    queued = self._enqueue_locked(item, size)
                if queued:
                    failed = []
            self._lose(failed, "spill_error")
            if not queued:
                return
        if self._queue.qsize() >= self._batch_size or 2 * self._memory_bytes >= self._queue_bytes:
            self._wake.set()

    def _enqueue_locked(self, item: _Item, size: int) -> bool:
        if self._memory_bytes + size > self._queue_bytes:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        item.size = size
        self._memory_bytes += size
        return True

    def _release(self, items: Iterable[_Item]) -> None:
        """Items no longer held in memory: take them off the memory total."""
        freed = 0
        for it in items:
            freed += it.size
            it.size = 0
        if freed:
            with self._lock:
                self._memory_bytes -= freed

    def _spill_items(self, items: Sequence[_Item], *, sync: bool, close: bool = False) -> list[_Item]:
        """Append memory rows to the spill file; rows beyond the spill cap are dropped (counted, logged). Never
        raises: returns the items the spill dir failed to take (still held; the caller keeps or loses them)."""
        if not items:
            return []
        try:
            dropped = set(self._spill.append([it.row for it in items], sync=sync, close=close))
        except Exception as exc:
            self._log_loss("spill_error", 0, exc)
            return list(items)
        full = [it for i, it in enumerate(items) if i in dropped]
        spilled = [it for i, it in enumerate(items) if i not in dropped]
        self._release(spilled)
        self._count_spilled(len(spilled))
        self._lose(full, "spill_full")
        return []

    def _lose(self, items: Sequence[_Item], reason: Literal["spill_full", "spill_error"]) -> None:
        """Rows that can be neither written nor spilled: counted, logged (at most every 10 s per reason)."""
        if not items:
            return
        self._release(items)
        with self._lock:
            self._stats.rows_lost += len(items)
            if reason == "spill_full":
                self._stats.rows_dropped_spill_full += len(items)
            for it in items:
                if isinstance(it.row, PredictionRow):
                    self._unpend_locked(it.row.id)
        if self._metrics is not None:
            self._metrics.log_rows_dropped.labels(reason=reason).inc(len(items))
        self._log_loss(reason, len(items))

    def _log_loss(self, reason: str, rows: int, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        with self._lock:
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
                self.spill_dir,
                self._spill.disk_bytes,
                self._spill.max_bytes,
                lost,
            )
        elif exc is not None:
            log.error(
                "request log: cannot write to the spill dir %s (%s: %s); rows are kept in memory while it has "
                "room, else LOST (%d so far; logged at most every 10s)",
                self.spill_dir,
                type(exc).__name__,
                exc,
                lost,
            )
        else:
            log.error("request log: %d rows could be neither written nor spilled: they are LOST", lost)

    def _unpend_locked(self, request_id: str) -> None:
        n = self._pending.get(request_id, 0)
        if n <= 1:
            self._pending.pop(request_id, None)
        else:
            self._pending[request_id] = n - 1

    def _drain_queue(self, limit: int | None = None) -> list[_Item]:
        out: list[_Item] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def _memory_rows_left(self) -> bool:
        return (
            not self._queue.empty()
            or any(not it.durable for it in self._batch)
            or any(not it.durable and not it.orphan for it in self._held)
        )

    # --------------------------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        backoff = 0.0
        result = "idle"
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
            with self._lock:
                waiters = list(self._flush_waiters)
            try:
                result = self._step(stopping)
            except Exception:  # a bug must not kill the thread: keep the rows, log, retry later
                log.exception("request log: unexpected error in the writer thread")
                self._set_healthy(False)
                result = "failed"
            if result == "failed":
                backoff = min(self._max_backoff, max(2 * backoff, min(0.05, self._max_backoff)))
                # Write-ahead: while the database is away nothing stays only in memory; new rows are spilled by
                # _submit (the writer is unhealthy now), the retried batch is read back from the spill file.
                self._spill_memory_rows()
            else:
                backoff = 0.0
            if stopping and result != "ok":
                self._spill_memory_rows()  # e.g. feedback held for a request that waits in a spill file
                break
            if waiters and self._flush_satisfied():
                with self._lock:
                    self._flush_waiters = [w for w in self._flush_waiters if w not in waiters]
                for w in waiters:
                    w.set()
        self._finish_thread()

    def _watch(self) -> None:
        """Every flush interval: fsync the spill file if rows were appended, and notice a write that hangs (a
        database that vanished without closing its connections) to switch to write-ahead meanwhile."""
        while not self._watchdog_stop.wait(self._flush_interval):
            try:
                self._spill.sync_if_dirty()
                started = self._write_started
                if started is not None and self._healthy and time.monotonic() - started > self._stall_timeout:
                    self._on_stall(time.monotonic() - started)
            except Exception:
                log.exception("request log: the spill watchdog failed; retrying")

    def _on_stall(self, seconds: float) -> None:
        log.warning(
            "request log: a batch write has hung for %.1fs: spilling the rows in memory and new rows until a "
            "write succeeds",
            seconds,
        )
        self._set_healthy(False)
        # Copies of the rows the writer thread holds (it is stuck in a database call): whichever way that call
        # ends, the row is stored once (idempotent replays). The queue is taken over.
        held = [it for it in list(self._batch) + list(self._held) if not it.durable]
        if not held or self._spill_items_copy(held):
            for it in self._spill_items(self._drain_queue(), sync=True):
                try:
                    self._queue.put_nowait(it)  # the spill dir fails too: back to memory (still counted there)
                except queue.Full:
                    self._lose([it], "spill_error")
        with self._lock:
            self._stats.stalls += 1

    def _spill_items_copy(self, items: list[_Item]) -> bool:
        """Append copies of rows that stay where they are (in the writer's batch); mark them durable."""
        try:
            dropped = set(self._spill.append([it.row for it in items], sync=True))
        except Exception as exc:
            self._log_loss("spill_error", 0, exc)
            return False
        copied = [it for i, it in enumerate(items) if i not in dropped]
        for it in copied:
            it.spilled = True
        self._count_spilled(len(copied))
        return True

    def _count_spilled(self, rows: int) -> None:
        """``rows`` were appended to the spill file: stats, the replay backlog and their metrics."""
        if not rows:
            return
        with self._lock:
            self._stats.rows_spilled += rows
            self._spill_rows += rows
            pending = self._spill_rows
        if self._metrics is not None:
            self._metrics.log_rows_spilled.inc(rows)
            self._metrics.log_spill_pending.set(pending)

    def _set_healthy(self, healthy: bool) -> None:
        with self._lock:  # _submit reads it under the same lock: a row is either queued before or spilled after
            self._healthy = healthy

    def _flush_satisfied(self) -> bool:
        if not self._queue.empty():
            return False
        if self._healthy:
            waiting = any(not it.orphan for it in self._held)
            return not self._batch and not waiting and not self._replay_work_left()
        return not any(not it.durable for it in self._batch) and not any(
            not it.durable and not it.orphan for it in self._held
        )

    def _finish_thread(self) -> None:
        for rp in self._replays:
            if rp.reader is not None:
                rp.reader.close()
            rp.lock.close()  # releases the flock: the file is replayed by the next process
        self._replays = []
        self._release(it for it in self._batch + self._held if it.durable)
        self._batch = [it for it in self._batch if not it.durable]
        self._held = [it for it in self._held if not it.durable]
        self._spill.close()
        with self._lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        for w in waiters:
            w.set()

    def _spill_memory_rows(self) -> None:
        """Move every row held only in memory to the spill file. Rows the spill dir fails to take stay in the
        batch (retried with it); rows already on disk leave memory."""
        items = [it for it in self._batch if not it.durable]
        items += self._drain_queue()
        items += [it for it in self._held if not it.durable]
        on_disk = [it for it in self._batch if it.spilled] + [it for it in self._held if it.spilled]
        self._release(on_disk)
        self._batch = [it for it in self._batch if it.source is not None]
        self._held = [it for it in self._held if it.source is not None]
        failed = self._spill_items(items, sync=True)
        self._batch = failed + self._batch

    def _work_ready(self) -> bool:
        """Whether to skip the idle wait: a full batch waits, or spill files are being replayed."""
        if self._batch or self._queue.qsize() >= self._batch_size:
            return True
        if 2 * self._memory_bytes >= self._queue_bytes and not self._queue.empty():
            return True
        now = time.monotonic()
        if any(not it.orphan or it.next_check <= now for it in self._held if not self._request_pending(it)):
            return True
        return self._healthy and self._replay_work_left()

    def _replay_work_left(self) -> bool:
        return any(not rp.eof for rp in self._replays) or self._spill.rows > 0

    def _request_pending(self, item: _Item) -> bool:
        row = item.row
        return isinstance(row, FeedbackRow) and self.is_pending(row.request_id)

    def _step(self, stopping: bool) -> Literal["idle", "ok", "failed"]:
        """Build (or retry) one batch and write it."""
        if not self._batch:
            batch = self._release_held()
            batch += self._drain_queue(self._batch_size - len(batch))
            if not stopping and len(batch) < self._batch_size:
                batch += self._read_replays(self._batch_size - len(batch), have=len(batch))
            self._batch = batch
        if not self._batch:
            if self._healthy or stopping:
                return "idle"
            return self._probe()  # nothing to retry with (e.g. all spilled rows dropped): ask the database
        self._write_started = time.monotonic()
        try:
            try:
                self._write_batch(self._batch)
            except _PermanentError:
                self._write_one_by_one(self._batch)
        except Exception as exc:
            self._on_failure(exc)
            return "failed"
        finally:
            self._write_started = None
        self._batch = []
        self._on_success()
        return "ok"

    def _probe(self) -> Literal["ok", "failed"]:
        self._write_started = time.monotonic()
        try:
            ping(self.engine)
        except Exception as exc:
            self._on_failure(exc)
            return "failed"
        finally:
            self._write_started = None
        self._on_success()
        return "ok"

    def _write_one_by_one(self, batch: list[_Item]) -> None:
        """A batch the database refused as data: write rows one by one, keep refused ones aside."""
        for i, item in enumerate(batch):
            try:
                self._write_batch([item])
            except _PermanentError as exc:
                self._reject(item, exc.__cause__ or exc)
            except Exception:
                self._batch = batch[i:]
                raise

    def _on_success(self) -> None:
        if not self._healthy or self._failing_since is not None:
            down = time.monotonic() - (self._failing_since or time.monotonic())
            log.warning("request log: database writes work again after %.1fs", down)
        self._set_healthy(True)
        self._failing_since = None
        if self._metrics is not None:
            self._metrics.log_last_write.set(time.time())

    def _on_failure(self, exc: BaseException) -> None:
        self._set_healthy(False)
        with self._lock:
            self._stats.write_failures += 1
        if self._metrics is not None:
            self._metrics.log_write_failures.inc()
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "request log: writing a batch of %d rows failed (%s: %s); spilling rows until a write succeeds, "
                "retrying with backoff",
                len(self._batch),
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc) else "",
            )
        else:
            log.debug("request log: write failed again: %s", exc)

    # ------------------------------------------------------------------------------------------ held feedback

    def _release_held(self) -> list[_Item]:
        """Held feedback that may be written now: its request was written, or an orphan is due a re-check."""
        if not self._held:
            return []
        now = time.monotonic()
        out: list[_Item] = []
        keep: list[_Item] = []
        for it in self._held:
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
                with self._lock:
                    self._stats.orphans_dropped += 1
                self._resolve([it])
            elif not it.orphan or it.next_check <= now:
                out.append(it)
            else:
                keep.append(it)
        # Oldest first; what does not fit in one batch waits for the next.
        self._held = out[self._batch_size :] + keep
        return out[: self._batch_size]

    # ------------------------------------------------------------------------------------------------- replay

    def _claim_leftovers(self) -> None:
        """Lock spill files no live process owns, and register their requests as pending."""
        self._spill.recount()  # another process may have added or removed files since
        if not self.spill_dir.is_dir():
            return
        mine = {rp.path for rp in self._replays}
        if self._spill.path is not None:
            mine.add(self._spill.path)
        for path in sorted(self.spill_dir.glob(f"{SPILL_PREFIX}*.jsonl")):
            if path in mine:
                continue
            try:
                rp = self._claim(path)
            except OSError as exc:
                log.warning("request log: cannot open spill file %s: %s", path, exc)
                continue
            if rp is not None:
                self._replays.append(rp)

    def _claim(self, path: Path) -> _Replay | None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - holds the lock until the file is replayed
        except FileNotFoundError:
            return None
        if not _try_lock(fh):
            fh.close()  # another live process owns it
            return None
        try:
            if os.fstat(fh.fileno()).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)
        except FileNotFoundError:  # replayed and deleted by another process between open and lock
            fh.close()
            return None
        rows = 0
        ids: list[str] = []
        for line in fh:
            if not line.strip():
                continue
            rows += 1
            request_id = _prediction_id(line)
            if request_id is not None:
                ids.append(request_id)
        with self._lock:
            for request_id in ids:
                self._pending[request_id] += 1
            self._spill_rows += rows
            pending = self._spill_rows
        if self._metrics is not None:
            self._metrics.log_spill_pending.set(pending)
        log.warning("request log: replaying %d rows left in %s", rows, path)
        return _Replay(path=path, lock=fh, rows=rows)

    def _read_replays(self, limit: int, *, have: int) -> list[_Item]:
        """Up to ``limit`` rows from spill files, oldest file first, while the memory bound has room (one row at
        least when the batch has ``have`` == 0 rows otherwise, so that a row bigger than the bound moves on)."""
        if not any(not rp.eof for rp in self._replays):
            sealed = self._spill.seal()
            if sealed is not None:
                path, fh, rows = sealed
                self._replays.append(_Replay(path=path, lock=fh, rows=rows))
            elif time.monotonic() >= self._next_rescan:
                self._next_rescan = time.monotonic() + self._rescan_interval
                self._claim_leftovers()
        out: list[_Item] = []
        for rp in list(self._replays):
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
                    self._replays.remove(rp)
                    continue
            while len(out) < limit and (not (out or have) or self._memory_bytes < self._queue_bytes):
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
                item = _Item(row, source=rp, size=row_bytes(row))
                with self._lock:
                    self._memory_bytes += item.size
                out.append(item)
            self._finish_replay_if_done(rp)
            if out and self._memory_bytes >= self._queue_bytes:
                break
        return out

    def _finish_replay_if_done(self, rp: _Replay) -> None:
        if not rp.done() or rp not in self._replays:
            return
        size = os.fstat(rp.lock.fileno()).st_size
        rp.path.unlink(missing_ok=True)
        rp.lock.close()
        self._replays.remove(rp)
        self._spill.forget(size)
        _fsync_dir(rp.path.parent)
        with self._lock:
            self._stats.spill_files_replayed += 1
        log.info("request log: replayed and removed %s", rp.path.name)

    def _resolve(self, items: Iterable[_Item]) -> None:
        """Rows that are done (written, rejected or dropped): delete their spill files once those are done."""
        items = list(items)
        self._release(items)
        from_files = 0
        touched: list[_Replay] = []
        for it in items:
            if it.source is not None:
                it.source.outstanding -= 1
                from_files += 1
                touched.append(it.source)
        if from_files:
            with self._lock:
                self._spill_rows = max(0, self._spill_rows - from_files)
                self._stats.rows_replayed += from_files
                pending = self._spill_rows
            if self._metrics is not None:
                self._metrics.log_spill_pending.set(pending)
            for rp in dict.fromkeys(touched):
                self._finish_replay_if_done(rp)

    # ------------------------------------------------------------------------------------------------ rejects

    def _rejected_path(self) -> Path:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        return self.spill_dir / f"{REJECTED_PREFIX}{os.getpid()}.jsonl"

    def _reject(self, item: _Item, exc: BaseException) -> None:
        record = {"error": f"{type(exc).__name__}: {exc}", "row": encode_row(item.row)}
        log.error("request log: the database refused a row; kept in %s: %s", self._rejected_path(), record["error"])
        with open(self._rejected_path(), "ab") as fh:
            fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            os.fsync(fh.fileno())
        with self._lock:
            self._stats.rows_rejected += 1
            if isinstance(item.row, PredictionRow):
                self._unpend_locked(item.row.id)
        self._resolve([item])

    def _reject_line(self, path: Path, line: bytes, exc: BaseException) -> None:
        log.error(
            "request log: unreadable line in spill file %s (%s); kept in %s", path.name, exc, self._rejected_path()
        )
        record = {
            "error": f"{type(exc).__name__}: {exc}",
            "file": path.name,
            "line": line.decode("utf-8", errors="replace"),
        }
        with open(self._rejected_path(), "ab") as fh:
            fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            os.fsync(fh.fileno())
        request_id = _prediction_id(line)
        with self._lock:
            self._stats.rows_rejected += 1
            self._spill_rows = max(0, self._spill_rows - 1)
            if request_id is not None:  # registered as pending when the file was claimed
                self._unpend_locked(request_id)

    # ------------------------------------------------------------------------------------------------ writing

    def _write_batch(self, batch: list[_Item]) -> None:
        """One transaction: predictions first, then the feedback whose requests exist. Raises on failure."""
        preds: list[tuple[_Item, PredictionRow]] = []
        feedback: list[tuple[_Item, FeedbackRow]] = []
        for it in batch:
            if isinstance(it.row, PredictionRow):
                preds.append((it, it.row))
            else:
                feedback.append((it, it.row))
        batch_ids = {row.id for _, row in preds}
        waiting: list[_Item] = []
        candidates: list[tuple[_Item, FeedbackRow]] = []
        for it, fb in feedback:
            if fb.request_id not in batch_ids and self.is_pending(fb.request_id):
                waiting.append(it)  # its request is queued behind, in a failed batch or in a spill file
            else:
                candidates.append((it, fb))
        ready: list[tuple[_Item, FeedbackRow]] = []
        orphans: list[_Item] = []
        feedback_inserted = 0
        try:
            with self.engine.begin() as conn:
                inserted, copied, fallback = self._insert_predictions(conn, [row for _, row in preds])
                if candidates:
                    existing = self._existing_ids(conn, {fb.request_id for _, fb in candidates})
                    ready = [(it, fb) for it, fb in candidates if fb.request_id in existing]
                    orphans = [it for it, fb in candidates if fb.request_id not in existing]
                    feedback_inserted = self._insert_feedback(conn, [fb for _, fb in ready])
        except Exception as exc:
            if _is_permanent(exc):
                raise _PermanentError(str(exc)) from exc
            raise
        # Committed.
        with self._lock:
            for _, row in preds:
                self._unpend_locked(row.id)
            st = self._stats
            st.batches_written += 1
            st.predictions_written += inserted
            st.feedback_written += feedback_inserted
            st.duplicates_skipped += len(preds) - inserted
            st.feedback_duplicates_skipped += len(ready) - feedback_inserted
            if copied:
                st.copy_rows += inserted
            else:
                st.insert_rows += inserted
            st.copy_fallbacks += int(fallback)
        if len(preds) > inserted:
            log.info(
                "request log: %d prediction rows were already stored (a retried or replayed batch)",
                len(preds) - inserted,
            )
        if self._metrics is not None:
            if inserted:
                self._metrics.log_rows_written.labels(table=PREDICTIONS).inc(inserted)
            if feedback_inserted:
                self._metrics.log_rows_written.labels(table=FEEDBACK).inc(feedback_inserted)
        now = time.monotonic()
        with self._lock:
            self._stats.feedback_deferred += sum(1 for it in waiting + orphans if not it.held_since)
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
        self._held.extend(waiting + orphans)
        self._resolve([it for it, _ in preds] + [it for it, _ in ready])

    def _insert_predictions(self, conn: Connection, rows: list[PredictionRow]) -> tuple[int, bool, bool]:
        """Store prediction rows. Returns (rows inserted, whether COPY did it, whether COPY fell back)."""
        if not rows:
            return 0, self._use_copy, False
        fallback = False
        if self._use_copy:
            import psycopg

            savepoint = conn.begin_nested()
            try:
                raw: Any = conn.connection.dbapi_connection
                with raw.cursor() as cur, cur.copy(_COPY_SQL) as copy:
                    for r in rows:
                        copy.write_row(
                            (
                                r.id,
                                r.created_at,
                                r.title,
                                r.body,
                                r.body_format,
                                json.dumps(r.predicted, ensure_ascii=False),
                                r.model_version,
                                r.latency_seconds,
                            )
                        )
                savepoint.commit()
                return len(rows), True, False
            except psycopg.errors.UniqueViolation:
                # Some ids are stored already: a batch whose commit landed although the connection dropped
                # before the acknowledgement, or a replayed spill file. Insert the rest, skipping those.
                savepoint.rollback()
                fallback = True
        table = Base.metadata.tables[PREDICTIONS]
        insert = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
        stmt = insert.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        params = [
            {
                "id": r.id,
                "created_at": r.created_at,
                "title": r.title,
                "body": r.body,
                "body_format": r.body_format,
                "predicted": r.predicted,
                "model_version": r.model_version,
                "latency_seconds": r.latency_seconds,
            }
            for r in rows
        ]
        inserted = len(conn.execute(stmt, params).all())
        return inserted, False, fallback

    @staticmethod
    def _existing_ids(conn: Connection, ids: set[str]) -> set[str]:
        table = Base.metadata.tables[PREDICTIONS]
        found: set[str] = set()
        ordered = sorted(ids)
        for i in range(0, len(ordered), _ID_QUERY_CHUNK):
            chunk = ordered[i : i + _ID_QUERY_CHUNK]
            found.update(conn.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
        return found

    @staticmethod
    def _insert_feedback(conn: Connection, rows: list[FeedbackRow]) -> int:
        """Insert feedback records; a record whose id is stored already (a replay) is skipped. Returns how many
        were inserted. Never an UPDATE: feedback is append-only, and the API's role may only INSERT."""
        if not rows:
            return 0
        unique = list({r.id: r for r in rows}.values())  # the same record twice in one batch: a spilled copy
        table = Base.metadata.tables[FEEDBACK]
        insert = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
        stmt = insert.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        params = [
            {
                "id": r.id,
                "request_id": r.request_id,
                "tags": list(r.tags),
                "received_at": r.received_at,
                "key_name": r.key_name,
            }
            for r in unique
        ]
        return len(conn.execute(stmt, params).all())


__all__ = [
    "FeedbackRow",
    "PredictionRow",
    "RequestLogWriter",
    "WriterStats",
    "decode_row",
    "encode_row",
    "legacy_feedback_id",
]

"""Writing the request log: the statements the API's log writer runs (insert only, idempotent by id).

The API's database role may INSERT and SELECT, never UPDATE or DELETE: predictions and feedback records are written
with ``ON CONFLICT (<primary key>) DO NOTHING``, so a row written twice (a retried batch, a replayed spill file) is
stored once. The keys hold the partition key (``created_at``; feedback: its request's ``created_at``), which a row
written twice carries the same both times.
On PostgreSQL with psycopg 3, predictions go in with COPY (several times faster than executemany), falling back to
INSERT when a batch holds an id that is stored already.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from tagwatch.db.schema import Base, Feedback, PredictionRequest

PREDICTIONS = PredictionRequest.__tablename__
FEEDBACK = Feedback.__tablename__

_COPY_SQL = (
    f"COPY {PREDICTIONS} "
    "(id, created_at, title, body, body_format, predicted, model_version, latency_seconds) FROM STDIN"
)
_ID_QUERY_CHUNK = 500


class PredictionValues(Protocol):
    """What a prediction row to store carries (``service.requestlog.PredictionRow`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def body_format(self) -> str | None: ...
    @property
    def predicted(self) -> Sequence[Mapping[str, object]]: ...
    @property
    def model_version(self) -> str | None: ...
    @property
    def latency_seconds(self) -> float: ...


class FeedbackValues(Protocol):
    """What a feedback record to store carries (``service.requestlog.FeedbackRow`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def key_name(self) -> str | None: ...


def supports_copy(engine: Engine) -> bool:
    """Whether predictions can be written with COPY (PostgreSQL through psycopg 3)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def is_data_error(exc: BaseException) -> bool:
    """Whether the database refused the data itself (retrying the same rows will never succeed), not the
    connection or the server."""
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


def _insert_ignoring_stored(conn: Connection, table: Table, params: list[dict[str, object]]) -> int:
    """INSERT ... ON CONFLICT (primary key) DO NOTHING; returns how many rows were new."""
    insert = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    key = [c.name for c in table.primary_key.columns]
    stmt = insert.on_conflict_do_nothing(index_elements=key).returning(table.c.id)
    return len(conn.execute(stmt, params).all())


def insert_predictions(conn: Connection, rows: Sequence[PredictionValues], *, use_copy: bool) -> tuple[int, bool, bool]:
    """Store prediction rows. Returns (rows inserted, whether COPY did it, whether COPY fell back)."""
    if not rows:
        return 0, use_copy, False
    fallback = False
    if use_copy:
        import psycopg

        savepoint = conn.begin_nested()
        try:
            raw = conn.connection.dbapi_connection
            assert isinstance(raw, psycopg.Connection)
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
    params: list[dict[str, object]] = [
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
    return _insert_ignoring_stored(conn, Base.metadata.tables[PREDICTIONS], params), False, fallback


def request_times(conn: Connection, ids: Iterable[str]) -> dict[str, datetime]:
    """The ``created_at`` of those of ``ids`` that are stored requests (asked in chunks, so a long list stays one
    small query each). Feedback is stored only for these: there is no foreign key (migration 0005 says why)."""
    table = Base.metadata.tables[PREDICTIONS]
    found: dict[str, datetime] = {}
    ordered = sorted(set(ids))
    for i in range(0, len(ordered), _ID_QUERY_CHUNK):
        chunk = ordered[i : i + _ID_QUERY_CHUNK]
        for request_id, created_at in conn.execute(select(table.c.id, table.c.created_at).where(table.c.id.in_(chunk))):
            found[request_id] = created_at
    return found


def insert_feedback(conn: Connection, rows: Sequence[FeedbackValues], request_times: Mapping[str, datetime]) -> int:
    """Insert feedback records, each with its request's ``created_at`` from ``request_times`` (KeyError when a
    request is missing: look them up first, ``request_times``); a record whose id is stored already (a replay) is
    skipped. Returns how many were inserted. Never an UPDATE: feedback is append-only, and the API's role may only
    INSERT."""
    if not rows:
        return 0
    unique = list({r.id: r for r in rows}.values())  # the same record twice in one batch: a spilled copy
    params: list[dict[str, object]] = [
        {
            "id": r.id,
            "request_id": r.request_id,
            "request_created_at": request_times[r.request_id],
            "tags": list(r.tags),
            "received_at": r.received_at,
            "key_name": r.key_name,
        }
        for r in unique
    ]
    return _insert_ignoring_stored(conn, Base.metadata.tables[FEEDBACK], params)

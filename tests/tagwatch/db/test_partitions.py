"""Monthly partitions of the request log (PostgreSQL), retention (partition drops; batched deletes on SQLite), and
the migration that converts an existing log, on real databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from tagwatch.db import (
    Feedback,
    count_rows,
    current_revision,
    fetch_requests,
    head_revision,
    make_engine,
    new_request_id,
    upgrade_database,
)
from tagwatch.db.partitions import ensure_partitions, is_partition, prune_requests
from tagwatch.db.requestlog import insert_feedback, insert_predictions, request_times
from tests.tagwatch.db.support import logged_request

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
# Seven months of requests, the first of each month and the middle: Jun .. Dec 2026.
MONTHS = [datetime(2026, m, 1, tzinfo=UTC) for m in range(6, 13)]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    upgrade_database(postgres_url)
    eng = make_engine(postgres_url)
    yield eng
    eng.dispose()


def _log(engine: Engine, times: list[datetime], *, feedback_every: int = 2) -> list[str]:
    """Requests at ``times`` (ids returned in the same order), every ``feedback_every``-th with two feedback records."""
    ids: list[str] = []
    with Session(engine) as session:
        for i, at in enumerate(times):
            req = logged_request(i, at=at)
            session.add(req)
            ids.append(req.id)
        session.flush()
        for i, (rid, at) in enumerate(zip(ids, times, strict=True)):
            if i % feedback_every == 0:
                session.add(Feedback(request_id=rid, tags=["old"], received_at=at + timedelta(minutes=1)))
                session.add(Feedback(request_id=rid, tags=[f"t{i}"], received_at=at + timedelta(minutes=2)))
        session.commit()
    return ids


def _spread() -> list[datetime]:
    return [m + timedelta(days=d, hours=h) for m in MONTHS for d in (0, 14) for h in (0, 5)]


def _where(engine: Engine, table: str) -> dict[str, int]:
    """Rows per partition of ``table``."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1"))
        return {str(name): int(n) for name, n in rows}


# --- partitions on PostgreSQL ----------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_fresh_database_has_this_month_and_the_next_ones(pg: Engine) -> None:
    this_month = datetime.now(UTC).strftime("%Y_%m")
    names = set(_partitions(pg))
    assert f"prediction_requests_p{this_month}" in names
    assert f"feedback_p{this_month}" in names
    assert {"prediction_requests_default", "feedback_default"} <= names
    assert all(is_partition(n) for n in names)
    # Creating them again is a no-op; more months ahead adds exactly those.
    assert ensure_partitions(pg, now=datetime.now(UTC), ahead=3) == []
    created = ensure_partitions(pg, now=datetime.now(UTC), ahead=5)
    assert len(created) == 4  # two more months, two tables
    with pytest.raises(ValueError, match="naive"):
        ensure_partitions(pg, now=datetime(2026, 1, 1), ahead=1)


def _partitions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            str(n)
            for (n,) in conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent IN ('prediction_requests'::regclass, 'feedback'::regclass)"
                )
            )
        ]


@pytest.mark.postgres
def test_rows_land_in_their_months_and_a_month_without_partition_loses_nothing(pg: Engine) -> None:
    ensure_partitions(pg, now=MONTHS[0], ahead=5)  # Jun .. Nov 2026; December exists from the migration
    far = datetime(2031, 5, 3, tzinfo=UTC)  # no partition: the DEFAULT partition takes it
    ids = _log(pg, [*_spread(), far])
    by_partition = _where(pg, "prediction_requests")
    assert by_partition == {
        **{f"prediction_requests_p{m.strftime('%Y_%m')}": 4 for m in MONTHS},
        "prediction_requests_default": 1,
    }
    assert _where(pg, "feedback")["feedback_p2026_06"] == 4  # 2 labelled requests x 2 records
    assert _where(pg, "feedback")["feedback_default"] == 2
    # The month is created when due; its rows move out of the DEFAULT partition, feedback with them.
    created = ensure_partitions(pg, now=far, ahead=0)
    assert created == ["prediction_requests_p2031_05", "feedback_p2031_05"]
    assert _where(pg, "prediction_requests")["prediction_requests_p2031_05"] == 1
    assert "prediction_requests_default" not in _where(pg, "prediction_requests")
    assert _where(pg, "feedback")["feedback_p2031_05"] == 2
    (last,) = fetch_requests(pg, limit=1)
    assert (last.id, last.created_at, last.feedback_tags) == (ids[-1], far, (f"t{len(ids) - 1}",))


@pytest.mark.postgres
def test_the_writer_statements_copy_across_months_and_skip_replays(pg: Engine) -> None:
    from tests.service.requestlog.support import feedback, prediction

    rows = [prediction(i) for i in range(3)]
    rows = [
        type(r)(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "created_at": at})
        for r, at in zip(rows, [MONTHS[5], MONTHS[6], MONTHS[6] + timedelta(days=40)], strict=True)
    ]
    with pg.begin() as conn:
        assert insert_predictions(conn, rows, use_copy=True) == (3, True, False)
    with pg.begin() as conn:  # a replayed batch: COPY hits the key, INSERT skips what is stored
        assert insert_predictions(conn, rows, use_copy=True) == (0, False, True)
        times = request_times(conn, [r.id for r in rows] + ["0" * 32])
        assert times == {r.id: r.created_at for r in rows}
        records = [feedback(r.id, ["python"]) for r in rows]
        assert insert_feedback(conn, records, times) == 3
        assert insert_feedback(conn, records, times) == 0  # replayed: same id, same request time
    assert _where(pg, "prediction_requests") == {
        "prediction_requests_default": 1,  # November: no partition in this database (created from December on)
        "prediction_requests_p2026_12": 1,
        "prediction_requests_p2027_01": 1,
    }
    assert sum(_where(pg, "feedback").values()) == 3


def test_feedback_without_its_request_is_refused(engine: Engine) -> None:
    # No foreign key any more: the request's time is looked up, and an unknown request leaves it NULL (refused).
    with Session(engine) as session:
        session.add(Feedback(request_id=new_request_id(), tags=["python"], received_at=NOW))
        with pytest.raises(IntegrityError):
            session.commit()


# --- retention -------------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_retention_drops_exactly_the_months_entirely_older_than_the_cutoff(pg: Engine) -> None:
    ensure_partitions(pg, now=MONTHS[0], ahead=5)
    times = _spread()
    ids = _log(pg, times)
    cutoff = datetime(2026, 9, 10, tzinfo=UTC)  # June, July and August go; September straddles it and stays whole
    before = {r.id: r for r in fetch_requests(pg)}

    planned = prune_requests(pg, older_than=cutoff, dry_run=True)
    expected = [f"{t}_p2026_{m:02d}" for m in (6, 7, 8) for t in ("feedback", "prediction_requests")]
    assert planned.partitions_dropped == tuple(expected)  # each month's feedback before its requests
    assert (planned.dry_run, planned.backend, planned.rows_deleted) == (True, "postgresql", None)
    assert {r.id for r in fetch_requests(pg)} == set(before)  # the dry run changed nothing
    assert set(expected) <= set(_partitions(pg))

    done = prune_requests(pg, older_than=cutoff)
    assert done.partitions_dropped == tuple(expected)
    assert done.to_dict()["months"] == ["2026-06", "2026-07", "2026-08"]
    kept = {r.id: r for r in fetch_requests(pg)}
    assert set(kept) == {rid for rid, at in zip(ids, times, strict=True) if at >= datetime(2026, 9, 1, tzinfo=UTC)}
    assert kept == {rid: before[rid] for rid in kept}  # the rest untouched, feedback (the latest record) with them
    assert min(r.created_at for r in kept.values()) < cutoff  # September: a month with newer rows is never cut
    assert sum(_where(pg, "feedback").values()) == 2 * sum(1 for r in kept.values() if r.feedback_tags)
    assert prune_requests(pg, older_than=cutoff).partitions_dropped == ()  # nothing left to do


@pytest.mark.postgres
def test_retention_refuses_a_cutoff_of_the_last_day(pg: Engine) -> None:
    with pytest.raises(Exception, match="newer than a day ago"):
        prune_requests(pg, older_than=datetime.now(UTC))


@pytest.mark.postgres
def test_retention_gives_up_quickly_behind_a_long_lock(pg: Engine, postgres_url: str) -> None:
    ensure_partitions(pg, now=MONTHS[0], ahead=1)
    _log(pg, [MONTHS[0] + timedelta(days=2)])
    held, release = threading.Event(), threading.Event()

    def long_reader() -> None:  # a long read holds ACCESS SHARE on the parent until it commits
        with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as conn:
            conn.execute("SELECT count(*) FROM prediction_requests")
            held.set()
            release.wait(30)

    reader = threading.Thread(target=long_reader)
    reader.start()
    try:
        assert held.wait(10)
        # Creating partitions ahead when none is missing takes no lock that a reader holds up.
        assert ensure_partitions(pg, now=MONTHS[0], ahead=1, lock_timeout=0.1, attempts=1) == []
        start = datetime.now(UTC)
        with pytest.raises(OperationalError) as info:
            prune_requests(pg, older_than=datetime(2026, 8, 1, tzinfo=UTC), lock_timeout=0.1, attempts=2)
        assert isinstance(info.value.orig, psycopg.errors.LockNotAvailable)
        assert datetime.now(UTC) - start < timedelta(seconds=3)
    finally:
        release.set()
        reader.join()
    assert "prediction_requests_p2026_06" in _partitions(pg)  # nothing half-done
    dropped = prune_requests(pg, older_than=datetime(2026, 8, 1, tzinfo=UTC)).partitions_dropped
    assert dropped == tuple(f"{t}_p2026_{m:02d}" for m in (6, 7) for t in ("feedback", "prediction_requests"))


def test_sqlite_retention_deletes_old_rows_in_batches(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        times = _spread()
        ids = _log(engine, times)
        cutoff = datetime(2026, 9, 10, tzinfo=UTC)
        old = [rid for rid, at in zip(ids, times, strict=True) if at < cutoff]
        before = {r.id: r for r in fetch_requests(engine)}

        planned = prune_requests(engine, older_than=cutoff, dry_run=True, batch_rows=3)
        assert planned.rows_by_table == (("feedback", len(old)), ("prediction_requests", len(old)))
        assert count_rows(engine)["prediction_requests"] == len(ids)

        statements.clear()
        done = prune_requests(engine, older_than=cutoff, batch_rows=3)
        assert (done.backend, done.partitions_dropped) == ("sqlite", ())
        assert done.rows_deleted == 2 * len(old)  # every other request has 2 feedback records: as many as requests
        deletes = [s for s in statements if s.startswith("DELETE")]
        assert len(deletes) == (len(old) // 3 + 1) * 2  # batches of 3, a last short one per table
        kept = {r.id: r for r in fetch_requests(engine)}
        assert set(kept) == set(ids) - set(old)
        assert kept == {rid: before[rid] for rid in kept}
        assert count_rows(engine)["feedback"] == 2 * sum(1 for r in kept.values() if r.feedback_tags)
        assert ensure_partitions(engine, now=NOW, ahead=3) == []  # no partitions on SQLite
    finally:
        engine.dispose()


# --- the window query prunes to the newest partitions -----------------------------------------------------------------
def _statements(engine: Engine) -> tuple[list[tuple[str, Any]], Any]:
    seen: list[tuple[str, Any]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    return seen, listener


@pytest.mark.postgres
def test_the_window_query_reads_only_the_newest_partitions(pg: Engine) -> None:
    ensure_partitions(pg, now=MONTHS[0], ahead=6)
    # 40 requests a month, Jun .. Dec; the newest 30 all in December.
    times = [m + timedelta(hours=i) for m in MONTHS for i in range(40)]
    ids = _log(pg, times, feedback_every=3)
    with pg.begin() as conn:
        conn.execute(text("ANALYZE"))
    seen, listener = _statements(pg)
    # As the monitor asks: the newest N up to now (December 31 here); and with no upper bound.
    window = fetch_requests(pg, limit=30, until=datetime(2026, 12, 31, tzinfo=UTC))
    labelled = fetch_requests(pg, limit=5, with_feedback=True, until=datetime(2026, 12, 31, tzinfo=UTC))
    unbounded = fetch_requests(pg, limit=30)
    event.remove(pg, "before_cursor_execute", listener)
    assert [r.id for r in window] == [r.id for r in unbounded] == ids[-30:]
    assert [r.id for r in labelled] == [rid for i, rid in enumerate(ids) if i % 3 == 0][-5:]
    assert all(r.feedback_tags == (f"t{ids.index(r.id)}",) for r in labelled)

    selects = [(s, p) for s, p in seen if "row_number()" in s]  # the rows (the cutoff look-ups came before)
    assert len(selects) == 3
    partitions = _partitions(pg)
    later = {n for n in partitions if n.endswith("_default") or n[-7:] > "2026_12"}
    december = {"prediction_requests_p2026_12", "feedback_p2026_12"}
    for (statement, parameters), expected in zip(selects, [december, december, december | later], strict=True):
        with pg.connect() as conn:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        scanned = {name for name in partitions if f" on {name} " in plan}
        assert scanned == expected, plan  # June .. November: not even their indexes


# --- the migration converts an existing log ---------------------------------------------------------------------------
def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        requests = conn.execute(
            text(
                "SELECT id, created_at, title, body, body_format, predicted, model_version, latency_seconds "
                "FROM prediction_requests ORDER BY id"
            )
        ).all()
        feedback = conn.execute(
            text("SELECT id, request_id, tags, received_at, key_name FROM feedback ORDER BY id")
        ).all()
    return {"requests": [tuple(r) for r in requests], "feedback": [tuple(r) for r in feedback]}


def test_the_migration_converts_a_populated_log_and_back(database_url: str) -> None:
    upgrade_database(database_url, "0004")
    engine = make_engine(database_url)
    try:
        times = _spread()
        with engine.begin() as conn:
            # The 0004 schema, as an older tagwatch wrote it (no request_created_at; the ORM models are newer).
            for i, at in enumerate(times):
                req = logged_request(i, at=at)
                conn.execute(
                    text(
                        "INSERT INTO prediction_requests (id, created_at, title, body, body_format, predicted, "
                        "model_version, latency_seconds) VALUES (:id, :at, :title, :body, 'html', :predicted, '3', 0.5)"
                    ).bindparams(_at_param(engine)),
                    {
                        "id": req.id,
                        "at": at,
                        "title": req.title,
                        "body": req.body,
                        "predicted": '[{"tag": "a", "score": 0.5}]',
                    },
                )
                for k in range(i % 3):  # 0, 1 or 2 records; the later received counts
                    conn.execute(
                        text(
                            "INSERT INTO feedback (id, request_id, tags, received_at, key_name) "
                            "VALUES (:fid, :rid, :tags, :at, :key)"
                        ).bindparams(_at_param(engine)),
                        {
                            "fid": f"{i:016d}{k:016d}",
                            "rid": req.id,
                            "tags": f'["t{i}-{k}"]',
                            "at": at + timedelta(hours=k),
                            "key": f"k{k}",
                        },
                    )
        before = _snapshot(engine)
        latest_before = {r.id: (r.feedback_tags, r.feedback_key) for r in _fetch_v4(engine)}
        engine.dispose()

        upgrade_database(database_url)
        engine = make_engine(database_url)
        assert current_revision(engine) == head_revision()
        assert _snapshot(engine) == before  # no row lost or changed, ids included
        after = fetch_requests(engine)
        assert {r.id: (r.feedback_tags, r.feedback_key) for r in after} == latest_before
        assert len([r for r in after if r.feedback_tags]) == len([i for i in range(len(times)) if i % 3])
        with engine.connect() as conn:
            mismatched = conn.execute(
                text(
                    "SELECT count(*) FROM feedback f JOIN prediction_requests r ON r.id = f.request_id "
                    "WHERE r.created_at <> f.request_created_at"
                )
            ).scalar_one()
        assert mismatched == 0
        if engine.dialect.name == "postgresql":
            assert _where(engine, "prediction_requests") == {
                f"prediction_requests_p{m.strftime('%Y_%m')}": 4 for m in MONTHS
            }
        engine.dispose()

        _downgrade(database_url, "0004")
        engine = make_engine(database_url)
        assert current_revision(engine) == "0004"
        assert _snapshot(engine) == before
        engine.dispose()
        upgrade_database(database_url)
        engine = make_engine(database_url)
        assert _snapshot(engine) == before
    finally:
        engine.dispose()


def _at_param(engine: Engine) -> Any:
    from sqlalchemy import bindparam

    from tagwatch.db import UTCDateTime

    return bindparam("at", type_=UTCDateTime())


def _fetch_v4(engine: Engine) -> list[Any]:
    """The latest feedback of each request, ranked as the 0004 reader did (over the whole table)."""

    class Row:
        def __init__(self, rid: str, tags: Any, key: str | None) -> None:
            import json

            self.id = rid
            self.feedback_tags = tuple(json.loads(tags) if isinstance(tags, str) else tags) if tags else None
            self.feedback_key = key

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.id, f.tags, f.key_name FROM prediction_requests r LEFT JOIN (SELECT request_id, tags, "
                "key_name, row_number() OVER (PARTITION BY request_id ORDER BY received_at DESC, id DESC) AS rank "
                "FROM feedback) f ON f.request_id = r.id AND f.rank = 1"
            )
        ).all()
    return [Row(rid, tags, key) for rid, tags, key in rows]


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    from tagwatch.db import alembic_config

    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()

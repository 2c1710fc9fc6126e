"""The request-log schema on real SQLite and PostgreSQL: migrations, models, helpers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from tagwatch.db import (
    Feedback,
    PredictionRequest,
    count_rows,
    current_revision,
    fetch_requests,
    get_request,
    head_revision,
    make_engine,
    new_request_id,
    request_exists,
    upgrade_database,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _request(i: int, *, at: datetime | None = None, request_id: str | None = None) -> PredictionRequest:
    return PredictionRequest(
        id=request_id or new_request_id(),
        created_at=at or T0 + timedelta(minutes=i),
        title=f"How do I merge two dicts? #{i}",
        body="<p>I have <code>a = {1: 2}</code> and ünïcödé</p>",
        body_format="html",
        predicted=[{"tag": "python", "score": 0.91}, {"tag": "dictionary", "score": 0.4}],
        model_version="3",
        latency_seconds=0.0042,
    )


def test_upgrade_to_head_twice_from_any_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No alembic.ini in the working directory: the packaged migrations must be found on their own.
    monkeypatch.chdir(tmp_path)
    upgrade_database(database_url)
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"prediction_requests", "feedback", "alembic_version"} <= tables
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("prediction_requests")}
        assert "ix_prediction_requests_created_at" in indexes
        counts = count_rows(engine)
        assert {"prediction_requests", "feedback", "drift_runs", "alias_moves"} <= set(counts)
        assert not any(counts.values())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_models_match_the_migrations(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tagwatch.db import Base

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_concurrent_upgrades_do_not_collide(database_url: str) -> None:
    # Several service replicas starting at once on an empty database: one migrates, the others wait.
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            upgrade_database(database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_rows_round_trip(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        paris = timezone(timedelta(hours=1))
        created = datetime(2025, 3, 1, 13, 30, 15, 123456, tzinfo=paris)
        with Session(engine) as session:
            req = _request(0, at=created)
            session.add(req)
            session.flush()
            session.add(Feedback(request_id=req.id, tags=["python", "dictionary"], received_at=T0, key_name="replay"))
            session.commit()
            request_id = req.id
        with Session(engine) as session:
            got = get_request(session, request_id=request_id)
            assert got is not None
            # Same instant, always handed back in UTC, on SQLite too.
            assert got.created_at == created
            assert got.created_at.tzinfo == UTC
            assert got.title == "How do I merge two dicts? #0"
            assert got.body == "<p>I have <code>a = {1: 2}</code> and ünïcödé</p>"
            assert got.body_format == "html"
            assert got.predicted == [{"tag": "python", "score": 0.91}, {"tag": "dictionary", "score": 0.4}]
            assert got.model_version == "3"
            assert got.latency_seconds == pytest.approx(0.0042)
            (fb,) = got.feedback
            assert fb.tags == ["python", "dictionary"]
            assert fb.received_at == T0
            assert fb.key_name == "replay"
            assert len(fb.id) == 32  # uuid4 hex by default
            assert get_request(session, request_id="0" * 32) is None
        assert request_exists(engine, request_id=request_id)
        assert not request_exists(engine, request_id="0" * 32)
        counts = count_rows(engine)
        assert (counts["prediction_requests"], counts["feedback"]) == (1, 1)
    finally:
        engine.dispose()


def test_naive_datetimes_are_refused(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            session.add(_request(0, at=datetime(2025, 3, 1, 12, 0)))
            with pytest.raises(StatementError, match="naive"):
                session.commit()
        with pytest.raises(ValueError, match="naive"):
            fetch_requests(engine, since=datetime(2025, 3, 1))
    finally:
        engine.dispose()


def test_feedback_needs_its_request(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            session.add(Feedback(request_id=new_request_id(), tags=["python"], received_at=T0))
            with pytest.raises(IntegrityError):
                session.commit()
    finally:
        engine.dispose()


def test_fetch_requests_window_limit_and_feedback(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            reqs = [_request(i) for i in range(10)]
            session.add_all(reqs)
            session.flush()
            for i in (2, 5, 7):
                at = T0 + timedelta(hours=1)
                session.add(Feedback(request_id=reqs[i].id, tags=[f"tag{i}"], received_at=at))
            session.commit()
            ids = [r.id for r in reqs]

        everything = fetch_requests(engine)
        assert [r.id for r in everything] == ids  # oldest first
        assert everything[2].feedback_tags == ("tag2",)
        assert everything[3].feedback_tags is None
        assert everything[0].predicted == (("python", 0.91), ("dictionary", 0.4))
        assert everything[0].created_at == T0

        window = fetch_requests(engine, since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=8))
        assert [r.id for r in window] == ids[3:8]  # since inclusive, until exclusive

        latest = fetch_requests(engine, limit=3)
        assert [r.id for r in latest] == ids[7:]  # the most recent three, still oldest first

        labelled = fetch_requests(engine, with_feedback=True)
        assert [r.id for r in labelled] == [ids[2], ids[5], ids[7]]
        assert [r.feedback_tags for r in labelled] == [("tag2",), ("tag5",), ("tag7",)]
        last = fetch_requests(engine, with_feedback=True, since=T0 + timedelta(minutes=6), limit=1)
        assert [r.id for r in last] == [ids[7]]
        with pytest.raises(ValueError, match="limit"):
            fetch_requests(engine, limit=-1)
    finally:
        engine.dispose()


def test_feedback_is_append_only_and_the_latest_record_counts(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            reqs = [_request(i) for i in range(3)]
            session.add_all(reqs)
            session.flush()
            a, b, c = (r.id for r in reqs)
            session.add_all(
                [
                    # a: three records; the newest received counts, whatever the order they were stored in.
                    Feedback(id="1" * 32, request_id=a, tags=["first"], received_at=T0, key_name="replay"),
                    Feedback(id="3" * 32, request_id=a, tags=["newest"], received_at=T0 + timedelta(hours=2)),
                    Feedback(id="2" * 32, request_id=a, tags=["middle"], received_at=T0 + timedelta(hours=1)),
                    # b: two records received at the same instant (only a replay makes that): the greater id counts.
                    Feedback(id="4" * 32, request_id=b, tags=["tie-low"], received_at=T0, key_name="old"),
                    Feedback(id="5" * 32, request_id=b, tags=["tie-high"], received_at=T0, key_name="new"),
                ]
            )
            session.commit()
        assert count_rows(engine)["feedback"] == 5
        by_id = {r.id: r for r in fetch_requests(engine)}
        assert (by_id[a].feedback_tags, by_id[a].feedback_key) == (("newest",), None)
        assert by_id[a].feedback_received_at == T0 + timedelta(hours=2)
        assert (by_id[b].feedback_tags, by_id[b].feedback_key) == (("tie-high",), "new")
        assert (by_id[c].feedback_tags, by_id[c].feedback_key) == (None, None)
        labelled = fetch_requests(engine, with_feedback=True)
        assert [r.id for r in labelled] == [a, b]  # one row per request, however many records
        with Session(engine) as session:
            assert [f.tags for f in session.get_one(PredictionRequest, a).feedback] == [
                ["first"],
                ["middle"],
                ["newest"],
            ]
            # The id is the key: the same record twice is refused (the writer skips it: ON CONFLICT DO NOTHING).
            session.add(Feedback(id="1" * 32, request_id=a, tags=["again"], received_at=T0))
            with pytest.raises(IntegrityError):
                session.commit()
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("feedback")}
        assert not indexes["ix_feedback_request_id"]["unique"]
        assert inspect(engine).get_pk_constraint("feedback")["constrained_columns"] == ["id"]
    finally:
        engine.dispose()


def test_sqlite_engine_settings(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, busy_timeout=2.5)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_in_memory_sqlite_migrated_through_its_engine() -> None:
    engine = make_engine("sqlite://")
    try:
        upgrade_database(engine)
        with Session(engine) as session:
            session.add(_request(0))
            session.commit()
        counts = count_rows(engine)
        assert (counts["prediction_requests"], counts["feedback"]) == (1, 0)
        with engine.connect() as conn:  # migrating switched enforcement off only for the migration itself
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_column_types(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            result = conn.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                    "WHERE table_name IN ('prediction_requests', 'feedback')"
                )
            )
            types = {str(name): str(data_type) for name, data_type in result}
        assert types["prediction_requests.predicted"] == "jsonb"
        assert types["feedback.tags"] == "jsonb"
        assert types["prediction_requests.created_at"] == "timestamp with time zone"
        assert types["feedback.received_at"] == "timestamp with time zone"
        assert types["feedback.id"] == types["feedback.key_name"] == "character varying"
    finally:
        engine.dispose()


def test_urls_are_checked() -> None:
    engine = make_engine("postgresql://user:secret@db.invalid:5432/tagwatch")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()
    with pytest.raises(ValueError, match="psycopg 3"):
        make_engine("postgresql+psycopg2://user:secret@db.invalid/tagwatch")
    with pytest.raises(ValueError, match="unsupported database") as info:
        make_engine("mysql://user:secret@db.invalid/tagwatch")
    assert "secret" not in str(info.value)


def test_new_request_ids_are_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)

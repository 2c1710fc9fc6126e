"""Schema migrations on real SQLite and PostgreSQL: packaged, idempotent, safe when several processes start."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from tagwatch.db import count_rows, current_revision, head_revision, make_engine, upgrade_database
from tagwatch.locks import MIGRATION_LOCK_KEY, MigrationLock
from tests.tagwatch.db.support import logged_request


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
    from tagwatch.db.partitions import include_name

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
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


def test_in_memory_sqlite_migrated_through_its_engine() -> None:
    engine = make_engine("sqlite://")
    try:
        upgrade_database(engine)
        with Session(engine) as session:
            session.add(logged_request(0))
            session.commit()
        counts = count_rows(engine)
        assert (counts["prediction_requests"], counts["feedback"]) == (1, 0)
        with engine.connect() as conn:  # migrating switched enforcement off only for the migration itself
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_the_migration_lock_keeps_its_key_and_file(sqlite_url: str, tmp_path: Path) -> None:
    # The key and the lock file of earlier versions: a process of an older version starting at the same time waits.
    assert zlib.crc32(b"tagwatch-alembic-upgrade") == MIGRATION_LOCK_KEY
    engine = make_engine(sqlite_url)
    try:
        first, second = MigrationLock(engine), MigrationLock(engine)
        assert first.acquire()
        try:
            assert (tmp_path / "tagwatch.db.migrate.lock").exists()
            assert not second.acquire(wait=0.2)  # another process (or thread) would wait here
        finally:
            first.release()
        assert second.acquire()
        second.release()
    finally:
        engine.dispose()

"""Engines: SQLite pragmas, URL checks."""

from __future__ import annotations

import pytest

from tagwatch.db import make_engine


def test_sqlite_engine_settings(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, busy_timeout=2.5)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
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


@pytest.mark.postgres
def test_postgres_pool_is_bounded_by_the_settings(postgres_url: str) -> None:
    from sqlalchemy.pool import QueuePool

    from tagwatch.settings import Settings

    settings = Settings(database_url=postgres_url, db_pool_size=2, db_max_overflow=1)
    engine = make_engine(settings.db_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        # At most pool + overflow connections at once per replica (docs/scaling.md counts them against max_connections).
        assert (pool.size(), pool._max_overflow) == (2, 1)
        held = [engine.connect() for _ in range(3)]
        assert pool.checkedout() == 3
        for conn in held:
            conn.close()
    finally:
        engine.dispose()

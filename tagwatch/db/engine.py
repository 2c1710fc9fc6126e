"""Engines for the request-log database: URL checks and the settings each backend needs (SQLite, PostgreSQL)."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool


def normalize_url(url: str | URL) -> URL:
    """The URL with the psycopg 3 driver for PostgreSQL; ValueError for any other database or driver."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend in ("postgres", "postgresql"):
        driver = u.get_driver_name()
        if u.drivername in ("postgres", "postgresql"):
            u = u.set(drivername="postgresql+psycopg")
        elif driver != "psycopg":
            raise ValueError(
                f"unsupported PostgreSQL driver {driver!r} in {u.render_as_string(hide_password=True)}: "
                "tagwatch uses psycopg 3 (postgresql+psycopg://...)"
            )
    elif backend != "sqlite":
        raise ValueError(
            f"unsupported database {u.render_as_string(hide_password=True)}: use sqlite:///path or "
            "postgresql+psycopg://user:password@host:port/database"
        )
    return u


def is_memory_sqlite(u: URL) -> bool:
    """Whether ``u`` is an in-memory SQLite database (one per connection unless shared)."""
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def make_engine(
    url: str | URL,
    *,
    busy_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    foreign_keys: bool = True,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Engine:
    """An engine for the request-log database.

    SQLite: WAL journal (readers never block the writer thread), a busy timeout instead of instant "database
    is locked" errors, foreign keys enforced (off by default in SQLite), usable from any thread.
    PostgreSQL (psycopg 3 only; the request log uses its COPY support): pre-ping so connections killed by a
    restart or a proxy are replaced instead of failing the next write, a connect timeout and TCP keepalives
    so a vanished server is noticed in seconds, not minutes; at most ``pool_size + max_overflow`` connections
    (many replicas x the pool must fit the server's max_connections: docs/scaling.md).
    """
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        memory = is_memory_sqlite(u)
        if not memory and u.database:
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            u,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            # One shared connection for :memory:, else every connection would see its own empty database.
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            try:
                if not memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    # WAL makes NORMAL durable across application crashes; only an OS crash can lose the last
                    # transactions.
                    cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
                cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            finally:
                cursor.close()

        return engine
    return create_engine(
        u,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={
            "connect_timeout": max(1, math.ceil(connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "tagwatch",
        },
    )


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))

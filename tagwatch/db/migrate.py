"""Schema migrations: the packaged Alembic scripts, run in code under a lock so concurrent first starts are safe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import URL, Connection

from tagwatch.db.engine import make_engine, normalize_url
from tagwatch.locks import migration_lock

if TYPE_CHECKING:
    from alembic.config import Config

# tagwatch/migrations, beside this package (shipped as package data).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        # Kept out of the ini options: ConfigParser would treat a '%' in a password as interpolation.
        cfg.attributes["url"] = normalize_url(url)
    return cfg


def _upgrade_on(conn: Connection, cfg: Config, revision: str) -> None:
    from alembic import command

    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def upgrade_database(url: str | URL | Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest) with Alembic.

    Idempotent, and safe when several processes start at once: they take the migration lock first
    (``tagwatch.locks.MigrationLock``: a PostgreSQL advisory lock, or a lock file next to the SQLite database), so
    one migrates and the others then find it done. Pass an ``Engine`` to migrate an in-memory SQLite database that
    the caller keeps using.
    """
    if isinstance(url, Engine):
        engine, own_engine = url, False
    else:
        # Foreign keys off while migrating SQLite: Alembic's batch mode re-creates tables, and dropping a
        # parent table with enforcement on would cascade-delete the children.
        engine, own_engine = make_engine(normalize_url(url), foreign_keys=False), True
    cfg = alembic_config()
    try:
        with migration_lock(engine), engine.connect() as conn:
            if engine.url.get_backend_name() == "postgresql":
                try:
                    _upgrade_on(conn, cfg, revision)
                    conn.commit()
                finally:
                    conn.rollback()
            else:
                enforced = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
                try:
                    _upgrade_on(conn, cfg, revision)
                    conn.commit()
                finally:
                    conn.rollback()
                    conn.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
                    conn.commit()
    finally:
        if own_engine:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head

"""Alembic environment for the request-log database.

``tagwatch.db.upgrade_database`` runs it with a connection in ``config.attributes["connection"]``. Run by the
``alembic`` command instead (``alembic -c tagwatch/migrations/alembic.ini ...``), it connects to
``TAGWATCH_DATABASE_URL`` (or the settings' default).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tagwatch.db import Base, make_engine
from tagwatch.db.partitions import include_name

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url is not None:
        return str(url.render_as_string(hide_password=False))
    from tagwatch.settings import get_settings

    return get_settings().db_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: autogenerate batch operations that re-create the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The request log's partitions (PostgreSQL) belong to their parent tables, not to the models.
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), foreign_keys=False)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

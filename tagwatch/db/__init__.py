"""The request-log database: the schema (``schema``), engines (``engine``), Alembic migrations (``migrate``), reading
logged requests (``requests``) and the log writer's statements (``requestlog``).

The names callers use are re-exported here (``from tagwatch.db import make_engine``); importing the package loads
SQLAlchemy only (Alembic is imported when a migration runs).
"""

from tagwatch.db.engine import is_memory_sqlite, make_engine, normalize_url, ping
from tagwatch.db.migrate import MIGRATIONS_DIR, alembic_config, current_revision, head_revision, upgrade_database
from tagwatch.db.requests import (
    LoggedRequest,
    count_rows,
    feedback_sources,
    fetch_requests,
    get_request,
    new_request_id,
    request_exists,
)
from tagwatch.db.schema import (
    NAMING_CONVENTION,
    AliasMove,
    Base,
    DriftRun,
    Feedback,
    JSONType,
    PredictionRequest,
    UTCDateTime,
)

__all__ = [
    "MIGRATIONS_DIR",
    "NAMING_CONVENTION",
    "AliasMove",
    "Base",
    "DriftRun",
    "Feedback",
    "JSONType",
    "LoggedRequest",
    "PredictionRequest",
    "UTCDateTime",
    "alembic_config",
    "count_rows",
    "current_revision",
    "feedback_sources",
    "fetch_requests",
    "get_request",
    "head_revision",
    "is_memory_sqlite",
    "make_engine",
    "new_request_id",
    "normalize_url",
    "ping",
    "request_exists",
    "upgrade_database",
]

# The retrain queue's table is part of the schema: importing the package registers it on Base.metadata (migrations'
# autogenerate and the schema checks compare against it). Last, as it builds on the names above.
import tagwatch.retrain_queue  # noqa: F401

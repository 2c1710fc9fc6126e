"""The request-log database: typed models, the engine factory, Alembic migrations and small read helpers.

The schema is created and changed only by the Alembic migrations in ``tagwatch/migrations`` (never by
``create_all``), so every database, SQLite or PostgreSQL, has the same history.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from tagwatch.data import Question

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# JSON everywhere, JSONB on PostgreSQL (indexable, compact, validated on write).
JSONType = JSON().with_variant(JSONB(), "postgresql")

# Stable names for constraints and indexes: Alembic batch mode on SQLite needs them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Any 64-bit constant shared by every process that migrates the same PostgreSQL database.
_MIGRATION_LOCK_KEY = zlib.crc32(b"tagwatch-alembic-upgrade")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type: values are stored as naive UTC and come back with ``tzinfo=UTC``, so
    comparisons and round trips behave as on PostgreSQL. Naive datetimes are refused, not guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PredictionRequest(Base):
    """One answered prediction: the question as received and the tags suggested for it."""

    __tablename__ = "prediction_requests"

    # uuid4().hex, made by the service (see ``new_request_id``).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # 'html' | 'markdown' | 'text' | 'none', or NULL when the client did not say (the cleaner detects it).
    body_format: Mapped[str | None] = mapped_column(String(16))
    # [{"tag": str, "score": float}, ...], highest score first.
    predicted: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    # NULL when the served model came from outside the registry (no version).
    model_version: Mapped[str | None] = mapped_column(String(64))
    latency_seconds: Mapped[float] = mapped_column(Float)

    feedback: Mapped[list[Feedback]] = relationship(back_populates="request", order_by="Feedback.received_at")


class Feedback(Base):
    """The true tags of a logged request, as reported later by a client: append-only, the latest record counts.

    Records are only ever inserted (the API's database role may not UPDATE or DELETE), so every label stays
    attributable: ``key_name`` is the name of the API key that sent it (NULL when feedback was open).
    """

    __tablename__ = "feedback"

    # uuid4().hex, made by the service when it accepts the feedback (a replayed spill row is stored once).
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: uuid.uuid4().hex)
    request_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("prediction_requests.id", ondelete="CASCADE"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_name: Mapped[str | None] = mapped_column(String(64))

    request: Mapped[PredictionRequest] = relationship(back_populates="feedback")


class DriftRun(Base):
    """One monitor run: the window it looked at, every score, threshold and decision, and what followed."""

    __tablename__ = "drift_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # 'ok' | 'skipped' (window too small) | 'failed'
    status: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    window_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    n_current: Mapped[int] = mapped_column(Integer, default=0)
    n_labelled: Mapped[int] = mapped_column(Integer, default=0)
    data_score: Mapped[float | None] = mapped_column(Float)
    data_threshold: Mapped[float | None] = mapped_column(Float)
    data_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    concept_score: Mapped[float | None] = mapped_column(Float)
    concept_threshold: Mapped[float | None] = mapped_column(Float)
    concept_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    feature_score: Mapped[float | None] = mapped_column(Float)
    feature_threshold: Mapped[float | None] = mapped_column(Float)
    feature_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"data": bool, "concept": bool, "feature": bool}: confirmed by the policy (N consecutive windows)
    confirmed: Mapped[dict[str, bool]] = mapped_column(JSONType, default=dict)
    retrain_triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The retrain that followed, if any: challenger version, metrics, promoted or not, why.
    retrain: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    report_path: Mapped[str | None] = mapped_column(String(512))
    # The whole detection result (monitor.detect.DriftResult.to_dict()).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)


class AliasMove(Base):
    """One move of a registry alias (champion, previous, challenger): when, from which version to which, why, by whom.

    Written by whoever moves the alias (the monitor's retrain, the CLI) right after the move; read by
    ``tagwatch history``, the reports index and Grafana's annotations.
    """

    __tablename__ = "alias_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(64))
    # NULL: the alias was not set before (from) / was removed (to).
    from_version: Mapped[str | None] = mapped_column(String(64))
    to_version: Mapped[str | None] = mapped_column(String(64))
    # What caused it: "init", "drift: data, concept", "follow-up", "rollback", "manual", ...
    trigger: Mapped[str] = mapped_column(Text)
    # Who: "monitor", "cli:<user>", or an API key's name.
    actor: Mapped[str] = mapped_column(String(128))


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """A logged request with its feedback (if any), detached from any session: what drift jobs read."""

    id: str
    created_at: datetime
    title: str
    body: str
    body_format: str | None
    predicted: tuple[tuple[str, float], ...]
    model_version: str | None
    latency_seconds: float
    feedback_tags: tuple[str, ...] | None
    feedback_received_at: datetime | None
    # The name of the API key that sent the feedback (None: sent while feedback was open, or no feedback).
    feedback_key: str | None = None

    def as_question(self) -> Question:
        """The request as a question (id ``r:<request id>``); its feedback (if any) as the true tags."""
        return Question(
            id=f"r:{self.id}",
            created_at=self.created_at,
            title=self.title,
            body=self.body,
            body_format=self.body_format or "none",
            tags=tuple(self.feedback_tags or ()),
        )


def feedback_sources(rows: Sequence[LoggedRequest]) -> dict[str, int]:
    """How many of the labelled requests each API key labelled ("(open)": feedback sent while keys were off)."""
    counts: dict[str, int] = {}
    for r in rows:
        name = r.feedback_key or "(open)"
        counts[name] = counts.get(name, 0) + 1
    return counts


def new_request_id() -> str:
    """A fresh request id: 32 lowercase hex characters (uuid4)."""
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------------- engines


def _normalize_url(url: str | URL) -> URL:
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


def _is_memory_sqlite(u: URL) -> bool:
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def make_engine(
    url: str | URL, *, busy_timeout: float = 5.0, connect_timeout: float = 5.0, foreign_keys: bool = True
) -> Engine:
    """An engine for the request-log database.

    SQLite: WAL journal (readers never block the writer thread), a busy timeout instead of instant "database
    is locked" errors, foreign keys enforced (off by default in SQLite), usable from any thread.
    PostgreSQL (psycopg 3 only; the request log uses its COPY support): pre-ping so connections killed by a
    restart or a proxy are replaced instead of failing the next write, a connect timeout and TCP keepalives
    so a vanished server is noticed in seconds, not minutes.
    """
    u = _normalize_url(url)
    if u.get_backend_name() == "sqlite":
        memory = _is_memory_sqlite(u)
        if not memory and u.database:
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            u,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            # One shared connection for :memory:, else every connection would see its own empty database.
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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


# ------------------------------------------------------------------------------------------------- migrations


def alembic_config(url: str | URL | None = None) -> Any:
    """An Alembic ``Config`` for the packaged migrations, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        # Kept out of the ini options: ConfigParser would treat a '%' in a password as interpolation.
        cfg.attributes["url"] = _normalize_url(url)
    return cfg


@contextlib.contextmanager
def _sqlite_migration_lock(u: URL) -> Iterator[None]:
    if _is_memory_sqlite(u) or not u.database:
        yield
        return
    lock_path = Path(u.database).expanduser().with_name(Path(u.database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent first starts are then the operator's care
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _upgrade_on(conn: Connection, cfg: Any, revision: str) -> None:
    from alembic import command

    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def upgrade_database(url: str | URL | Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest) with Alembic.

    Idempotent, and safe when several processes start at once: they take a lock first (a PostgreSQL advisory
    lock, or a lock file next to the SQLite database), so one migrates and the others then find it done.
    Pass an ``Engine`` to migrate an in-memory SQLite database that the caller keeps using.
    """
    if isinstance(url, Engine):
        engine, own_engine = url, False
    else:
        u = _normalize_url(url)
        # Foreign keys off while migrating SQLite: Alembic's batch mode re-creates tables, and dropping a
        # parent table with enforcement on would cascade-delete the children.
        engine, own_engine = make_engine(u, foreign_keys=False), True
    u = engine.url
    cfg = alembic_config()
    try:
        if u.get_backend_name() == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()  # a session-level lock: held across the migration's own transaction
                try:
                    _upgrade_on(conn, cfg, revision)
                    conn.commit()
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                    conn.commit()
        else:
            with _sqlite_migration_lock(u), engine.connect() as conn:
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


# ---------------------------------------------------------------------------------------------------- helpers


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name}={value.isoformat()} is naive: give a timezone-aware (UTC) datetime")


def get_request(session: Session, *, request_id: str) -> PredictionRequest | None:
    """The logged request with this id, or None."""
    return session.get(PredictionRequest, request_id)


def request_exists(engine: Engine, *, request_id: str) -> bool:
    """Whether a request with this id is in the database (rows still queued in a writer are not)."""
    with engine.connect() as conn:
        found = conn.execute(select(PredictionRequest.id).where(PredictionRequest.id == request_id).limit(1)).first()
    return found is not None


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per table of the schema, e.g. ``{"prediction_requests": 10, "feedback": 2}``."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    return counts


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp read through a subquery (no column type applied): UTC-aware, as ``UTCDateTime`` gives."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns the stored text when the column type is not known
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fetch_requests(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    with_feedback: bool = False,
) -> list[LoggedRequest]:
    """Logged requests with ``since <= created_at < until``, oldest first, each with its feedback if any.

    ``limit`` keeps the most recent ``limit`` requests of the window (a drift job wants the latest traffic).
    ``with_feedback=True`` keeps only requests that received feedback (for measuring live accuracy).
    """
    _require_aware("since", since)
    _require_aware("until", until)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pr = PredictionRequest
    # The latest feedback record of each request (records are append-only; the newest received wins, then the
    # later inserted id on a tie, which only a replay could make).
    ranked = select(
        Feedback.request_id,
        Feedback.tags,
        Feedback.received_at,
        Feedback.key_name,
        func.row_number()
        .over(partition_by=Feedback.request_id, order_by=(Feedback.received_at.desc(), Feedback.id.desc()))
        .label("rank"),
    ).subquery()
    fb = select(ranked).where(ranked.c.rank == 1).subquery()
    stmt = select(pr, fb.c.tags, fb.c.received_at, fb.c.key_name)
    on = fb.c.request_id == pr.id
    stmt = stmt.join(fb, on) if with_feedback else stmt.outerjoin(fb, on)
    if since is not None:
        stmt = stmt.where(pr.created_at >= since)
    if until is not None:
        stmt = stmt.where(pr.created_at < until)
    if limit is not None:
        stmt = stmt.order_by(pr.created_at.desc(), pr.id.desc()).limit(limit)
    else:
        stmt = stmt.order_by(pr.created_at, pr.id)
    with Session(engine) as session:
        rows = session.execute(stmt).all()
    out = [
        LoggedRequest(
            id=req.id,
            created_at=req.created_at,
            title=req.title,
            body=req.body,
            body_format=req.body_format,
            predicted=tuple((str(p["tag"]), float(p["score"])) for p in req.predicted),
            model_version=req.model_version,
            latency_seconds=req.latency_seconds,
            feedback_tags=tuple(tags) if tags is not None else None,
            feedback_received_at=_aware(received_at),
            feedback_key=key_name,
        )
        for req, tags, received_at, key_name in rows
    ]
    if limit is not None:
        out.reverse()
    return out

"""The request-log database schema: the tables as typed SQLAlchemy models, and the column types they share.

The schema is created and changed only by the Alembic migrations in ``tagwatch/migrations`` (never by
``create_all``), so every database, SQLite or PostgreSQL, has the same history.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
    """One answered prediction: the question as received and the tags suggested for it.

    On PostgreSQL the table is partitioned by month of ``created_at`` (migration 0005, ``tagwatch.db.partitions``):
    the primary key holds the partition key, and a month leaves the log as one dropped partition.
    """

    __tablename__ = "prediction_requests"
    __table_args__ = ({"postgresql_partition_by": "RANGE (created_at)"},)

    # uuid4().hex, made by the service (see ``new_request_id``).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True, index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # 'html' | 'markdown' | 'text' | 'none', or NULL when the client did not say (the cleaner detects it).
    body_format: Mapped[str | None] = mapped_column(String(16))
    # [{"tag": str, "score": float}, ...], highest score first.
    predicted: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    # NULL when the served model came from outside the registry (no version).
    model_version: Mapped[str | None] = mapped_column(String(64))
    latency_seconds: Mapped[float] = mapped_column(Float)

    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="request",
        order_by="Feedback.received_at",
        primaryjoin="and_(PredictionRequest.id == foreign(Feedback.request_id), "
        "PredictionRequest.created_at == foreign(Feedback.request_created_at))",
    )


def _request_created_at(context: DefaultExecutionContext) -> datetime | None:
    """The ``created_at`` of the feedback's request, looked up when an insert does not give it (ORM code, tests).

    None (refused: the column is NOT NULL) when no such request is stored: with no foreign key (see ``Feedback``)
    this is what keeps such an insert from storing feedback for an unknown request.
    """
    request_id = context.get_current_parameters()["request_id"]
    found: datetime | None = context.connection.execute(
        select(PredictionRequest.created_at).where(PredictionRequest.id == request_id).limit(1)
    ).scalar()
    return found


class Feedback(Base):
    """The true tags of a logged request, as reported later by a client: append-only, the latest record counts.

    Records are only ever inserted (the API's database role may not UPDATE or DELETE), so every label stays
    attributable: ``key_name`` is the name of the API key that sent it (NULL when feedback was open).

    ``request_created_at`` is the request's ``created_at``: on PostgreSQL feedback is partitioned by it, so a
    request's feedback sits in the same month as the request and leaves with it. There is no foreign key: one that
    references a partitioned table makes every drop of a month scan that month's requests under an exclusive lock
    on the whole table (migration 0005 says more); the writer stores feedback only for stored requests instead.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        # The newest labelled requests, and the feedback of a window of requests, by time (partition pruning).
        Index("ix_feedback_request_created_at", "request_created_at", "request_id"),
        {"postgresql_partition_by": "RANGE (request_created_at)"},
    )

    # uuid4().hex, made by the service when it accepts the feedback (a replayed spill row is stored once).
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: uuid.uuid4().hex)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    request_created_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True, default=_request_created_at)
    tags: Mapped[list[str]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_name: Mapped[str | None] = mapped_column(String(64))

    request: Mapped[PredictionRequest] = relationship(
        back_populates="feedback",
        primaryjoin="and_(PredictionRequest.id == foreign(Feedback.request_id), "
        "PredictionRequest.created_at == foreign(Feedback.request_created_at))",
    )


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
    # The whole detection result (monitor.drift.types.DriftResult.to_dict()).
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

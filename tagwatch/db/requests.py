"""Reading the request log: logged requests with their latest feedback, detached from any session, and small
look-ups (does a request exist, how many rows per table, a fresh request id)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tagwatch.data import Question
from tagwatch.db.schema import Base, Feedback, PredictionRequest


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


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name}={value.isoformat()} is naive: give a timezone-aware (UTC) datetime")


def get_request(session: Session, *, request_id: str) -> PredictionRequest | None:
    """The logged request with this id, or None."""
    found: PredictionRequest | None = session.scalars(
        select(PredictionRequest).where(PredictionRequest.id == request_id).limit(1)
    ).first()
    return found


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


def _newest_cutoff(
    session: Session, *, limit: int, since: datetime | None, until: datetime | None, with_feedback: bool
) -> datetime | None:
    """The ``created_at`` of the ``limit``-th newest request of the window (of the labelled ones with
    ``with_feedback``), found through an index on time; None when the window holds fewer."""
    if with_feedback:
        # Distinct requests among the feedback records, newest first (ix_feedback_request_created_at).
        key = Feedback.request_created_at
        inner = select(key).group_by(key, Feedback.request_id)
    else:
        key = PredictionRequest.created_at
        inner = select(key)
    if since is not None:
        inner = inner.where(key >= since)
    if until is not None:
        inner = inner.where(key < until)
    stmt = inner.order_by(key.desc()).offset(limit - 1).limit(1)
    found: datetime | None = session.execute(stmt).scalar()
    return found


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

    With ``limit``, the time of the ``limit``-th newest request is looked up first (an index scan from the newest
    end) and the rows are then selected from that time on: a bound on ``created_at`` the planner knows, so on
    PostgreSQL it reads only the newest month partitions, not every month's index. The feedback ranked is that of
    the window's requests only, bounded the same way (feedback is partitioned by its request's ``created_at``).
    """
    _require_aware("since", since)
    _require_aware("until", until)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if limit == 0:
        return []
    pr = PredictionRequest
    with Session(engine) as session:
        lower = since
        if limit is not None:
            cutoff = _newest_cutoff(session, limit=limit, since=since, until=until, with_feedback=with_feedback)
            if cutoff is not None:
                lower = cutoff  # >= since: the cutoff was found inside the window
        # The latest feedback record of each request of the window (records are append-only; the newest received
        # wins, then the later inserted id on a tie, which only a replay could make).
        ranked_q = select(
            Feedback.request_id,
            Feedback.request_created_at,
            Feedback.tags,
            Feedback.received_at,
            Feedback.key_name,
            func.row_number()
            .over(partition_by=Feedback.request_id, order_by=(Feedback.received_at.desc(), Feedback.id.desc()))
            .label("rank"),
        )
        if lower is not None:
            ranked_q = ranked_q.where(Feedback.request_created_at >= lower)
        if until is not None:
            ranked_q = ranked_q.where(Feedback.request_created_at < until)
        ranked = ranked_q.subquery()
        fb = select(ranked).where(ranked.c.rank == 1).subquery()
        # Columns, not ORM entities: a window is read once and handed out as LoggedRequest, and building 1,000
        # mapped objects (identity map, attribute instrumentation) cost more than the query itself.
        stmt = select(
            pr.id,
            pr.created_at,
            pr.title,
            pr.body,
            pr.body_format,
            pr.predicted,
            pr.model_version,
            pr.latency_seconds,
            fb.c.tags,
            fb.c.received_at,
            fb.c.key_name,
        )
        on = (fb.c.request_id == pr.id) & (fb.c.request_created_at == pr.created_at)
        stmt = stmt.join(fb, on) if with_feedback else stmt.outerjoin(fb, on)
        if lower is not None:
            stmt = stmt.where(pr.created_at >= lower)
        if until is not None:
            stmt = stmt.where(pr.created_at < until)
        if limit is not None:
            stmt = stmt.order_by(pr.created_at.desc(), pr.id.desc()).limit(limit)
        else:
            stmt = stmt.order_by(pr.created_at, pr.id)
        rows = session.execute(stmt).all()
    out = [
        LoggedRequest(
            id=rid,
            created_at=created_at,
            title=title,
            body=body,
            body_format=body_format,
            predicted=tuple((str(p["tag"]), float(p["score"])) for p in predicted),
            model_version=model_version,
            latency_seconds=latency_seconds,
            feedback_tags=tuple(tags) if tags is not None else None,
            feedback_received_at=_aware(received_at),
            feedback_key=key_name,
        )
        for (
            rid,
            created_at,
            title,
            body,
            body_format,
            predicted,
            model_version,
            latency_seconds,
            tags,
            received_at,
            key_name,
        ) in rows
    ]
    if limit is not None:
        out.reverse()
    return out

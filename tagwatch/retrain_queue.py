"""Retrain requests: the monitor files them, a retrain runner claims and runs them (one row per request).

A request is ``pending`` when filed, ``running`` once a runner claimed it, and ends ``promoted``, ``rejected``,
``held`` (feedback suspected of poisoning), ``failed`` (an error, or its runner ended during the retrain) or
``skipped`` (the champion it was filed against is no longer the champion). Every runner holds the promotion lock
(``tagwatch.locks.PROMOTION``) while it runs a request, so a request still ``running`` when a runner holds that lock
was left by a runner that died: ``mark_stale_running`` marks it failed, once; it is never run again.

A request filed by a drift run mirrors its state into that run's ``drift_runs.retrain`` JSON (the dashboards and the
reports index read it there), in the same transaction as the request's own change. It is claimable only once that
drift run has ended, so the run's last write cannot overwrite what the runner mirrored.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, ForeignKey, Integer, String, Text, exists, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tagwatch.db import Base, DriftRun, JSONType, UTCDateTime

PENDING = "pending"
RUNNING = "running"
PROMOTED = "promoted"
REJECTED = "rejected"
HELD = "held"
FAILED = "failed"
SKIPPED = "skipped"
OPEN = (PENDING, RUNNING)
FINISHED = (PROMOTED, REJECTED, HELD, FAILED, SKIPPED)
# drift_runs.retrain["result"] of a request whose runner ended during the retrain (its request: failed).
INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "interrupted: the runner ended during the retrain"
# drift_runs.status of a run in progress (monitor.job): its request is not claimable yet.
_DRIFT_RUN_RUNNING = "running"


class RetrainRequest(Base):
    """One retrain asked for: by whom and why, against which champion and data, who ran it and how it ended."""

    __tablename__ = "retrain_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Why: the policy's trigger ("drift: data, concept", "follow-up") or "manual".
    reason: Mapped[str] = mapped_column(Text)
    # The drift run that filed it (NULL: filed by hand, `tagwatch retrain`).
    drift_run_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("drift_runs.id", ondelete="SET NULL"))
    # Who asked: "monitor", "cli:<user>"; the alias moves of its promotion are recorded under this actor.
    requested_by: Mapped[str] = mapped_column(String(128))
    # The champion when it was filed: a request whose champion has moved since is skipped.
    parent_version: Mapped[str | None] = mapped_column(String(64))
    # The labelled requests it trains on: those created up to this time (the drift run's window end).
    data_until: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending | running | promoted | rejected | held | failed | skipped
    status: Mapped[str] = mapped_column(String(16), index=True)
    # "host:pid" of the runner that claimed it.
    claimed_by: Mapped[str | None] = mapped_column(String(160))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The retrain's outcome (retrain.promote.RetrainOutcome.to_dict(): challenger, comparison, lineage's data window).
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)


def runner_name() -> str:
    """``host:pid`` of this process, as recorded in ``claimed_by``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _detached(session: Session, request: RetrainRequest) -> RetrainRequest:
    session.refresh(request)
    session.expunge(request)
    return request


def drift_run_view(request: RetrainRequest) -> dict[str, Any]:
    """What a drift run's ``retrain`` JSON says of its request, by the request's state."""
    base: dict[str, Any] = {
        "request_id": request.id,
        "trigger": request.reason,
        "parent_version": request.parent_version,
        "requested_at": request.requested_at.isoformat(),
    }
    if request.status == PENDING:
        return {"result": PENDING, **base}
    started = request.claimed_at.isoformat() if request.claimed_at else None
    host, _, pid = (request.claimed_by or "").rpartition(":")
    claimed = {"started_at": started, "host": host or None, "pid": int(pid) if pid.isdigit() else None}
    if request.status == RUNNING:
        return {"result": RUNNING, **base, **claimed}
    if request.outcome is not None:
        return {**base, **claimed, **request.outcome, "result": request.status, "request_id": request.id}
    return {"result": request.status, **base, **claimed, "error": request.error}


def _mirror(session: Session, request: RetrainRequest, view: dict[str, Any] | None = None) -> None:
    if request.drift_run_id is None:
        return
    run = session.get(DriftRun, request.drift_run_id)
    if run is not None:
        run.retrain = view if view is not None else drift_run_view(request)


def file_request(
    engine: Engine,
    *,
    model_name: str,
    reason: str,
    requested_by: str,
    parent_version: str | None,
    data_until: datetime,
    drift_run_id: int | None = None,
    now: datetime | None = None,
) -> RetrainRequest:
    """Insert a pending request (committed) and mirror it into its drift run; returns it, detached."""
    with Session(engine) as session:
        request = RetrainRequest(
            model_name=model_name,
            requested_at=now or _now(),
            reason=reason,
            drift_run_id=drift_run_id,
            requested_by=requested_by,
            parent_version=parent_version,
            data_until=data_until,
            status=PENDING,
        )
        session.add(request)
        session.flush()
        _mirror(session, request)
        session.commit()
        return _detached(session, request)


def pending_or_running(engine: Engine, *, model_name: str) -> RetrainRequest | None:
    """The oldest request of ``model_name`` not finished yet, if any."""
    with Session(engine) as session:
        request = session.scalars(
            select(RetrainRequest)
            .where(RetrainRequest.model_name == model_name, RetrainRequest.status.in_(OPEN))
            .order_by(RetrainRequest.id)
            .limit(1)
        ).first()
        return _detached(session, request) if request is not None else None


def claim_next(
    engine: Engine, *, model_name: str, runner: str | None = None, request_id: int | None = None
) -> RetrainRequest | None:
    """Claim the oldest claimable pending request (or the one ``request_id``): status ``running``, ``claimed_by``.

    Claimable: pending, and its drift run (if any) has ended. On PostgreSQL the row is read ``FOR UPDATE SKIP
    LOCKED``: two runners claiming at once never get the same request. On SQLite the promotion lock every runner
    holds serialises them."""
    run_in_progress = exists(
        select(DriftRun.id).where(DriftRun.id == RetrainRequest.drift_run_id, DriftRun.status == _DRIFT_RUN_RUNNING)
    )
    query = select(RetrainRequest).where(
        RetrainRequest.model_name == model_name, RetrainRequest.status == PENDING, ~run_in_progress
    )
    if request_id is not None:
        query = query.where(RetrainRequest.id == request_id)
    query = query.order_by(RetrainRequest.id).limit(1)
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=RetrainRequest)
        request = session.scalars(query).first()
        if request is None:
            return None
        request.status = RUNNING
        request.claimed_by = runner or runner_name()
        request.claimed_at = _now()
        _mirror(session, request)
        session.commit()
        return _detached(session, request)


def finish(
    engine: Engine,
    request_id: int,
    *,
    status: str,
    outcome: dict[str, Any] | None = None,
    error: str | None = None,
) -> RetrainRequest:
    """Record how a request ended (and mirror it into its drift run); returns it, detached."""
    if status not in FINISHED:
        raise ValueError(f"a request ends {', '.join(FINISHED)}; not {status!r}")
    with Session(engine) as session:
        request = session.get(RetrainRequest, request_id)
        if request is None:
            raise LookupError(f"retrain request {request_id} is no longer in the database")
        request.status = status
        request.finished_at = _now()
        request.outcome = outcome
        request.error = error
        _mirror(session, request)
        session.commit()
        return _detached(session, request)


def mark_stale_running(
    engine: Engine, *, model_name: str, champion_version: Callable[[], str | None] | None = None
) -> list[RetrainRequest]:
    """Mark the requests still ``running`` failed (interrupted), once; their drift runs say ``interrupted``.

    Call it holding the promotion lock only: every runner holds it while it runs a request, so a request found
    running then belongs to a runner that ended during the retrain. ``champion_version``: reads the champion now
    (called once, only when there is a stale request), recorded in the drift run (``champion_version_when_noticed``).
    """
    with Session(engine) as session:
        stale = list(
            session.scalars(
                select(RetrainRequest).where(RetrainRequest.model_name == model_name, RetrainRequest.status == RUNNING)
            ).all()
        )
        if not stale:
            return []
        champion = champion_version() if champion_version is not None else None
        noticed = _now()
        for request in stale:
            running = drift_run_view(request)
            request.status = FAILED
            request.finished_at = noticed
            request.error = INTERRUPTED_ERROR
            _mirror(
                session,
                request,
                {
                    **running,
                    "result": INTERRUPTED,
                    "error": INTERRUPTED_ERROR,
                    "noticed_at": noticed.isoformat(),
                    "champion_version_when_noticed": champion,
                },
            )
        session.commit()
        for request in stale:
            session.refresh(request)
        session.expunge_all()
    return stale


def requests_of_runs(engine: Engine, drift_run_ids: Sequence[int]) -> dict[int, RetrainRequest]:
    """The request each of these drift runs filed (runs that filed none are left out)."""
    if not drift_run_ids:
        return {}
    with Session(engine) as session:
        rows = session.scalars(select(RetrainRequest).where(RetrainRequest.drift_run_id.in_(list(drift_run_ids)))).all()
        session.expunge_all()
    return {r.drift_run_id: r for r in rows if r.drift_run_id is not None}


def load_request(engine: Engine, request_id: int) -> RetrainRequest | None:
    with Session(engine) as session:
        request = session.get(RetrainRequest, request_id)
        return _detached(session, request) if request is not None else None

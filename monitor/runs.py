"""The drift_runs records of the monitor: a run's outcome, its row, and what the policy reads back from stored rows.

``RunOutcome`` is the typed result of one run until it is stored: ``row_values`` is where it becomes JSON (the row's
``summary``, read by the dashboards and the reports index). ``verdict`` turns a stored run (and the retrain request it
filed) into what ``monitor.policy.decide`` reads. ``mark_interrupted`` cleans up rows left ``running`` by a process
that died during its run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.drift.types import KINDS
from monitor.policy import WindowVerdict
from tagwatch.db import DriftRun, LoggedRequest
from tagwatch.retrain_queue import INTERRUPTED, SKIPPED, RetrainRequest

if TYPE_CHECKING:
    from monitor.drift.types import DriftResult

log = logging.getLogger(__name__)

HISTORY_RUNS = 50

# drift_runs.status of a run in progress (and retrain["result"] of a retrain run inline by an older tagwatch).
RUNNING = "running"
INTERRUPTED_ERROR = "interrupted: the process ended during the run"


@dataclass
class RunOutcome:
    id: int | None  # None: no drift_runs row (the drift-run lock was held elsewhere, or the row could not be stored)
    status: str  # running (until it ends) | ok | skipped | failed
    started_at: datetime
    model_version: str | None
    result: DriftResult | None = None  # what the detection found (None: the run ended before it)
    confirmed: dict[str, bool] = field(default_factory=dict)
    retrain_triggered: bool = False
    reasons: list[str] = field(default_factory=list)
    retrain: dict[str, Any] | None = None
    report_path: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON (``drift-check --json``): the result's JSON, per kind with the policy's confirmation."""
        summary = self.result.to_dict() if self.result is not None else {}
        kinds = summary.get("kinds", {})
        return {
            "run_id": self.id,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "model_version": self.model_version,
            "kinds": {
                k: {
                    "score": kinds.get(k, {}).get("score"),
                    "threshold": kinds.get(k, {}).get("threshold"),
                    "detected": kinds.get(k, {}).get("detected", False),
                    "confirmed": self.confirmed.get(k, False),
                    "enough_data": kinds.get(k, {}).get("enough_data", False),
                    "reasons": kinds.get(k, {}).get("reasons", []),
                }
                for k in KINDS
            },
            "decision": {"retrain": self.retrain_triggered, "reasons": self.reasons},
            "label_free": summary.get("label_free"),
            "emerging_tags": summary.get("emerging_tags", []),
            "characteristic_words": summary.get("characteristic_words"),
            "sizes": summary.get("sizes"),
            "retrain": self.retrain,
            "report": self.report_path,
            "error": self.error,
        }


def load_history(engine: Engine, limit: int = HISTORY_RUNS) -> list[DriftRun]:
    """The latest ``limit`` stored runs, oldest first."""
    with Session(engine) as session:
        rows = session.scalars(
            select(DriftRun).order_by(DriftRun.started_at.desc(), DriftRun.id.desc()).limit(limit)
        ).all()
        session.expunge_all()
    return list(reversed(rows))


def verdict(run: DriftRun, request: RetrainRequest | None = None) -> WindowVerdict:
    """What the policy sees of a stored run. Its retrain is the request it filed (``request``), when there is one:
    filed counts as started (a request skipped because the champion moved, not), its status is the result."""
    kinds = (run.summary or {}).get("kinds", {})
    return WindowVerdict(
        at=run.started_at,
        model_version=run.model_version or "",
        detected={k: bool(getattr(run, f"{k}_detected")) for k in KINDS},
        enough_data={k: bool(kinds.get(k, {}).get("enough_data", False)) for k in KINDS},
        retrain_started=run.retrain_triggered and (request is None or request.status != SKIPPED),
        retrain_result=request.status if request is not None else (run.retrain or {}).get("result"),
        retrain_trigger=request.reason if request is not None else (run.retrain or {}).get("trigger"),
    )


def is_window(run: DriftRun) -> bool:
    """Whether a stored run is one of the policy's windows: a run that ended well having measured a window (not one
    that found the previous window again: ``same_window``), or a failed one that had filed (or, in older tagwatch,
    started) a retrain: the cool-down and the follow-ups must count that retrain, or a crash would start it again at
    once (a crash loop)."""
    return (run.status == "ok" and run.summary is not None) or (run.status == "failed" and run.retrain_triggered)


def latest_window(engine: Engine) -> DriftRun | None:
    """The latest run that ended well (measured a window, or found the one before unchanged)."""
    with Session(engine) as session:
        stmt = select(DriftRun).where(DriftRun.status == "ok")
        row = session.scalars(stmt.order_by(DriftRun.started_at.desc(), DriftRun.id.desc()).limit(1)).first()
        session.expunge_all()
    return row


def same_window(run: DriftRun, window: list[LoggedRequest], *, model_version: str) -> bool:
    """Whether ``window`` is the window ``run`` saw: the same champion, the same first and last request, as many
    requests and as many of them labelled. A new request moves the last one (or the count, on equal times); new
    feedback on the same requests changes the labelled count."""
    if not window or run.model_version != model_version:
        return False
    labelled = sum(1 for r in window if r.feedback_tags is not None)
    return (
        run.n_current == len(window)
        and run.n_labelled == labelled
        and _same_time(run.window_since, window[0].created_at)
        and _same_time(run.window_until, window[-1].created_at)
    )


def _same_time(stored: datetime | None, current: datetime) -> bool:
    if stored is None:
        return False
    if stored.tzinfo is None:  # a backend that hands back naive UTC
        stored = stored.replace(tzinfo=UTC)
    return stored == current.astimezone(UTC)


def mark_interrupted(engine: Engine, champion_or_none: Callable[[], str | None]) -> None:
    """Mark the rows still ``running`` as failed (and a retrain an older tagwatch ran inline as interrupted).

    Only a run holding the drift-run lock calls this, so no run of any process is in progress: such a row is left
    by a process that ended during its run (killed, out of memory, the machine went down). A retrain it filed
    stays filed: its request becomes claimable now that the run has ended.
    """
    with Session(engine) as session:
        stale = session.scalars(select(DriftRun).where(DriftRun.status == RUNNING)).all()
        if not stale:
            return
        noticed = datetime.now(UTC).isoformat()
        champion: str | None = None
        retrains = 0
        for row in stale:
            row.status = "failed"
            row.error = INTERRUPTED_ERROR
            if row.retrain is not None and row.retrain.get("result") == RUNNING and "request_id" not in row.retrain:
                if retrains == 0:  # read once, for every interrupted retrain
                    champion = champion_or_none()
                retrains += 1
                row.retrain = {
                    **row.retrain,
                    "result": INTERRUPTED,
                    "error": "interrupted: the process ended during the retrain",
                    "noticed_at": noticed,
                    "champion_version_when_noticed": champion,
                }
            log.warning(
                "drift run %s (started %s) was interrupted%s: marked failed",
                row.id,
                row.started_at.isoformat(),
                " after filing a retrain" if row.retrain_triggered else "",
            )
        session.commit()


def row_values(outcome: RunOutcome, window: list[LoggedRequest] | None) -> dict[str, Any]:
    """The drift_runs row: where the typed result becomes JSON (``summary``, read by the dashboards and the
    reports index) and per-kind columns."""
    summary = outcome.result.to_dict() if outcome.result is not None else None
    kinds = (summary or {}).get("kinds", {})
    return {
        "started_at": outcome.started_at,
        "finished_at": None if outcome.status == RUNNING else datetime.now(UTC),
        "status": outcome.status,
        "model_version": outcome.model_version,
        "window_since": window[0].created_at if window else None,
        "window_until": window[-1].created_at if window else None,
        "n_current": len(window or []),
        "n_labelled": sum(1 for r in window or [] if r.feedback_tags is not None),
        "confirmed": dict(outcome.confirmed or dict.fromkeys(KINDS, False)),
        "retrain_triggered": outcome.retrain_triggered,
        "reasons": list(outcome.reasons),
        "retrain": dict(outcome.retrain) if outcome.retrain is not None else None,
        "report_path": outcome.report_path,
        "summary": summary,
        "error": outcome.error,
        **{
            f"{k}_{f}": kinds.get(k, {}).get(f, False if f == "detected" else None)
            for k in KINDS
            for f in ("score", "threshold", "detected")
        },
    }


def store(engine: Engine, outcome: RunOutcome, window: list[LoggedRequest] | None = None) -> None:
    """Write the run's drift_runs row as it stands (committed): inserted the first time, then updated."""
    values = row_values(outcome, window)
    with Session(engine) as session:
        if outcome.id is None:
            row = DriftRun(**values)
            session.add(row)
            session.commit()
            outcome.id = row.id
            return
        stored = session.get(DriftRun, outcome.id)
        if stored is None:
            raise LookupError(f"drift run {outcome.id} is no longer in the database")
        for name, value in values.items():
            setattr(stored, name, value)
        session.commit()

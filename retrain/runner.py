"""The retrain runner: claims the pending retrain requests (tagwatch.retrain_queue) and runs them, one at a time.

It holds the promotion lock (``tagwatch.locks.PROMOTION``) while it trains, judges and promotes, so no other retrain,
promotion or rollback moves the champion meanwhile, in this process or another. Holding it, it first marks the
requests left ``running`` by a runner that ended during its retrain as failed (once: they are never run again, so a
crash does not loop), then claims and runs the pending ones, oldest first. A request whose champion has moved since it
was filed is skipped: its data and its reason were measured against another model.

Where it runs: inside ``tagwatch monitor`` (embedded, a job of the same scheduler), alone (``tagwatch
retrain-worker``), or once for ``tagwatch retrain`` (``run_now``: file a request and run it at once).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from retrain.config import RetrainConfig
from retrain.metrics import RetrainMetrics
from retrain.promote import ChallengerRegistry, RetrainOutcome
from tagwatch.db import feedback_sources, fetch_requests
from tagwatch.locks import PROMOTION, hold, promotion_lock
from tagwatch.registry.entities import champion_or_none
from tagwatch.retrain_queue import (
    FAILED,
    SKIPPED,
    RetrainRequest,
    claim_next,
    file_request,
    finish,
    mark_stale_running,
    runner_name,
)
from tagwatch.settings import Settings

log = logging.getLogger(__name__)

# The labelled requests a retrain uses end at its request's data_until, that instant included.
_INCLUSIVE = timedelta(microseconds=1)


class RetrainRunner:
    """Runs retrain requests of ``settings.model_name``. ``run_pending`` is safe to call from a scheduler thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        registry: ChallengerRegistry,
        metrics: RetrainMetrics | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.metrics = metrics or RetrainMetrics()
        self.config = RetrainConfig.from_settings(settings)
        self.name = name or runner_name()
        self._lock = threading.Lock()  # one batch at a time in this process

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    def run_pending(self, *, wait: float = 0.0, max_requests: int | None = None) -> list[RetrainRequest]:
        """Holding the promotion lock: mark stale requests failed, then claim and run the pending ones until none is
        left (or ``max_requests`` ran). Returns the requests it ran, as they ended; none when the lock stayed held
        elsewhere for ``wait`` seconds (that holder runs them, or the next call does)."""
        with self._lock, hold(self.engine, PROMOTION, model_name=self.model_name, wait=wait) as held:
            if not held:
                log.info("retrain runner: the promotion lock is held elsewhere; pending requests wait")
                return []
            self.mark_stale()
            done: list[RetrainRequest] = []
            while max_requests is None or len(done) < max_requests:
                request = claim_next(self.engine, model_name=self.model_name, runner=self.name)
                if request is None:
                    break
                done.append(self.run(request))
            return done

    def run_now(self, *, reason: str, requested_by: str, wait: float = 0.0) -> RetrainRequest:
        """File a request and run it at once, holding the promotion lock throughout (``tagwatch retrain``). Raises
        ``tagwatch.locks.LockBusy`` when the lock stays held elsewhere for ``wait`` seconds (nothing is filed)."""
        with self._lock, promotion_lock(self.engine, self.model_name, wait=wait):
            self.mark_stale()
            now = datetime.now(UTC)
            request = file_request(
                self.engine,
                model_name=self.model_name,
                reason=reason,
                requested_by=requested_by,
                parent_version=self.registry.champion_version(),
                data_until=now,
                now=now,
            )
            claimed = claim_next(self.engine, model_name=self.model_name, runner=self.name, request_id=request.id)
            if claimed is None:  # unreachable while the lock is held: no other runner claims
                raise RuntimeError(f"retrain request {request.id} was claimed elsewhere")
            return self.run(claimed)

    def mark_stale(self) -> list[RetrainRequest]:
        """Mark the requests left ``running`` as failed (call holding the promotion lock); counted as failed retrains
        (``TagwatchRetrainFailed``)."""
        stale = mark_stale_running(
            self.engine, model_name=self.model_name, champion_version=lambda: champion_or_none(self.registry)
        )
        for request in stale:
            log.warning(
                "retrain request %s (claimed by %s at %s) was interrupted: marked failed, not run again",
                request.id,
                request.claimed_by,
                request.claimed_at.isoformat() if request.claimed_at else "?",
            )
            self.metrics.retrains.labels(FAILED).inc()
        return stale

    def run(self, request: RetrainRequest) -> RetrainRequest:
        """Run one claimed request to its end and record it (call holding the promotion lock)."""
        import retrain.promote as promote  # looked up at each call: tests replace promote.retrain

        start = time.perf_counter()
        try:
            current = self.registry.champion_version()
            if current != request.parent_version:
                reason = (
                    f"the champion moved since the request was filed ({request.parent_version} -> {current}): not run"
                )
                log.info("retrain request %s skipped: %s", request.id, reason)
                return finish(self.engine, request.id, status=SKIPPED, error=reason)
            labelled = fetch_requests(
                self.engine,
                with_feedback=True,
                until=request.data_until + _INCLUSIVE,
                limit=self.settings.retrain_window,
            )
            outcome = promote.retrain(
                self.registry,
                [r.as_question() for r in labelled],
                config=self.config,
                top_n=self.settings.top_n_tags,
                max_tags=self.settings.max_tags,
                seed=self.settings.seed,
                trigger=request.reason,
                actor=request.requested_by,
                feedback_sources=feedback_sources(labelled),
            )
        except Exception as exc:
            log.exception("retrain request %s failed", request.id)
            self.metrics.retrains.labels(FAILED).inc()
            return finish(self.engine, request.id, status=FAILED, error=f"{type(exc).__name__}: {exc}")
        self.metrics.retrains.labels(outcome.result).inc()
        self.metrics.retrain_duration.observe(time.perf_counter() - start)
        self.metrics.last_retrain.set(time.time())
        return finish(self.engine, request.id, status=outcome.result, outcome=outcome.to_dict(), error=outcome.error)


def outcome_of(request: RetrainRequest) -> RetrainOutcome:
    """The outcome of a finished request, as ``retrain.promote.retrain`` returned it (or, for a request that never
    got that far, skipped or failed by an error, built from the request)."""
    if request.outcome is not None:
        return RetrainOutcome(**request.outcome)
    return RetrainOutcome(
        result=request.status,
        challenger_version=None,
        champion_version=request.parent_version,
        parent_version=request.parent_version,
        comparison=None,
        seconds=0.0,
        error=request.error,
        trigger=request.reason,
    )

"""One monitor run: the window from the request log against the champion's reference, then the policy.

window -> detect (monitor.drift) -> HTML report (monitor.report) -> drift_runs row -> gauges -> policy
(monitor.policy) -> maybe a retrain request (tagwatch.retrain_queue), which a retrain runner (retrain.runner) claims
and runs apart from the run. ``Monitor`` keeps what does not change between runs of one champion (the loaded model,
its prepared reference) and reloads it when the champion alias moves.

One run at a time across processes (``tagwatch.locks``): a run holds the drift-run lock from start to end (a run
that finds it held is skipped and writes no row). Filing a retrain takes the promotion lock for a moment (held by a
retrain, a manual promotion or a rollback: nothing is filed). Its drift_runs row is written when the run starts
(status ``running``), again when it files a retrain (retrain result ``pending``) and at the end; the runner then writes
the retrain's progress and outcome into the same row's ``retrain``. A row still ``running`` when the next run holds
the lock belongs to a process that died: it is marked failed. A filed retrain counts for the cool-down from the run
that filed it, whatever becomes of it (a runner that dies during it leaves it failed, never run again): no crash loop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from monitor import runs
from monitor.drift.types import KINDS, Thresholds
from monitor.metrics import MonitorMetrics
from monitor.policy import Policy, WindowVerdict, decide, retrain_label
from monitor.runs import RUNNING, RunOutcome
from tagwatch.db import DriftRun, LoggedRequest, fetch_requests
from tagwatch.locks import DRIFT_RUN, PROMOTION, hold
from tagwatch.registry.entities import champion_or_none
from tagwatch.retrain_queue import (
    RetrainRequest,
    drift_run_view,
    file_request,
    pending_or_running,
    requests_of_runs,
)
from tagwatch.settings import Settings

if TYPE_CHECKING:
    from monitor.drift.prepare import Prepared
    from monitor.drift.types import Baseline, DriftResult
    from tagwatch.model import TagModel

log = logging.getLogger(__name__)

LOCK_BUSY_REASON = "another monitor run is in progress (lock held)"
PROMOTION_BUSY_REASON = "a retrain is already running elsewhere (promotion lock held): not started"
# The reason of a run that found the window of an earlier run again (followed by that run's id).
NO_NEW_REQUESTS = "no new requests or feedback since run"
# The actor of the requests the monitor files (and of the alias moves of their promotions).
MONITOR_ACTOR = "monitor"


@dataclass
class _Champion:
    version: str
    model: TagModel
    reference: Prepared
    baseline: Baseline


class Monitor:
    """The monitor job with its long-lived parts. ``run_once`` is safe to call from a scheduler thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        registry: Any,
        metrics: MonitorMetrics | None = None,
        retrain_enabled: bool | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.metrics = metrics or MonitorMetrics()
        self.thresholds = Thresholds.from_settings(settings)
        self.policy = Policy.from_settings(settings)
        self.retrain_enabled = settings.auto_retrain if retrain_enabled is None else retrain_enabled
        self._champion: _Champion | None = None
        self._lock = threading.Lock()

    # --- champion -------------------------------------------------------------------------------------------
    def _load_champion(self, version: str) -> _Champion:
        if self._champion is not None and self._champion.version == version:
            return self._champion
        from monitor.drift.detect import prepare
        from monitor.drift.types import Baseline, DriftInput

        model = self.registry.load_model(version)
        info = self.registry.version_info(version)
        reference = self.registry.load_reference(version)
        holdouts = info.metrics
        baseline_metrics = holdouts.get("holdout_random") or holdouts.get("holdout_recent")
        if baseline_metrics is None:
            raise ValueError(f"model version {version} has no hold-out metrics to compare feedback with")
        prepared = prepare(
            DriftInput(questions=reference, true_tags=[q.tags for q in reference]),
            model,
            self.thresholds,
            role="reference",
            seed=self.settings.seed,
        )
        self._champion = _Champion(version, model, prepared, Baseline.from_metrics(baseline_metrics))
        self.metrics.champion_info.clear()
        self.metrics.champion_info.labels(version).set(1)
        self.metrics.baseline_micro_f1.set(float(baseline_metrics["micro_f1"]))
        return self._champion

    # --- the run --------------------------------------------------------------------------------------------
    def run_once(self, *, now: datetime | None = None, allow_retrain: bool = True) -> RunOutcome:
        """One run, holding the drift-run lock. Callers in this process wait for each other; when another process
        holds the lock the run is skipped at once (status ``skipped``, no drift_runs row)."""
        with self._lock, contextlib.ExitStack() as stack:
            try:
                held = stack.enter_context(hold(self.engine, DRIFT_RUN, model_name=self.settings.model_name))
            except Exception as exc:  # the database is unreachable: so is everything a run needs
                log.exception("monitor run failed: could not take the drift-run lock")
                return self._unrecorded(
                    now or datetime.now(UTC), "failed", error=f"drift-run lock: {type(exc).__name__}: {exc}"
                )
            # The run starts once it holds the lock: started_at orders runs of every process.
            at = now or datetime.now(UTC)
            if not held:
                return self._unrecorded(at, "skipped", reason=LOCK_BUSY_REASON)
            return self._run(at, allow_retrain=allow_retrain)

    def _unrecorded(
        self, at: datetime, status: str, *, reason: str | None = None, error: str | None = None
    ) -> RunOutcome:
        """A run that did not get the drift-run lock: counted and logged, but no drift_runs row."""
        outcome = RunOutcome(id=None, status=status, started_at=at, model_version=None, error=error)
        if reason is not None:
            outcome.reasons = [reason]
        self.metrics.runs.labels(status).inc()
        log.info("monitor run not started: %s", reason or error)
        return outcome

    def _run(self, now: datetime, *, allow_retrain: bool) -> RunOutcome:
        started = time.perf_counter()
        outcome = RunOutcome(id=None, status=RUNNING, started_at=now, model_version=None)
        rows: list[LoggedRequest] | None = None
        try:
            runs.mark_interrupted(self.engine, lambda: champion_or_none(self.registry))
            runs.store(self.engine, outcome)  # the run's row, "running" until the run ends
            version = outcome.model_version = self.registry.champion_version()
            if version is None:
                outcome.status = "skipped"
                outcome.reasons = ["no champion in the registry"]
                return self._finish(outcome, started)
            champion = self._load_champion(version)
            since = now - timedelta(seconds=self.settings.window_seconds) if self.settings.window_seconds else None
            rows = fetch_requests(
                self.engine, since=since, until=now + timedelta(microseconds=1), limit=self.settings.window_size
            )
            if len(rows) < self.settings.min_window:
                outcome.status = "skipped"
                outcome.reasons = [f"window too small: {len(rows)} < {self.settings.min_window} requests"]
                return self._finish(outcome, started, window=rows)
            previous = runs.latest_window(self.engine)
            if previous is not None and runs.same_window(previous, rows, model_version=version):
                return self._unchanged(outcome, previous, rows, started)
            outcome.result, outcome.report_path = self._detect(champion, rows, now)
            stored = [r for r in self.history() if r.id != outcome.id and runs.is_window(r)]
            filed = requests_of_runs(self.engine, [r.id for r in stored if r.retrain_triggered])
            history = [runs.verdict(r, filed.get(r.id)) for r in stored]
            current = WindowVerdict(
                at=now,
                model_version=version,
                detected={k: r.detected for k, r in outcome.result.kinds.items()},
                enough_data={k: r.enough_data for k, r in outcome.result.kinds.items()},
            )
            last_retrain = next((v.at for v in reversed(history) if v.retrain_started), None)
            labelled = fetch_requests(
                self.engine,
                until=now + timedelta(microseconds=1),
                with_feedback=True,
                limit=self.settings.retrain_window,
            )
            decision = decide(
                [*history, current],
                policy=self.policy,
                now=now,
                last_retrain_at=last_retrain,
                labelled_available=len(labelled),
            )
            outcome.confirmed = decision.confirmed
            outcome.reasons = decision.reasons
            if decision.retrain and not (allow_retrain and self.retrain_enabled):
                outcome.reasons.append("auto-retrain is off: not started")
            elif decision.retrain:
                self._start_retrain(outcome, rows, version=version, trigger=decision.trigger or "drift", now=now)
            outcome.status = "ok"
            return self._finish(outcome, started, window=rows)
        except Exception as exc:
            log.exception("monitor run failed")
            outcome.status = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
            return self._finish(outcome, started, window=rows)

    def _unchanged(
        self, outcome: RunOutcome, previous: DriftRun, window: list[LoggedRequest], started: float
    ) -> RunOutcome:
        """The window is the one ``previous`` saw (no new request, no new feedback, the same champion): measuring it
        again would repeat that run's verdict and write one more report of the same data. The run ends well (the
        monitor is alive: TagwatchMonitorStale stays quiet on a quiet stream; TagwatchNoTraffic is the alert for that)
        with that run's confirmations, no report and no result, so the policy does not count it as a window."""
        outcome.confirmed = dict(previous.confirmed or {})
        until = previous.window_until.isoformat() if previous.window_until else "?"
        outcome.reasons = [f"{NO_NEW_REQUESTS} {previous.id} (window up to {until}): not measured again, no report"]
        outcome.status = "ok"
        return self._finish(outcome, started, window=window)

    def history(self, limit: int = runs.HISTORY_RUNS) -> list[DriftRun]:
        """The latest ``limit`` stored runs, oldest first."""
        return runs.load_history(self.engine, limit)

    def _start_retrain(
        self,
        outcome: RunOutcome,
        window: list[LoggedRequest],
        *,
        version: str,
        trigger: str,
        now: datetime,
    ) -> None:
        """File the retrain the policy decided (a retrain runner trains, judges and promotes): not filed when one is
        already pending or running for the model, when someone holds the promotion lock (a retrain, a manual
        promotion or a rollback), or when the champion moved since this run measured against it."""
        model_name = self.settings.model_name
        with hold(self.engine, PROMOTION, model_name=model_name) as held:
            # Read once the lock is settled: a request filed (or being run) elsewhere is named as such, whether or not
            # its runner holds the lock now.
            open_request = pending_or_running(self.engine, model_name=model_name)
            if open_request is not None:
                outcome.reasons.append(_already_filed(open_request))
                return
            if not held:
                outcome.reasons.append(PROMOTION_BUSY_REASON)
                return
            current = self.registry.champion_version()
            if current != version:
                outcome.reasons.append(f"the champion moved during the run ({version} -> {current}): not started")
                return
            request = file_request(
                self.engine,
                model_name=model_name,
                reason=trigger,
                requested_by=MONITOR_ACTOR,
                parent_version=version,
                data_until=now,
                drift_run_id=outcome.id,
            )
        outcome.retrain_triggered = True
        outcome.retrain = drift_run_view(request)
        # The "retrain filed" row: the request is claimable once this run has ended (stored at its end).
        runs.store(self.engine, outcome, window)

    def _detect(self, champion: _Champion, rows: list[LoggedRequest], now: datetime) -> tuple[DriftResult, str]:
        from monitor.drift.detect import detect_drift
        from monitor.drift.types import DriftInput
        from monitor.report import write_report
        from tagwatch.reports import report_filename

        questions = [r.as_question() for r in rows]
        current = DriftInput(questions=questions, true_tags=[r.feedback_tags for r in rows])
        result = detect_drift(
            champion.reference, current, champion.model, champion.baseline, self.thresholds, seed=self.settings.seed
        )
        path = write_report(result, self.settings.reports_dir / report_filename(now))
        self._set_gauges(result)
        return result, path.name

    def _set_gauges(self, result: DriftResult) -> None:
        self.metrics.show_window(
            {
                kind: (r.score if r.score is not None and math.isfinite(r.score) else None, r.threshold, r.detected)
                for kind, r in result.kinds.items()
            },
            feedback_micro_f1=result.feedback_micro_f1,
            baseline_micro_f1=None,  # set where the champion is loaded (its hold-out micro-F1)
            estimated_micro_f1=result.estimated_micro_f1,
            emerging_tag_share=result.emerging_share,
            window={"all": result.sizes["current"], "labelled": result.sizes["feedback"]},
        )

    def _finish(self, outcome: RunOutcome, started: float, *, window: list[LoggedRequest] | None = None) -> RunOutcome:
        try:
            runs.store(self.engine, outcome, window)
        except Exception:
            # A row left "running" is marked failed (interrupted) by the next run.
            log.exception("could not store the drift run")
            outcome.status = "failed"
        for kind in KINDS:
            self.metrics.drift_confirmed.labels(kind).set(1 if outcome.confirmed.get(kind) else 0)
        self.metrics.runs.labels(outcome.status).inc()
        if outcome.status == "ok":
            if outcome.result is not None:  # the duration of a measurement, not of finding nothing new
                self.metrics.run_duration.observe(time.perf_counter() - started)
            self.metrics.last_success.set(time.time())
        if outcome.status != "failed":
            self._write_index()
        log.info("monitor run %s: %s; %s", outcome.id, outcome.status, "; ".join(outcome.reasons))
        return outcome

    def _write_index(self) -> None:
        write_reports_index(self.engine, self.settings)


def write_reports_index(engine: Engine, settings: Settings) -> None:
    """Rewrite the reports index from the latest 500 runs that measured a window and the champion's moves. A run
    whose report is no longer on disk (deleted after ``report_retention_days``) reads "expired", never a link."""
    from monitor.report import RunEntry, write_index
    from tagwatch.history import list_moves
    from tagwatch.registry import CHAMPION

    reports_dir = settings.reports_dir
    entries = []
    for run in runs.load_history(engine, limit=500):
        if run.summary is None:  # nothing measured (skipped, failed, or no new requests): no line
            continue
        decision = "retrain" if run.retrain_triggered else ("; ".join(run.reasons[-1:]) or None)
        if run.retrain:
            decision = f"retrain: {run.retrain.get('result')} (challenger {run.retrain.get('challenger_version')})"
        # A run with a summary had its report written: no file now means it expired (or was removed by hand).
        report = run.report_path if run.report_path and (reports_dir / run.report_path).is_file() else None
        entries.append(
            RunEntry(
                started_at=run.started_at,
                result=run.summary,
                report=report,
                decision=decision,
                expired=report is None,
                retrain=_retrain_mark(run),
            )
        )
    try:
        moves = list_moves(engine, model_name=settings.model_name, alias=CHAMPION, limit=500)
    except Exception:  # the history is extra: without it (say, a schema before 0003) the index is still written
        log.exception("could not read the model history for the reports index")
        moves = []
    write_index(
        entries,
        reports_dir,
        moves=moves,
        retention_days=settings.report_retention_days,
        grafana_url=settings.grafana_url or None,
    )


def _retrain_mark(run: DriftRun) -> str | None:
    """The retrain a run filed, as the index's timeline marks it ("promoted v3", "filed"), or None."""
    if run.retrain:
        r = run.retrain
        return retrain_label(str(r.get("result")), r.get("challenger_version"), r.get("trigger"))
    return "filed" if run.retrain_triggered else None


def _already_filed(request: RetrainRequest) -> str:
    return f"a retrain is already {request.status} (request {request.id}, {request.reason}): not filed again"

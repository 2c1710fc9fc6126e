"""The monitor's metrics read back from the drift_runs table, for a monitor that is not a long-running process.

On Kubernetes the drift run is a CronJob (``tagwatch drift-check``: one run, then the process exits), so its in-process
gauges vanish with it. ``tagwatch monitor --exporter`` runs no drift job: it serves the same metrics (the same
``MonitorMetrics``, so the same names, help and labels) computed from the newest stored runs, and the alert rules and
dashboards work unchanged.

What a scheduled monitor would show, from the rows:
- the drift gauges (score, threshold, detected per kind; the micro-F1s; emerging-tag share; window sizes; champion)
  from the newest ``ok`` run that measured a window (an ``ok`` run that found the previous window unchanged measures
  nothing and leaves the gauges as they were); a value the run did not measure keeps the previous one, as in-process;
- ``tagwatch_drift_confirmed`` from the newest finished run of any status (in-process every finished run sets it: a
  skipped or failed one to 0, an unchanged window to the confirmations of the run it repeats);
- ``tagwatch_monitor_last_success_timestamp_seconds``: ``finished_at`` of the newest ``ok`` run (0: none);
- ``tagwatch_monitor_runs_total{status}``: the runs that started after the exporter did, counted once they finished
  (so they start at 0, as after a process restart); the run-duration histogram: those of them that measured a window;
- ``tagwatch_monitor_interval_seconds``: the schedule's interval (TAGWATCH_MONITOR_INTERVAL_SECONDS).

Runs that write no row (skipped because another run held the lock, or failed before it could reach the database) are
not seen; the CronJob's own status shows those. ``gauges_of`` and ``advance`` are pure; ``RunsExporter`` reads the
rows (four queries on the ``started_at`` index, a bounded number of rows) and sets the metrics, at most every
``refresh_seconds`` (on a scrape), and ``serve`` puts them on HTTP beside a ``/health`` that reads nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, defer

from monitor.drift.types import KINDS
from monitor.metrics import MonitorMetrics
from monitor.runs import RUNNING
from tagwatch.db import DriftRun

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

OK = "ok"
FINISHED = ("ok", "skipped", "failed")
# A scrape reads the database at most this often; scrapes in between (several Prometheus replicas) see the same values.
REFRESH_SECONDS = 5.0
# Rows read per refresh for the run counters: more than ever start between two scrapes (one run holds the drift-run
# lock at a time); a backlog is counted over the next refreshes.
MAX_ROWS = 1_000


# --- pure: stored runs -> metric values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KindGauges:
    score: float | None  # None: not measured on that window (keeps the previous value)
    threshold: float | None
    detected: bool


@dataclass(frozen=True)
class Gauges:
    """What the monitor's gauges show after its newest stored runs (None: not measured, keep the previous value)."""

    kinds: dict[str, KindGauges] = field(default_factory=dict)  # empty: no ok run yet
    confirmed: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(KINDS, False))
    feedback_micro_f1: float | None = None
    baseline_micro_f1: float | None = None
    estimated_micro_f1: float | None = None
    emerging_tag_share: float | None = None
    window: dict[str, int] | None = None  # {"all": n, "labelled": n}
    last_success: float = 0.0
    champion: str | None = None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _at(summary: dict[str, Any], *path: str) -> Any:
    value: Any = summary
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def gauges_of(
    latest_measured: DriftRun | None, *, latest_ok: DriftRun | None, latest_finished: DriftRun | None
) -> Gauges:
    """The gauge values from the newest ``ok`` run that measured a window, the newest ``ok`` run (the last success)
    and the newest finished run (any status but running).

    The numbers are read from the stored summary where ``DriftResult``'s properties read them in the live result
    (``feedback_micro_f1``, ``emerging_share``, ``estimated_micro_f1``); the baseline is the one the concept kind
    compared with (the champion's hold-out micro-F1, as the live monitor reads it from the registry).
    """
    confirmed = dict.fromkeys(KINDS, False)
    if latest_finished is not None:
        confirmed.update({k: bool((latest_finished.confirmed or {}).get(k)) for k in KINDS})
    finished = latest_ok.finished_at if latest_ok is not None else None
    last_success = finished.timestamp() if finished is not None else 0.0
    if latest_measured is None:
        return Gauges(confirmed=confirmed, last_success=last_success)
    run = latest_measured
    summary = run.summary or {}
    kinds = {
        k: KindGauges(
            score=_finite(getattr(run, f"{k}_score")),
            threshold=_finite(getattr(run, f"{k}_threshold")),
            detected=bool(getattr(run, f"{k}_detected")),
        )
        for k in KINDS
    }
    sizes = summary.get("sizes")
    if isinstance(sizes, dict) and "current" in sizes:
        window = {"all": int(sizes["current"]), "labelled": int(sizes.get("feedback", 0))}
    else:  # a run without a detection summary: the row's own counts
        window = {"all": run.n_current or 0, "labelled": run.n_labelled or 0}
    return Gauges(
        kinds=kinds,
        confirmed=confirmed,
        feedback_micro_f1=_finite(_at(summary, "kinds", "concept", "details", "observed", "micro_f1")),
        baseline_micro_f1=_finite(_at(summary, "kinds", "concept", "details", "baseline", "micro_f1")),
        estimated_micro_f1=_finite(_at(summary, "label_free", "current", "micro_f1")),
        emerging_tag_share=_finite(_at(summary, "kinds", "concept", "details", "signals", "emerging_share", "value")),
        window=window,
        last_success=last_success,
        champion=run.model_version,
    )


@dataclass(frozen=True)
class RunRow:
    """What the run counters read of a drift_runs row."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    measured: bool = True  # it measured a window (see MEASURED)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class Tally:
    """Where the run counters stand: rows that started at or after ``since`` are read next; ``counted`` holds those
    among them already counted (rows started at the same instant, or finished while an older one still runs)."""

    since: datetime
    counted: frozenset[int] = frozenset()


def advance(tally: Tally, rows: Sequence[RunRow]) -> tuple[Tally, list[RunRow]]:
    """Count the runs that finished since ``tally``: ``rows`` are the stored runs started at or after
    ``tally.since`` (oldest first). Returns the next tally and the newly finished runs, each counted once.

    ``since`` moves up to the oldest run still running (it is counted when it ends), else to the newest run read."""
    finished = [r for r in rows if r.status in FINISHED]
    new = [r for r in finished if r.id not in tally.counted]
    running = [r.started_at for r in rows if r.status not in FINISHED]
    if running:
        since = min(running)
    elif rows:
        since = max(r.started_at for r in rows)
    else:
        since = tally.since
    since = max(since, tally.since)
    return Tally(since, frozenset(r.id for r in finished if r.started_at >= since)), new


# --- I/O: rows in, metrics out --------------------------------------------------------------------------------------

# A run that measured a window: every measurement stores the kinds' thresholds; a run that found the previous window
# unchanged, or ended before detection, stores none (its ``summary`` is JSON null then, not SQL NULL: no filter on it).
MEASURED = DriftRun.data_threshold.is_not(None)


def _newest(session: Session, *where: Any) -> DriftRun | None:
    # started_at is indexed: a backward index scan that stops at the first matching row.
    return session.scalars(
        select(DriftRun)
        .where(*where)
        .order_by(DriftRun.started_at.desc(), DriftRun.id.desc())
        .options(defer(DriftRun.error), defer(DriftRun.retrain), defer(DriftRun.reasons))
        .limit(1)
    ).first()


def read_gauges(engine: Engine) -> Gauges:
    """The gauge values from the newest stored runs."""
    with Session(engine) as session:
        return gauges_of(
            _newest(session, DriftRun.status == OK, MEASURED),
            latest_ok=_newest(session, DriftRun.status == OK),
            latest_finished=_newest(session, DriftRun.status != RUNNING),
        )


def read_rows(engine: Engine, since: datetime, *, limit: int = MAX_ROWS) -> list[RunRow]:
    """The runs started at or after ``since``, oldest first (at most ``limit``)."""
    query = (
        select(DriftRun.id, DriftRun.started_at, DriftRun.finished_at, DriftRun.status, MEASURED.label("measured"))
        .where(DriftRun.started_at >= since)
        .order_by(DriftRun.started_at, DriftRun.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            RunRow(r.id, r.started_at, r.finished_at, r.status, measured=bool(r.measured)) for r in conn.execute(query)
        ]


def apply(metrics: MonitorMetrics, gauges: Gauges, finished: Iterable[RunRow]) -> None:
    """Set ``metrics`` as a scheduled monitor would have after these runs (``finished``: newly finished runs)."""
    metrics.show_window(
        {kind: (g.score, g.threshold, g.detected) for kind, g in gauges.kinds.items()},
        feedback_micro_f1=gauges.feedback_micro_f1,
        baseline_micro_f1=gauges.baseline_micro_f1,
        estimated_micro_f1=gauges.estimated_micro_f1,
        emerging_tag_share=gauges.emerging_tag_share,
        window=gauges.window,
    )
    for kind in KINDS:
        metrics.drift_confirmed.labels(kind).set(1 if gauges.confirmed.get(kind) else 0)
    if gauges.champion is not None:
        metrics.champion_info.clear()
        metrics.champion_info.labels(gauges.champion).set(1)
    metrics.last_success.set(gauges.last_success)
    for run in finished:
        metrics.runs.labels(run.status).inc()
        duration = run.duration_seconds
        if run.status == OK and run.measured and duration is not None:
            metrics.run_duration.observe(duration)


class RunsExporter:
    """Keeps a ``MonitorMetrics`` in step with the drift_runs table; ``collect`` refreshes it (at most every
    ``refresh_seconds``) and yields its metrics, so it is registered as a collector on the registry being served."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval_seconds: float,
        started_at: datetime | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        metrics: MonitorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.metrics = metrics or MonitorMetrics()
        self.metrics.interval.set(interval_seconds)
        self.refresh_seconds = refresh_seconds
        self.tally = Tally(started_at or datetime.now(UTC))
        self._clock = clock
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> None:
        """Read the newest runs and set the metrics, unless done less than ``refresh_seconds`` ago. Raises when the
        database cannot be read (the scrape then fails: Prometheus sees the monitor as down, not as fresh)."""
        with self._lock:
            now = self._clock()
            if not force and self._refreshed_at is not None and now - self._refreshed_at < self.refresh_seconds:
                return
            try:
                gauges = read_gauges(self.engine)
                tally, finished = advance(self.tally, read_rows(self.engine, self.tally.since))
            except Exception as exc:
                log.warning("monitor exporter: could not read drift_runs: %s: %s", type(exc).__name__, exc)
                raise
            apply(self.metrics, gauges, finished)
            self.tally = tally
            self._refreshed_at = now

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        yield from self.metrics.registry.collect()


HEALTH_PATH = "/health"


def serve(exporter: RunsExporter, *, host: str, port: int) -> WSGIServer:
    """Serve the exporter's metrics at http://host:port/metrics (read on each scrape) and ``/health`` (answers
    without reading the database: a liveness probe must not restart the exporter because PostgreSQL is away), in a
    thread of its own. Returns the server (``server.server_port``; ``shutdown()`` stops it)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    registry = CollectorRegistry(auto_describe=False)  # no describe: registering reads nothing
    registry.register(exporter)
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        try:
            return metrics_app(environ, start_response)
        except Exception:  # logged by refresh: a 503, not a traceback on the console
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"drift_runs could not be read\n"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """One line per scrape would drown the log."""

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="monitor-exporter", daemon=True).start()
    log.info("monitor exporter on http://%s:%d/metrics", host, server.server_port)
    return server

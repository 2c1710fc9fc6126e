"""The embedded end-to-end loop on one machine: train, serve, replay, monitor, detect, retrain, promote.

No Docker: SQLite for the request log and the registry, the service in a thread (uvicorn on loopback), the monitor
job on an in-process APScheduler scheduler, and a replayed stream of real questions: first a stable stretch from the
training period's own distribution, then the questions of later years, where the topics really move.

Feedback goes through the real authentication path: each run generates an API key (``secrets.token_urlsafe``), the
embedded service requires it on ``POST /feedback`` (and only it: the demo's service ignores configured keys), and
the replay sends it. The key lives in memory for the run only; it is never printed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commands.polling import ServiceThread, wait_for
from tagwatch import progress
from tagwatch.data import Question
from tagwatch.settings import ApiKey, Settings

log = logging.getLogger(__name__)

MARKER = ".tagwatch-demo"
DEMO_KEY_NAME = "demo"


@dataclass(frozen=True)
class DemoPlan:
    train_until: datetime = datetime(2018, 5, 1, tzinfo=UTC)
    drift_since: datetime = datetime(2019, 1, 1, tzinfo=UTC)
    window: int = 500
    # Train on a seeded sample of at most this many questions (None: all of them).
    max_train: int | None = None
    stable_windows: int = 4
    drift_windows: int = 10
    feedback_share: float = 0.8
    concurrency: int = 8


@dataclass
class TimelineRow:
    window: int
    phase: str
    period: str
    requests: int
    served_version: str
    # micro-F1 over all the window's true tags (retrain.compare.holdout_scores), of the served and the first model
    f1_served: float
    f1_frozen: float
    scores: dict[str, float | None]  # per kind: score / threshold (1.0 = at the threshold)
    detected: list[str]
    confirmed: list[str]
    decision: str
    retrain: str | None
    report: str | None


@dataclass
class DemoResult:
    timeline: list[TimelineRow] = field(default_factory=list)
    plot: Path | None = None
    reports_index: Path | None = None
    seconds: float = 0.0


def split_stream(
    questions: Sequence[Question], plan: DemoPlan
) -> tuple[list[Question], list[Question], list[Question]]:
    """(training questions, stable stream, drifted stream), each in time order."""
    train = [q for q in questions if q.created_at is None or q.created_at < plan.train_until]
    if plan.max_train is not None and len(train) > plan.max_train:
        import random

        keep = set(random.Random(0).sample(range(len(train)), plan.max_train))
        train = [q for i, q in enumerate(train) if i in keep]
    stable = [q for q in questions if q.created_at is not None and plan.train_until <= q.created_at < plan.drift_since]
    drift = [q for q in questions if q.created_at is not None and q.created_at >= plan.drift_since]
    return train, stable[: plan.window * plan.stable_windows], drift[: plan.window * plan.drift_windows]


def with_demo_key(settings: Settings) -> tuple[Settings, str]:
    """The demo service's settings: feedback requires a key generated now (returned with them), predictions are open."""
    from pydantic import SecretStr

    secret = secrets.token_urlsafe(32)
    key = ApiKey(name=DEMO_KEY_NAME, secret=SecretStr(secret))
    return settings.model_copy(update={"feedback_keys": (key,), "predict_keys": ()}), secret


def _prepare_home(home: Path) -> None:
    """Start from an empty demo home; refuse to wipe a folder the demo did not make."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise SystemExit(f"{home} is not empty and was not made by the demo; set TAGWATCH_HOME elsewhere")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `tagwatch demo`; removed and made again by the next run\n")


def _wait_for_rows(engine: Any, expected_requests: int, expected_feedback: int, timeout: float = 30) -> None:
    from tagwatch.db import count_rows

    def logged() -> bool:
        rows = count_rows(engine)
        return rows["prediction_requests"] >= expected_requests and rows["feedback"] >= expected_feedback

    wait_for(
        logged,
        timeout=timeout,
        what=f"{expected_requests} requests and {expected_feedback} feedback rows in the request log",
    )


def run_demo(settings: Settings, plan: DemoPlan | None = None, *, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the whole loop; returns the timeline and writes the plot and reports under ``settings.home``."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    from commands.replay import replay
    from commands.retraining import build_runner, retrain_after
    from commands.scheduler import start_scheduler
    from monitor.job import Monitor
    from retrain.compare import holdout_scores
    from retrain.job import load_data, train_and_register
    from tagwatch.db import make_engine
    from tagwatch.registry import Registry

    plan = plan or DemoPlan()
    started = time.perf_counter()
    _prepare_home(settings.home)
    questions = load_data(settings.data_path)
    train, stable, drift = split_stream(questions, plan)
    echo(f"[1/4] training the first model on {len(train)} questions created before {plan.train_until:%Y-%m-%d} ...")
    run = train_and_register(settings, train, trigger="demo: initial")
    echo(
        f"      version {run.version} is champion after {run.seconds:.0f} s; micro-F1 over the model's tags "
        f"{run.metrics['holdout_random']['micro_f1']:.3f} (random hold-out), "
        f"{run.metrics['holdout_time']['micro_f1']:.3f} (time hold-out); over all tags "
        f"{run.metrics['holdout_random']['micro_f1_all_tags']:.3f} and "
        f"{run.metrics['holdout_time']['micro_f1_all_tags']:.3f}"
    )
    engine = make_engine(settings.db_url)
    # The monitor's promotions are recorded in the alias history (tagwatch history, the reports index).
    registry = Registry.from_settings(settings, actor="monitor", engine=engine)
    frozen = registry.load_model(run.version)
    models: dict[str, Any] = {run.version: frozen}
    result = DemoResult()
    windows = [("stable", stable[i : i + plan.window]) for i in range(0, len(stable), plan.window)]
    windows += [("drift", drift[i : i + plan.window]) for i in range(0, len(drift), plan.window)]
    windows = [(phase, w) for phase, w in windows if len(w) == plan.window]
    echo(
        f"[2/4] serving on SQLite; replaying {len(windows)} windows of {plan.window} real questions "
        f"({sum(p == 'stable' for p, _ in windows)} stable from {plan.train_until:%Y-%m}, then later years), "
        f"feedback for {plan.feedback_share:.0%} of them"
    )
    service_settings, api_key = with_demo_key(settings)
    echo(
        f"      POST /feedback requires an API key: one generated for this run (name {DEMO_KEY_NAME!r}, not shown), "
        "which the replay sends as a Bearer token"
    )
    with ServiceThread(service_settings) as server:
        monitor = Monitor(settings, engine=engine, registry=registry)
        # The retrain a run files runs right after it, before the next window: the sequence stays deterministic.
        runner = build_runner(settings, engine=engine, registry=registry)
        scheduler = start_scheduler(
            monitor, interval_seconds=24 * 3600, background=True, first_run_now=False, runner=None
        )
        done = threading.Event()
        outcomes: list[Any] = []
        scheduler.add_listener(lambda event: done.set(), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.modify_job(
            "drift-check", func=lambda: outcomes.append(retrain_after(runner, monitor, monitor.run_once()))
        )
        scheduler.start()
        try:
            sent = fed = 0
            echo("[3/4] drift scores are in units of their thresholds (* detected, ! confirmed by the policy)")
            echo(
                "      F1: micro-F1 over all the window's true tags (those outside the model's tags count as misses, "
                "unlike the hold-out micro-F1 over the model's tags above)"
            )
            echo(
                "      window  phase   period                   served  F1 served  F1 frozen  data  concept  "
                "feature  decision"
            )
            with progress.task("demo windows", total=len(windows)) as replayed:
                for k, (phase, window) in enumerate(windows):
                    served = registry.champion_version() or "?"
                    # The service reloads within its interval; wait until it serves the champion.
                    _wait_for_version(server.url, served)
                    summary = asyncio.run(
                        replay(
                            window,
                            url=server.url,
                            concurrency=plan.concurrency,
                            feedback_share=plan.feedback_share,
                            seed=k,
                            api_key=api_key,
                        )
                    )
                    if summary.refused:
                        raise RuntimeError(
                            f"the service refused {summary.refused} requests of the replay for their key"
                        )
                    sent += summary.answered
                    fed += summary.feedback_ok
                    _wait_for_rows(engine, sent, fed)
                    # One run of the scheduled monitor job, now (as the interval trigger would fire it).
                    done.clear()
                    scheduler.modify_job("drift-check", next_run_time=datetime.now(UTC))
                    if not done.wait(timeout=900):
                        raise RuntimeError("the monitor job did not finish")
                    outcome = outcomes[-1]
                    if served not in models:
                        models[served] = registry.load_model(served)
                    truth = [q.tags for q in window]
                    f1_served = holdout_scores(
                        [[t for t, _ in p] for p in models[served].predict(window)], truth
                    ).micro_f1
                    f1_frozen = holdout_scores([[t for t, _ in p] for p in frozen.predict(window)], truth).micro_f1
                    row = _row(k, phase, window, served, f1_served, f1_frozen, outcome)
                    result.timeline.append(row)
                    echo(_format_row(row))
                    replayed.advance()
        finally:
            scheduler.shutdown(wait=True)
    echo("[4/4] writing the plot")
    result.plot = plot_timeline(result.timeline, settings.home / "demo-timeline.png")
    result.reports_index = settings.reports_dir / "index.html"
    result.seconds = time.perf_counter() - started
    engine.dispose()
    return result


def _wait_for_version(url: str, version: str, timeout: float = 60) -> None:
    import httpx

    def serves() -> bool:
        try:
            return bool(httpx.get(f"{url}/model", timeout=5).json().get("version") == version)
        except (httpx.HTTPError, ValueError):
            return False

    wait_for(serves, timeout=timeout, what=f"the service to serve version {version}")


def _row(
    k: int, phase: str, window: Sequence[Question], served: str, f1_served: float, f1_frozen: float, outcome: Any
) -> TimelineRow:
    from monitor.policy import retrain_label

    d = outcome.to_dict()
    dated = sorted(q.created_at for q in window if q.created_at is not None)
    period = f"{dated[0]:%Y-%m-%d}..{dated[-1]:%Y-%m-%d}" if dated else "?"
    retrain = None
    if d["retrain"]:
        retrain = retrain_label(d["retrain"]["result"], d["retrain"]["challenger_version"], d["retrain"].get("trigger"))
    return TimelineRow(
        window=k,
        phase=phase,
        period=period,
        requests=len(window),
        served_version=served,
        f1_served=f1_served,
        f1_frozen=f1_frozen,
        scores={kind: _relative(v["score"], v["threshold"]) for kind, v in d["kinds"].items()},
        detected=[kind for kind, v in d["kinds"].items() if v["detected"]],
        confirmed=[kind for kind, v in d["kinds"].items() if v["confirmed"]],
        decision=(d["decision"]["reasons"] or [d["status"]])[-1],
        retrain=retrain,
        report=d["report"],
    )


def _relative(score: float | None, threshold: float | None) -> float | None:
    """A kind's score in units of its threshold (1.0 = at the threshold), so all kinds share one axis."""
    if score is None or not threshold:
        return None
    return float(score) / float(threshold)


def _format_row(r: TimelineRow) -> str:
    def score(kind: str) -> str:
        v = r.scores.get(kind)
        mark = "!" if kind in r.confirmed else ("*" if kind in r.detected else " ")
        return f"{v:5.2f}{mark}" if v is not None else "   - "

    decision = r.retrain or r.decision
    return (
        f"      {r.window:>6}  {r.phase:<6}  {r.period:<23}  v{r.served_version:<5}  {r.f1_served:9.3f}  "
        f"{r.f1_frozen:9.3f}  {score('data')} {score('concept'):>8} {score('feature'):>8}  {decision}"
    )


def plot_timeline(rows: Sequence[TimelineRow], path: Path) -> Path:
    """F1 per window (micro-F1 over all true tags) with and without auto-retrain, drift scores against their
    thresholds, retrain marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.window for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, constrained_layout=True)
    ax1.plot(x, [r.f1_served for r in rows], "o-", label="served model (auto-retrain)")
    ax1.plot(x, [r.f1_frozen for r in rows], "s--", label="first model, frozen")
    ax1.set_ylabel("micro-F1 on the window (all tags)")
    ax1.set_title("tagwatch demo: replayed Stack Overflow questions")
    for kind, style in (("data", "o-"), ("concept", "^-"), ("feature", "d-")):
        ax2.plot(
            x,
            [r.scores.get(kind) if r.scores.get(kind) is not None else float("nan") for r in rows],
            style,
            label=f"{kind} drift score",
        )
    ax2.axhline(1.0, color="grey", linestyle=":", label="threshold")
    ax2.set_ylabel("drift score / threshold")
    ax2.set_xlabel("window")
    first_drift = next((r.window for r in rows if r.phase == "drift"), None)
    for ax in (ax1, ax2):
        if first_drift is not None:
            ax.axvspan(first_drift - 0.5, x[-1] + 0.5, color="orange", alpha=0.08)
        for r in rows:
            if r.retrain:
                promoted = r.retrain.startswith("promoted")
                ax.axvline(r.window + 0.5, color="green" if promoted else "red", linestyle="--", alpha=0.7)
    ax1.text(
        0.01,
        0.02,
        "dashed lines: retrain (green promoted, red rejected); shaded: later years",
        transform=ax1.transAxes,
        fontsize=8,
    )
    ax1.legend(loc="upper right", fontsize=8)
    ax2.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

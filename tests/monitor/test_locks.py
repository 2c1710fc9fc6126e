"""One drift run and one promotion at a time, across processes (tagwatch/locks.py, monitor/job.py).

The lock itself on a SQLite file, in-memory SQLite and PostgreSQL (a second holder is refused, released on exit,
released when the holder's connection or process dies); then real monitor processes with their embedded retrain
runner (tests/monitor/monitor_proc.py) against one request log and one registry: two of them racing, and one
SIGKILLed during its retrain.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from commands.retraining import embedded_runner
from monitor.job import LOCK_BUSY_REASON, Monitor
from tagwatch.data import Question
from tagwatch.db import DriftRun, make_engine, upgrade_database
from tagwatch.locks import (
    DRIFT_RUN,
    PROMOTION,
    LockBusy,
    NamedLock,
    hold,
    lock_key,
    lock_path,
    promotion_lock,
)
from tagwatch.registry import Registry
from tagwatch.retrain_queue import INTERRUPTED
from tagwatch.settings import Settings, get_settings
from tests.support import log_questions

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tagwatch"


@pytest.fixture
def engines(database_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database, as two processes would have."""
    a, b = make_engine(database_url), make_engine(database_url)
    yield a, b
    a.dispose()
    b.dispose()


def wait_until(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def free(engine: Engine, name: str = DRIFT_RUN) -> bool:
    with hold(engine, name, model_name=MODEL) as got:
        return got


# --- the lock ------------------------------------------------------------------------------------------------------


def test_keys_and_files_are_per_name_and_model() -> None:
    assert lock_key(DRIFT_RUN, "tagwatch") == lock_key(DRIFT_RUN, "tagwatch")
    keys = {lock_key(n, m) for n in (DRIFT_RUN, PROMOTION) for m in ("tagwatch", "other")}
    assert len(keys) == 4
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_path("/x/tagwatch.db", PROMOTION, "a/b c") == Path("/x/tagwatch.db.promotion.a_b_c.lock")


def test_a_held_lock_refuses_a_second_holder_until_released(engines: tuple[Engine, Engine]) -> None:
    a, b = engines
    with hold(a, DRIFT_RUN, model_name=MODEL) as got:
        assert got
        assert not free(b)
        assert not free(a)  # another holder in the same process (the lock is not reentrant)
        with pytest.raises(LockBusy, match="drift-run lock of model 'tagwatch' is held elsewhere"):
            NamedLock(b, DRIFT_RUN, model_name=MODEL).__enter__()
        # Other names and other models are other locks.
        assert free(b, PROMOTION)
        with hold(b, DRIFT_RUN, model_name="other") as other:
            assert other
    assert free(b)
    with promotion_lock(a, MODEL), pytest.raises(LockBusy), promotion_lock(b, MODEL):
        pass
    with promotion_lock(b, MODEL) as lock:
        assert lock.held
    if a.url.get_backend_name() == "postgresql":
        with a.connect() as conn:  # nothing left behind, in the pool or elsewhere
            assert conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar() == 0


def test_wait_takes_the_lock_once_it_is_released(engines: tuple[Engine, Engine]) -> None:
    a, b = engines
    holder = NamedLock(a, PROMOTION, model_name=MODEL)
    assert holder.acquire()
    start = time.monotonic()
    with hold(b, PROMOTION, model_name=MODEL, wait=0.3) as got:
        assert not got
    assert time.monotonic() - start >= 0.3
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    start = time.monotonic()
    with promotion_lock(b, MODEL, wait=10) as lock:
        assert lock.held
        assert 0.25 <= time.monotonic() - start < 5
    timer.join()


def test_in_memory_sqlite_lock_is_per_engine_and_process() -> None:
    a, b = make_engine("sqlite://"), make_engine("sqlite://")
    with hold(a, DRIFT_RUN, model_name=MODEL) as got:
        assert got
        assert not free(a)
        assert free(b)  # another in-memory database
    assert free(a)


def test_sqlite_lock_file_sits_next_to_the_database(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    with hold(engine, PROMOTION, model_name=MODEL) as got:
        assert got
        assert (tmp_path / "tagwatch.db.promotion.tagwatch.lock").exists()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_lock_dies_with_its_connection(postgres_url: str) -> None:
    a, b, admin = make_engine(postgres_url), make_engine(postgres_url), make_engine(postgres_url)
    holder = NamedLock(a, DRIFT_RUN, model_name=MODEL)
    assert holder.acquire()
    assert holder.backend_pid is not None
    assert not free(b)
    with admin.connect() as conn:
        # Autocommit: the lock's connection keeps no transaction open while it holds the lock.
        state = conn.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :p"), {"p": holder.backend_pid})
        assert state.scalar() == "idle"
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder.backend_pid}).scalar()
    wait_until(lambda: free(b), timeout=10, what="the lock to die with its connection")
    holder.release()  # the connection is gone: logged, not raised
    assert not holder.held
    for engine in (a, b, admin):
        engine.dispose()


HOLDER = """
import sys, time
from tagwatch.db import make_engine
from tagwatch.locks import NamedLock
lock = NamedLock(make_engine(sys.argv[1]), sys.argv[2], model_name=sys.argv[3])
assert lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_process_releases_the_lock(engines: tuple[Engine, Engine], database_url: str) -> None:
    a, _ = engines
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url, PROMOTION, MODEL],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert not free(a, PROMOTION)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: free(a, PROMOTION), timeout=10, what="the killed process's lock to be released")
    finally:
        proc.kill()
        proc.wait()


# --- tagwatch retrain ----------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    home = tmp_path / "home"
    monkeypatch.setenv("TAGWATCH_HOME", str(home))
    for name in ("TAGWATCH_DATABASE_URL", "TAGWATCH_REGISTRY_URL", "TAGWATCH_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    settings = Settings(home=home)
    upgrade_database(settings.db_url)
    yield settings
    get_settings.cache_clear()


def test_cli_retrain_refuses_while_a_promotion_runs(cli_env: Settings) -> None:
    from commands.cli import app

    engine = make_engine(cli_env.db_url)
    with promotion_lock(engine, MODEL):
        busy = CliRunner().invoke(app, ["retrain"])
        assert busy.exit_code == 1
        assert "a retrain or promotion is running (monitor?)" in busy.output
        assert "--wait SECONDS" in busy.output
        start = time.monotonic()
        waited = CliRunner().invoke(app, ["retrain", "--json", "--wait", "0.5"])
        assert time.monotonic() - start >= 0.5
        assert waited.exit_code == 1
        assert json.loads(waited.stdout)["result"] == "busy"
        assert "after waiting 0.5 s" in waited.output
    engine.dispose()
    assert not (cli_env.home / "registry.db").exists()  # nothing was touched


class _Champion1:
    def champion_version(self) -> str:
        return "1"


def test_cli_retrain_holds_the_lock_and_records_no_drift_run(cli_env: Settings, monkeypatch: Any) -> None:
    import retrain.promote
    from commands.cli import app
    from tagwatch.retrain_queue import RetrainRequest

    engine = make_engine(cli_env.db_url)
    seen: dict[str, Any] = {}

    def fake_retrain(registry: Any, labelled: Any, **kwargs: Any) -> Any:
        seen["free"] = free(engine, PROMOTION)
        seen["trigger"] = kwargs["trigger"]
        return retrain.promote.RetrainOutcome(
            result="rejected",
            challenger_version="2",
            champion_version="1",
            parent_version="1",
            comparison={"reasons": ["keep the champion"]},
            seconds=0.1,
        )

    monkeypatch.setattr(retrain.promote, "retrain", fake_retrain)
    monkeypatch.setattr(Registry, "from_settings", classmethod(lambda cls, *a, **k: _Champion1()))
    result = CliRunner().invoke(app, ["retrain", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == {"free": False, "trigger": "manual"}
    out = json.loads(result.stdout)
    assert out["result"] == "rejected"
    assert out["lock"] == PROMOTION
    assert out["recorded_in_drift_runs"] is False
    assert free(engine, PROMOTION)
    with Session(engine) as session:
        assert session.query(DriftRun).count() == 0
        # One request, filed and run at once: manual, by the user, with its outcome.
        (request,) = session.scalars(select(RetrainRequest)).all()
        assert (request.reason, request.status, request.drift_run_id) == ("manual", "rejected", None)
        assert request.requested_by.startswith("cli:")
        assert request.outcome is not None
        assert request.outcome["challenger_version"] == "2"
    engine.dispose()


# --- monitor processes ---------------------------------------------------------------------------------------------


@pytest.fixture
def drifted_log(bundled_questions: list[Question]) -> Any:
    """A request log of 600 questions of 2022 and later, with feedback: its windows drifted from the champion's."""
    new_topic = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][:600]

    def make(url: str) -> Engine:
        upgrade_database(url)
        engine = make_engine(url)
        log_questions(engine, new_topic, now=datetime.now(UTC))
        return engine

    return make


# The monitors' policy: one window confirms drift and a confirmed window retrains (cool-down 3 windows, no follow-ups);
# a small vocabulary keeps the retrain short.
MONITOR_SETTINGS = {
    "window_size": 300,
    "drift_confirmations": 1,
    "retrain_window": 600,
    "retrain_min_labelled": 300,
    "retrain_cooldown_windows": 3,
    "retrain_max_followups": 0,
    "retrain_reference_size": 300,
    "top_n_tags": 40,
}


def monitor_settings(settings: Settings, database_url: str) -> Settings:
    """The settings of the monitor processes: the test's home (its registry), the request log at ``database_url``."""
    return Settings(**{**settings.model_dump(), **MONITOR_SETTINGS, "database_url": database_url})


def monitor_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the environment of a monitor process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGWATCH_")}
    env.update(
        TAGWATCH_HOME=str(settings.home),
        TAGWATCH_DATABASE_URL=settings.db_url,
        TAGWATCH_REGISTRY_URL=settings.tracking_url,
        TAGWATCH_MODEL_NAME=settings.model_name,
        **{f"TAGWATCH_{k.upper()}": str(v) for k, v in MONITOR_SETTINGS.items()},
    )
    return env


def start_monitor(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[str]:
    """``python -m tests.monitor.monitor_proc ARGS``: JSON lines on its stdout, its log in ``log_path``."""
    with open(log_path, "w") as log:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.monitor.monitor_proc", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def next_event(proc: subprocess.Popen[str], log_path: Path, event: str) -> dict[str, Any]:
    """Read the process's JSON lines up to the first ``event`` (its stderr on failure)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        record = json.loads(line)
        if record["event"] == event:
            return dict(record)
    proc.wait()
    raise AssertionError(f"the monitor process ended ({proc.returncode}) before {event!r}:\n{log_path.read_text()}")


def runs_in(engine: Engine) -> list[DriftRun]:
    with Session(engine) as session:
        rows = list(session.scalars(select(DriftRun).order_by(DriftRun.started_at, DriftRun.id)).all())
        session.expunge_all()
    return rows


@pytest.mark.postgres
def test_two_monitor_processes_never_run_or_promote_at_once(
    registry_with_champion: Any, settings: Settings, postgres_url: str, drifted_log: Any, tmp_path: Path
) -> None:
    engine = drifted_log(postgres_url)
    env = monitor_env(monitor_settings(settings, postgres_url))
    logs = [tmp_path / f"monitor-{i}.log" for i in range(2)]
    procs = [start_monitor(env, path, "runs", "2") for path in logs]
    events: list[dict[str, Any]] = []
    try:
        for proc, path in zip(procs, logs, strict=True):
            next_event(proc, path, "ready")
        for proc in procs:  # both start racing for the lock at the same moment
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc, path in zip(procs, logs, strict=True):
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, path.read_text()
            events += [json.loads(line) for line in out.splitlines()]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()

    calls = [e for e in events if e["event"] == "run"]
    retrains = sorted((e for e in events if e["event"] == "retrain"), key=lambda e: e["t0"])
    rows = runs_in(engine)
    assert {r.status for r in rows} <= {"ok", "skipped"}
    # No two runs overlap: each ended before the next one started (in any process).
    for before, after in itertools.pairwise(rows):
        assert before.finished_at is not None
        assert before.finished_at <= after.started_at, f"runs {before.id} and {after.id} overlap"
    # No two retrains overlap either (timed inside the processes, around retrain.promote.retrain).
    for first, second in itertools.pairwise(retrains):
        assert first["t1"] <= second["t0"], f"two retrains at once: {first}, {second}"
    # Every retrain the runs decided ran once, and no champion was promoted twice from one confirmed drift.
    decided = [r for r in rows if r.retrain_triggered]
    assert decided, "the drifted window should have started a retrain"
    assert len(decided) == len(retrains)
    assert all(any(r.confirmed.values()) for r in decided)
    assert all(r.retrain and r.retrain["result"] in ("promoted", "rejected", "held", "failed") for r in decided)
    promoted = [r.retrain for r in decided if r.retrain and r.retrain["result"] == "promoted"]
    parents = [p["parent_version"] for p in promoted]
    assert len(parents) == len(set(parents)), f"two promotions from one champion: {parents}"
    registered = [r.retrain for r in decided if r.retrain and r.retrain.get("challenger_version")]
    assert len(registry_with_champion.list_versions()) == 1 + len(registered)
    assert registry_with_champion.champion_version() == (promoted[-1]["challenger_version"] if promoted else "1")
    # Both processes ran, each held the lock for its 2 runs; the loser of a race was skipped without a row.
    assert len(rows) == 4
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for call in calls:
        by_pid.setdefault(call["pid"], []).append(call)
    assert len(by_pid) == 2
    assert all(sum(1 for c in cs if c["id"] is not None) == 2 for cs in by_pid.values()), by_pid
    busy = [c for c in calls if c["id"] is None]
    assert busy, "the two processes never met at the lock"
    assert all(c["status"] == "skipped" and c["reasons"] == [LOCK_BUSY_REASON] for c in busy)
    engine.dispose()


def test_a_monitor_killed_during_its_retrain_does_not_retrain_again_at_once(
    registry_with_champion: Any,
    settings: Settings,
    database_url: str,
    drifted_log: Any,
    tmp_path: Path,
    bundled_questions: list[Question],
) -> None:
    from tagwatch.retrain_queue import FAILED, INTERRUPTED_ERROR, RetrainRequest

    engine = drifted_log(database_url)
    mine = monitor_settings(settings, database_url)
    log_path = tmp_path / "monitor.log"
    proc = start_monitor(monitor_env(mine), log_path, "hang-in-retrain")
    monitor = Monitor(mine, engine=engine, registry=registry_with_champion)
    runner = embedded_runner(monitor)
    assert runner is not None
    try:
        next_event(proc, log_path, "retraining")
        (row,) = runs_in(engine)
        # The run ended when it filed the retrain; its runner claimed it and is training.
        assert row.status == "ok"
        assert row.finished_at is not None
        assert row.retrain_triggered
        assert row.retrain is not None
        assert row.retrain["result"] == "running"
        assert row.retrain["trigger"].startswith("drift: ")
        assert row.retrain["pid"] == proc.pid
        assert any(row.confirmed.values())
        assert row.summary is not None
        # While it runs, another monitor's run is not held back (the retrain holds no drift-run lock) and files no
        # second retrain; a manual retrain is refused, and another runner leaves the request alone.
        # (new requests: a run that finds the window of the last one unchanged does not measure it again)
        more = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][600:1200]
        log_questions(engine, more[:300], now=datetime.now(UTC))
        busy = monitor.run_once()
        assert busy.status == "ok", busy.error
        assert not busy.retrain_triggered
        assert busy.reasons[-1] == "cool-down: 1 of 3 windows since the last retrain"
        with pytest.raises(LockBusy), promotion_lock(engine, MODEL):
            pass
        assert runner.run_pending() == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: free(engine, PROMOTION), timeout=10, what="the killed runner's lock to be released")

    # The next runner finds the request left running: failed, once, and not run again.
    assert runner.run_pending() == []
    assert runner.run_pending() == []
    with Session(engine) as session:
        (request,) = session.scalars(select(RetrainRequest)).all()
        assert (request.status, request.error) == (FAILED, INTERRUPTED_ERROR)
    log_questions(engine, more[300:], now=datetime.now(UTC))
    after = monitor.run_once()
    assert after.status == "ok", after.error
    stale, _busy, current = runs_in(engine)
    assert stale.id == row.id
    assert stale.status == "ok"
    assert stale.retrain is not None
    assert stale.retrain["result"] == INTERRUPTED
    assert stale.retrain["error"] == INTERRUPTED_ERROR
    assert stale.retrain["trigger"] == row.retrain["trigger"]
    assert stale.retrain["champion_version_when_noticed"] == "1"
    # The drift is still confirmed, but the interrupted retrain counts for the cool-down: no crash loop.
    assert current.id == after.id
    assert any(after.confirmed.values())
    assert not after.retrain_triggered
    assert after.reasons[-1] == "cool-down: 2 of 3 windows since the last retrain"
    assert [v.version for v in registry_with_champion.list_versions()] == ["1"]
    assert registry_with_champion.champion_version() == "1"
    samples = {
        s.labels.get("result"): s.value
        for m in runner.metrics.retrains.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert samples["failed"] == 1.0
    engine.dispose()

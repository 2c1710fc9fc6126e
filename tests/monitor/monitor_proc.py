"""A monitor in a process of its own, for tests/monitor/test_locks.py: ``python -m tests.monitor.monitor_proc MODE``.

Settings come from the ``TAGWATCH_*`` environment: the request log at ``TAGWATCH_DATABASE_URL``, the registry (the
test's SQLite MLflow store and artifacts) under ``TAGWATCH_HOME``. Prints JSON lines on stdout.

- ``runs N``: loads the champion, prints ``{"event": "ready"}``, waits for a line on stdin (so that the test starts
  several processes at the same moment), then calls ``Monitor.run_once`` until N runs held the drift-run lock (at most
  150 s), each followed by the embedded retrain runner when the run filed a retrain (as ``tagwatch monitor`` wakes
  it), printing ``{"event": "run", ...}`` per call and ``{"event": "retrain", ...}`` per retrain (its wall-clock
  start and end), then ``{"event": "done"}``.
- ``hang-in-retrain``: one run, then the embedded runner, whose retrain prints ``{"event": "retraining"}`` and then
  sleeps until the process is killed (the test SIGKILLs it there).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from commands.retraining import embedded_runner, retrain_after


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}, default=str), flush=True)


def build() -> Any:
    """The monitor as ``tagwatch monitor`` builds it."""
    from commands.scheduler import build_monitor
    from tagwatch.settings import Settings

    return build_monitor(Settings())


def runs(n: int) -> None:
    import retrain.promote

    real = retrain.promote.retrain

    def timed_retrain(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        out = real(*args, **kwargs)
        emit("retrain", t0=t0, t1=time.time(), result=out.result, parent=out.parent_version)
        return out

    # The retrain runner looks retrain.promote.retrain up when it calls it.
    retrain.promote.retrain = timed_retrain
    monitor = build()
    runner = embedded_runner(monitor)
    # The champion, its reference and the drift report's imports before the start signal, not during the race.
    monitor._load_champion(monitor.registry.champion_version())
    import evidently.metrics  # noqa: F401
    import plotly.graph_objs  # noqa: F401

    emit("ready")
    sys.stdin.readline()
    held = 0
    deadline = time.monotonic() + 150
    while held < n and time.monotonic() < deadline:
        t0 = time.time()
        outcome = monitor.run_once()
        t1 = time.time()
        outcome = retrain_after(runner, monitor, outcome)
        retrain_result = (outcome.retrain or {}).get("result")
        emit("run", t0=t0, t1=t1, id=outcome.id, status=outcome.status, reasons=outcome.reasons, retrain=retrain_result)
        if outcome.id is not None:
            held += 1
        # Give the other processes their turn: a loser polls, a winner pauses longer.
        time.sleep(0.6 if outcome.id is not None else 0.25)
    emit("done", held=held)


def hang_in_retrain() -> None:
    import retrain.promote

    def hang(*args: Any, **kwargs: Any) -> Any:
        emit("retraining")
        time.sleep(600)
        raise SystemExit("not killed")

    retrain.promote.retrain = hang
    monitor = build()
    outcome = monitor.run_once()
    emit("run", id=outcome.id, status=outcome.status, reasons=outcome.reasons)
    retrain_after(embedded_runner(monitor), monitor, outcome)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    mode, *rest = argv
    if mode == "runs":
        runs(int(rest[0]))
    elif mode == "hang-in-retrain":
        hang_in_retrain()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

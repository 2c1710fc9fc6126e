"""The retrain runner's wiring: embedded beside the monitor, alone as a worker, once for `tagwatch retrain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import commands.retraining as retraining
from commands.scheduler import RETRAIN_JOB
from monitor.metrics import MonitorMetrics
from tagwatch.settings import Settings


class StubMonitor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = object()  # stand-ins: the runner keeps them as they are
        self.registry = object()
        self.metrics = MonitorMetrics()


def test_the_embedded_runner_shares_the_monitors_parts_and_metrics(tmp_path: Path) -> None:
    monitor = StubMonitor(Settings(home=tmp_path))
    runner = retraining.embedded_runner(monitor)  # type: ignore[arg-type]
    assert runner is not None
    assert runner.engine is monitor.engine
    assert runner.registry is monitor.registry
    assert runner.settings is monitor.settings
    assert runner.metrics.registry is monitor.metrics.registry
    assert retraining.embedded_runner(StubMonitor(Settings(home=tmp_path, retrain_runner="off"))) is None  # type: ignore[arg-type]


def test_the_worker_polls_with_its_own_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import apscheduler.schedulers.blocking

    seen: dict[str, Any] = {}

    class Scheduler:
        def __init__(self, **kwargs: Any) -> None:
            self.jobs: list[dict[str, Any]] = []

        def add_job(self, func: Any, trigger: str, **kwargs: Any) -> None:
            self.jobs.append({"func": func, "trigger": trigger, **kwargs})

        def start(self) -> None:
            seen["jobs"] = self.jobs
            raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(apscheduler.schedulers.blocking, "BlockingScheduler", Scheduler)
    settings = Settings(home=tmp_path, retrain_poll_seconds=30)
    retraining.run_worker(settings, host="127.0.0.1", port=0, interval_seconds=None)
    (job,) = seen["jobs"]
    assert (job["id"], job["trigger"], job["seconds"], job["max_instances"]) == (RETRAIN_JOB, "interval", 30, 1)
    assert job["func"].__self__.settings.retrain_poll_seconds == 30  # the runner's run_pending

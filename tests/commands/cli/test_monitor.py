"""`tagwatch monitor` (its schedule and metrics port) and `tagwatch drift-check` (its summary and exit code)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tagwatch.settings import Settings
from tests.commands.cli.support import invoke


class FakeScheduler:
    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True
        raise KeyboardInterrupt  # as Ctrl-C ends a blocking scheduler


@pytest.fixture
def scheduled(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `tagwatch monitor` asked the scheduler wiring for."""
    import commands.scheduler

    seen: dict[str, Any] = {"served": []}
    scheduler = FakeScheduler()
    seen["scheduler"] = scheduler

    def start_scheduler(monitor: Any, **kwargs: Any) -> FakeScheduler:
        seen.update(kwargs)
        return scheduler

    monkeypatch.setattr(commands.scheduler, "build_monitor", lambda settings, **kwargs: "the monitor")
    monkeypatch.setattr(commands.scheduler, "serve_metrics", lambda mon, **kwargs: seen["served"].append(kwargs))
    monkeypatch.setattr(commands.scheduler, "start_scheduler", start_scheduler)
    return seen


def test_monitor_defaults_come_from_the_settings(scheduled: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGWATCH_MONITOR_INTERVAL_SECONDS", "42")
    monkeypatch.setenv("TAGWATCH_MONITOR_PORT", "9200")
    result = invoke("monitor")
    assert result.exit_code == 0, result.output
    assert scheduled["scheduler"].started
    assert scheduled["interval_seconds"] == 42
    assert scheduled["background"] is False
    assert scheduled["served"] == [{"host": "127.0.0.1", "port": 9200}]


def test_monitor_options_override_them_and_port_0_serves_no_metrics(scheduled: dict[str, Any]) -> None:
    result = invoke("monitor", "--interval", "5", "--port", "0", "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert scheduled["interval_seconds"] == 5
    assert scheduled["served"] == []
    refused = invoke("monitor", "--interval", "0.5")
    assert refused.exit_code == 2
    assert "--interval" in refused.output
    assert scheduled["interval_seconds"] == 5  # no second start


@dataclass
class FakeOutcome:
    """What drift-check reads of a run: its id, status and JSON."""

    id: int | None
    status: str
    kinds: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    report: str | None = None
    retrain: dict[str, Any] | None = None  # what it filed (nothing here)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "status": self.status,
            "model_version": "3",
            "kinds": self.kinds,
            "decision": {"reasons": self.reasons},
            "report": self.report,
        }


@pytest.fixture
def run_once(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The next drift run's outcome (set ``outcome``) and what drift-check asked of it."""
    import commands.scheduler

    seen: dict[str, Any] = {}

    class FakeMonitor:
        def run_once(self, *, allow_retrain: bool) -> FakeOutcome:
            seen["allow_retrain"] = allow_retrain
            outcome: FakeOutcome = seen["outcome"]
            return outcome

    monkeypatch.setattr(commands.scheduler, "build_monitor", lambda settings, **kwargs: FakeMonitor())
    return seen


KINDS = {
    "data": {"score": 0.71, "threshold": 0.65, "detected": True, "confirmed": True},
    "concept": {"score": 0.2, "threshold": 1.0, "detected": True, "confirmed": False},
    "feature": {"score": 0.1, "threshold": 0.25, "detected": False, "confirmed": False},
}


def test_drift_check_prints_each_kind_and_the_decision(run_once: dict[str, Any], cli_home: Settings) -> None:
    run_once["outcome"] = FakeOutcome(7, "ok", KINDS, ["data drift confirmed", "retrain filed"], "run-7.html")
    result = invoke("drift-check")
    assert result.exit_code == 0, result.output
    assert run_once["allow_retrain"] is True
    assert result.output.splitlines() == [
        "run 7: ok (model 3)",
        "  data     score 0.71 threshold 0.65 CONFIRMED",
        "  concept  score 0.2 threshold 1.0 detected",
        "  feature  score 0.1 threshold 0.25 -",
        "  decision: data drift confirmed; retrain filed",
        f"  report: {cli_home.reports_dir / 'run-7.html'}",
    ]


def test_drift_check_skipped_while_another_run_holds_the_lock(run_once: dict[str, Any]) -> None:
    run_once["outcome"] = FakeOutcome(None, "skipped", reasons=["another drift run holds the lock"])
    result = invoke("drift-check", "--no-retrain")
    assert result.exit_code == 0
    assert run_once["allow_retrain"] is False
    assert result.output == "not run: another drift run holds the lock\n"


def test_drift_check_json_and_a_failed_run_exits_1(run_once: dict[str, Any]) -> None:
    run_once["outcome"] = FakeOutcome(8, "failed", reasons=["the champion could not be loaded"])
    result = invoke("drift-check", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == run_once["outcome"].to_dict()

"""`tagwatch backtest` and `tagwatch demo` as commands: what they hand the drivers and what they print (the drivers
themselves: tests/commands/test_backtest.py, test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tagwatch.settings import Settings
from tests.commands.cli.support import TINY_DATA, invoke

RESULT: dict[str, Any] = {
    "stable": {"windows": 20, "alarms": 0, "detections": {"data": 0}, "retrains": 0},
    "poisoned": {
        "pairs": [["python", "java"]],
        "swap": {"windows": 10, "alarms": 1, "retrains": 3, "held": 3, "rejected": 0, "promotions": 0},
    },
    "chronological": {
        "shift_window": 4,
        "first_confirmed_window": 5,
        "detection_delay_windows": 2,
        "alarms_before_shift": 0,
        "mean_f1_after_shift": {"frozen": 0.358, "policy": 0.577, "oracle": 0.608},
        "policy_vs_oracle": 0.9489,
    },
}


@pytest.fixture
def backtest_args(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import commands.scenarios

    seen: dict[str, Any] = {}

    def run_scenarios(questions: Any, settings: Settings, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, n_questions=len(questions))
        return RESULT

    monkeypatch.setenv("TAGWATCH_DATA_PATH", str(TINY_DATA))
    monkeypatch.setattr(commands.scenarios, "run_scenarios", run_scenarios)
    return seen


def test_backtest_prints_one_line_per_scenario(backtest_args: dict[str, Any]) -> None:
    result = invoke("backtest", "--window", "200", "--max-train", "600")
    assert result.exit_code == 0, result.output
    assert backtest_args == {"window": 200, "max_train": 600, "n_questions": 7}
    assert result.output.splitlines() == [
        "stable (shuffled) stream: 20 windows, 0 confirmed alarms, detections per kind {'data': 0}, retrains 0",
        "poisoned feedback (swap): 10 windows, 1 confirmed alarms, retrains 3 (held 3, rejected 0), promotions 0",
        "chronological stream: shift at window 4, first confirmed 5 (delay 2 windows), alarms before the shift 0",
        "mean micro-F1 over all tags after the shift: frozen 0.358, policy 0.577, oracle 0.608; policy/oracle 0.949",
    ]


def test_backtest_json_and_output_file(backtest_args: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "backtest.json"
    result = invoke("backtest", "--json", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert (backtest_args["window"], backtest_args["max_train"]) == (500, 12_000)
    assert json.loads(result.stdout) == RESULT
    assert json.loads(out.read_text()) == RESULT


def test_backtest_refuses_windows_below_100(backtest_args: dict[str, Any]) -> None:
    assert invoke("backtest", "--window", "99").exit_code == 2
    assert backtest_args == {}


def test_demo_runs_at_its_own_scale(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import commands.demo

    seen: dict[str, Any] = {}
    timeline = [
        SimpleNamespace(retrain=None),
        SimpleNamespace(retrain="promoted 2"),
        SimpleNamespace(retrain="rejected"),
    ]

    def run_demo(settings: Settings, plan: Any, *, echo: Any) -> Any:
        seen["settings"], seen["plan"] = settings, plan
        echo("a line of the demo")
        return SimpleNamespace(timeline=timeline, seconds=181.4, plot=Path("p.png"), reports_index=Path("r/index.html"))

    monkeypatch.setattr(commands.demo, "run_demo", run_demo)
    monkeypatch.setenv("TAGWATCH_SEED", "7")
    result = invoke("demo", "--window", "300", "--max-train", "2000")
    assert result.exit_code == 0, result.output
    settings, plan = seen["settings"], seen["plan"]
    assert (plan.window, plan.max_train) == (300, 2000)
    assert (settings.window_size, settings.min_window, settings.retrain_window) == (300, 300, 2400)
    assert (settings.reload_interval_seconds, settings.log_flush_interval_seconds) == (0.5, 0.1)
    assert (settings.seed, settings.home) == (7, cli_home.home)  # the rest as configured
    assert result.output.splitlines() == [
        f"tagwatch demo: state in {cli_home.home}",
        "a line of the demo",
        "done in 181 s: 3 windows, 2 retrain(s), 1 promoted",
        "plot:    p.png",
        "reports: r/index.html",
    ]

"""`--json` on `migrate`, `init` and `rollback`: one JSON document on stdout, nothing else there; refusals keep their
exit code and go to stderr."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from tagwatch.settings import Settings
from tests.commands.cli.support import invoke


def test_migrate_json(cli_home: Settings) -> None:
    result = invoke("migrate", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "database": cli_home.db_url,
        "registry": cli_home.tracking_url,
        "partitions_created": [],
        "roles": [],
        "champion": None,
    }
    assert cli_home.reports_dir.is_dir()


def test_init_json_with_a_champion_trains_nothing(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from tagwatch.registry import Registry

    monkeypatch.setattr(Registry, "champion_version", lambda self: "3")
    result = invoke("init", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["trained"] is False
    assert document["version"] == "3"
    assert document["migrate"]["champion"] == "3"


def test_init_json_reports_the_first_model(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import retrain.job

    seen: dict[str, Any] = {}

    def fake_train(settings: Settings, questions: list[Any], trigger: str) -> SimpleNamespace:
        seen["n"], seen["trigger"] = len(questions), trigger
        metrics = {"time": {"micro_f1": 0.6, "per_tag_f1": {"python": 0.9}}, "random": {"micro_f1": 0.7}}
        return SimpleNamespace(version="1", champion=True, data_window={"n": 300}, seconds=1.26, metrics=metrics)

    monkeypatch.setattr(retrain.job, "train_and_register", fake_train)
    result = invoke("init", "--json", "--max-train", "300")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert seen == {"n": 300, "trigger": "init"}
    assert document["trained"] is True
    assert document["version"] == "1"
    assert document["champion"] is True
    assert document["questions"] == 300
    assert document["seconds"] == 1.3
    assert document["metrics"] == {"time": {"micro_f1": 0.6}, "random": {"micro_f1": 0.7}}  # no per-tag F1s
    assert document["migrate"]["champion"] is None


def test_rollback_json(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import retrain.promote

    monkeypatch.setattr(retrain.promote, "rollback", lambda registry, to, trigger, actor: ("2", to or "1"))
    result = invoke("rollback", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"model": "tagwatch", "from": "2", "to": "1", "moved": True}


def test_rollback_json_refused_is_exit_1_with_nothing_on_stdout(cli_home: Settings) -> None:
    result = invoke("rollback", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "rollback refused: nothing to roll back to" in result.output


# --- drift-check --exit-code -----------------------------------------------------------------------------------------
from tests.commands.cli.test_monitor import KINDS, FakeOutcome, run_once  # noqa: E402, F401  (run_once: a fixture)


def test_drift_check_exit_code_3_only_when_asked_and_drift_is_confirmed(run_once: dict[str, Any]) -> None:  # noqa: F811
    run_once["outcome"] = FakeOutcome(7, "ok", KINDS, ["data drift confirmed"])
    assert invoke("drift-check").exit_code == 0  # off by default: scripts keep working
    confirmed = invoke("drift-check", "--exit-code", "--json")
    assert confirmed.exit_code == 3
    assert json.loads(confirmed.stdout)["run_id"] == 7
    detected_only = {k: {**v, "confirmed": False} for k, v in KINDS.items()}
    run_once["outcome"] = FakeOutcome(8, "ok", detected_only, ["data drift detected, not yet confirmed"])
    assert invoke("drift-check", "--exit-code").exit_code == 0
    run_once["outcome"] = FakeOutcome(None, "skipped", reasons=["another drift run holds the lock"])
    assert invoke("drift-check", "--exit-code").exit_code == 0
    run_once["outcome"] = FakeOutcome(9, "failed", KINDS, ["the champion could not be loaded"])
    assert invoke("drift-check", "--exit-code").exit_code == 1  # a failure is a failure, drift or not


# --- demo --json -----------------------------------------------------------------------------------------------------
def test_demo_json_prints_one_document_and_progress_on_stderr(
    cli_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import commands.demo
    from commands.demo import DemoResult

    def fake_run_demo(settings: Settings, plan: Any, echo: Any) -> DemoResult:
        echo("window 1 ...")
        return DemoResult(timeline=[], plot=settings.home / "demo.png", reports_index=None, seconds=12.34)

    monkeypatch.setattr(commands.demo, "run_demo", fake_run_demo)
    result = invoke("demo", "--json", "--window", "100", "--max-train", "500")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["windows"] == 0
    assert document["seconds"] == 12.3
    assert document["timeline"] == []
    assert document["plot"].endswith("demo.png")
    assert document["reports"] is None
    assert "window 1 ..." in result.stderr

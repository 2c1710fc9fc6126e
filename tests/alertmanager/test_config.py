"""The Alertmanager configuration: valid for amtool, routes by severity, inhibits only alerts that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
ALERTS = ROOT / "prometheus" / "alerts.rules.yml"
SINK = "http://alert-sink:9095/alerts"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in _load(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule}


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = require_tool("amtool")
    return subprocess.run([amtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def _route(**labels: str) -> list[str]:
    """The receivers an alert with these labels goes to, as amtool resolves them from the file."""
    result = _amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", *(f"{key}={value}" for key, value in labels.items())
    )
    assert result.returncode == 0, f"amtool config routes test failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.split()


def test_config_is_valid() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, f"amtool check-config failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("alertname", sorted(_alerts()))
def test_each_alert_goes_to_the_receiver_of_its_severity(alertname: str) -> None:
    labels = {key: str(value) for key, value in _alerts()[alertname]["labels"].items()}
    assert _route(alertname=alertname, stack="tagwatch", **labels) == [labels["severity"]]


@pytest.mark.parametrize(("severity", "receiver"), [("page", "page"), ("ticket", "ticket"), ("info", "alert-sink")])
def test_routes_by_severity(severity: str, receiver: str) -> None:
    assert _route(alertname="TagwatchSomething", severity=severity) == [receiver]


def test_an_alert_without_severity_still_reaches_the_sink() -> None:
    assert _route(alertname="TagwatchSomething") == ["alert-sink"]


def test_every_receiver_posts_to_the_alert_sink_with_resolved_notifications() -> None:
    config = _load(CONFIG)
    assert config["route"]["receiver"] == "alert-sink"
    assert config["route"]["group_by"] == ["alertname", "kind"]
    for receiver in config["receivers"]:
        assert receiver["webhook_configs"] == [{"url": SINK, "send_resolved": True}], receiver["name"]


def _named_alerts(matchers: list[str]) -> set[str]:
    """The alert names a list of matchers names: alertname="X" or alertname=~"X|Y" (only plain alternations)."""
    names: set[str] = set()
    for matcher in matchers:
        found = re.fullmatch(r'\s*alertname\s*(=~|=)\s*"?([^"]*)"?\s*', matcher)
        if found is None:
            continue
        operator, value = found.groups()
        if operator == "=~":
            assert re.fullmatch(r"[A-Za-z0-9|]+", value), f"not a plain list of names: {value}"
            names.update(value.split("|"))
        else:
            names.add(value)
    return names


def test_inhibition_rules_name_only_existing_alerts() -> None:
    alerts = _alerts()
    rules = _load(CONFIG)["inhibit_rules"]
    assert rules
    for rule in rules:
        sources = _named_alerts(rule.get("source_matchers", []))
        targets = _named_alerts(rule.get("target_matchers", []))
        assert sources, rule
        assert targets, rule
        assert not (sources | targets) - set(alerts), f"unknown alerts: {sorted((sources | targets) - set(alerts))}"


def test_a_stale_monitor_inhibits_the_drift_and_model_alerts() -> None:
    alerts = _alerts()
    model = {name for name, rule in alerts.items() if rule["labels"]["component"] == "model"}
    assert {"TagwatchDataDriftConfirmed", "TagwatchConceptDriftConfirmed", "TagwatchFeatureDriftConfirmed"} <= model
    stale = [
        rule
        for rule in _load(CONFIG)["inhibit_rules"]
        if _named_alerts(rule["source_matchers"]) == {"TagwatchMonitorStale"}
    ]
    assert len(stale) == 1
    assert _named_alerts(stale[0]["target_matchers"]) == model
    assert stale[0]["equal"] == ["stack"]

"""The Prometheus configuration, recording rules and alerts: promtool checks and unit tests, and their consistency
with the code (metric names) and with each other (every alert tested firing and not firing)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.drift.types import KINDS
from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus.yml"
RECORDING = ROOT / "prometheus" / "recording.rules.yml"
ALERTS = ROOT / "prometheus" / "alerts.rules.yml"
TEST_FILES = sorted((ROOT / "prometheus" / "tests").glob("*.test.yml"))

REQUIRED_LABELS = {"severity", "component"}
REQUIRED_ANNOTATIONS = {"summary", "description", "dashboard", "report"}
SEVERITIES = {"page", "ticket"}
COMPONENTS = {"service", "monitor", "model"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _load(path)["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules(ALERTS) if "alert" in rule]


def _promtool(*args: str | Path) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"


# --- promtool ----------------------------------------------------------------------------------------------------


def test_config_is_valid() -> None:
    # Also checks the rule files the configuration names (relative to the configuration's directory).
    _promtool("check", "config", CONFIG)


@pytest.mark.parametrize("path", [RECORDING, ALERTS], ids=lambda p: p.name)
def test_rule_file_is_valid(path: Path) -> None:
    _promtool("check", "rules", path)


def test_there_are_rule_unit_tests() -> None:
    assert TEST_FILES, "no prometheus/tests/*.test.yml"


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    _promtool("test", "rules", path)


# --- the configuration -------------------------------------------------------------------------------------------


def test_config_loads_both_rule_files_and_scrapes_the_stack() -> None:
    config = _load(CONFIG)
    assert [(CONFIG.parent / f).resolve() for f in config["rule_files"]] == [RECORDING, ALERTS]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"tagwatch-api", "tagwatch-monitor", "tagwatch-retrain", "prometheus", "alertmanager"}
    assert jobs["tagwatch-api"]["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    assert jobs["tagwatch-monitor"]["static_configs"] == [{"targets": ["monitor:9108"]}]
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    assert config["global"]["external_labels"] == {"stack": "tagwatch"}


# --- the alerts ----------------------------------------------------------------------------------------------------


def test_alert_names_are_camel_case_and_prefixed() -> None:
    names = [alert["alert"] for alert in _alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for name in names:
        assert re.fullmatch(r"Tagwatch(?:[A-Z][a-z0-9]+)+", name), name


def test_alerts_have_the_required_labels_and_annotations() -> None:
    for alert in _alerts():
        name, labels, annotations = alert["alert"], alert.get("labels", {}), alert.get("annotations", {})
        assert set(labels) >= REQUIRED_LABELS, name
        assert labels["severity"] in SEVERITIES, name
        assert labels["component"] in COMPONENTS, name
        assert set(annotations) >= REQUIRED_ANNOTATIONS, name
        assert all(str(annotations[key]).strip() for key in REQUIRED_ANNOTATIONS), name
        assert re.fullmatch(r"http://localhost:3000/d/tagwatch-[a-z-]+", annotations["dashboard"]), name
        assert annotations["report"] == "http://localhost:8080/reports/latest", name
        if "drift_confirmed" in alert["expr"]:
            kind = labels.get("kind")
            assert kind in KINDS, name
            assert f'kind="{kind}"' in alert["expr"], name


def test_the_designed_alerts_exist() -> None:
    assert {alert["alert"] for alert in _alerts()} == {
        "TagwatchHighErrorRate",
        "TagwatchHighLatency",
        "TagwatchNoTraffic",
        "TagwatchApiDown",
        "TagwatchRequestLogFailing",
        "TagwatchRequestLogLosingRows",
        "TagwatchSpillNearlyFull",
        "TagwatchMonitorStale",
        "TagwatchDataDriftConfirmed",
        "TagwatchConceptDriftConfirmed",
        "TagwatchFeatureDriftConfirmed",
        "TagwatchRetrainFailed",
        "TagwatchFeedbackSuspected",
        "TagwatchChallengerRejectedRepeatedly",
    }


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for group in _load(path).get("tests") or []:
            for case in group.get("alert_rule_test") or []:
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert not names - firing, f"never tested firing: {sorted(names - firing)}"
    assert not names - quiet, f"never tested not firing: {sorted(names - quiet)}"
    assert not (firing | quiet) - names, f"tests of unknown alerts: {sorted((firing | quiet) - names)}"


# --- metric names --------------------------------------------------------------------------------------------------


def _exported_names() -> set[str]:
    """Every series name the service and the monitor can export (from the metric families, so that labelled metrics
    without a child yet count too)."""
    from monitor.metrics import MonitorMetrics
    from retrain.metrics import RetrainMetrics
    from service.metrics import ServiceMetrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names: set[str] = set()
    for registry in (ServiceMetrics().registry, MonitorMetrics().registry, RetrainMetrics().registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
            names.update(sample.name for sample in family.samples)
    return names


def _expressions() -> list[str]:
    return [rule["expr"] for path in (RECORDING, ALERTS) for rule in _rules(path)]


def test_exported_names_are_collected() -> None:
    # A guard for the helper: a counter, a histogram and a gauge with the names PromQL sees.
    names = _exported_names()
    assert {"tagwatch_http_requests_total", "tagwatch_http_request_duration_seconds_bucket"} <= names
    assert {"tagwatch_drift_confirmed", "tagwatch_retrains_total"} <= names


def test_rules_use_only_metrics_the_code_exports() -> None:
    exported = _exported_names()
    used = {name for expr in _expressions() for name in re.findall(r"\btagwatch_[a-z0-9_]+", expr)}
    assert used, "no tagwatch_ metric found in the rules"
    assert not used - exported, f"metrics used in the rules but not exported: {sorted(used - exported)}"


def test_rules_use_only_recorded_series() -> None:
    recorded = {rule["record"] for rule in _rules(RECORDING)}
    assert all(name.startswith("tagwatch:") for name in recorded), recorded
    used = {name for expr in _expressions() for name in re.findall(r"\btagwatch:[a-z0-9_:]+", expr)}
    assert not used - recorded, f"recording rules used but not defined: {sorted(used - recorded)}"


def test_the_spill_alert_threshold_is_the_default_warn_ratio() -> None:
    # A rule cannot read a setting: TagwatchSpillNearlyFull's 0.8 is TAGWATCH_SPILL_WARN_RATIO's default, which
    # `tagwatch prune` uses to call the spill nearly full. Change both together.
    from tagwatch.settings import Settings

    (alert,) = [a for a in _alerts() if a["alert"] == "TagwatchSpillNearlyFull"]
    threshold = float(re.findall(r"\)\s*>\s*([0-9.]+)\s*$", alert["expr"].strip())[0])
    assert threshold == Settings.model_fields["spill_warn_ratio"].default
    assert "TAGWATCH_SPILL_WARN_RATIO" in ALERTS.read_text().split("- alert: TagwatchSpillNearlyFull")[0][-900:]

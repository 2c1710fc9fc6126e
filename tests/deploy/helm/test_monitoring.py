"""What the chart gives Prometheus and Grafana: the scrape jobs the rules select on, the rules and dashboards of the
repository itself (not copies), promtool on the rules as rendered, and data sources with the dashboards' uids."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helm.chart import MINIMAL_VALUES, REPO, Rendered, annotations, labels, render
from tests.support import require_tool

RULE_FILES = sorted((REPO / "prometheus").glob("*.rules.yml"))
RULE_TESTS = sorted((REPO / "prometheus" / "tests").glob("*.test.yml"))
DASHBOARDS = sorted((REPO / "dashboards" / "json").glob("*.json"))
DATASOURCES = REPO / "dashboards" / "provisioning" / "datasources" / "datasources.yml"
JOB_SELECTOR = re.compile(r'job\s*=~?\s*"([^"]+)"')


def _rules_by_source(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {annotations(r)["tagwatch/source"]: r for r in rendered.of_kind("PrometheusRule")}


def _jobs_in(text: str) -> set[str]:
    """The `job` values the PromQL in ``text`` selects on (exact matches and regex alternatives)."""
    return {job for match in JOB_SELECTOR.findall(text) for job in match.split("|")}


def _exprs(node: Any) -> list[str]:
    """Every PromQL `expr` of a dashboard (panels, targets, annotations, templating)."""
    if isinstance(node, dict):
        own = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return own + [e for value in node.values() for e in _exprs(value)]
    if isinstance(node, list):
        return [e for value in node for e in _exprs(value)]
    return []


def _service_for(rendered: Rendered, monitor: dict[str, Any]) -> dict[str, Any]:
    selector = monitor["spec"]["selector"]["matchLabels"]
    (service,) = (s for s in rendered.of_kind("Service") if selector.items() <= labels(s).items())
    return service


# --- scrape jobs ---------------------------------------------------------------------------------------------------


def test_the_scraped_jobs_are_the_ones_the_rules_and_dashboards_select() -> None:
    rendered = render(MINIMAL_VALUES)
    jobs = set()
    for monitor in rendered.of_kind("ServiceMonitor"):
        service = _service_for(rendered, monitor)
        # jobLabel: Prometheus takes the job from this label of the Service (not from the Service's name).
        jobs.add(labels(service)[monitor["spec"]["jobLabel"]])
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert jobs == {"tagwatch-api", "tagwatch-monitor", "tagwatch-retrain"}
    # The compose stack's Prometheus scrapes the same jobs (prometheus.yml).
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    assert jobs == {c["job_name"] for c in config["scrape_configs"] if c["job_name"].startswith("tagwatch-")}
    # Every job a rule or a dashboard query selects on is scraped.
    queries = [p.read_text(encoding="utf-8") for p in RULE_FILES]
    queries += ["\n".join(_exprs(json.loads(p.read_text(encoding="utf-8")))) for p in DASHBOARDS]
    wanted = set().union(*map(_jobs_in, queries))
    assert {"tagwatch-api", "tagwatch-monitor"} <= wanted, "the job selectors were not found"
    assert wanted <= jobs, f"rules or dashboards select jobs the chart does not scrape: {wanted - jobs}"


def test_scrape_interval_is_the_one_the_rules_assume(minimal: Rendered) -> None:
    # prometheus.yml: the `for:` durations and 5m rate windows assume 15 s.
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    for monitor in minimal.of_kind("ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["interval"] == config["global"]["scrape_interval"]


def test_no_operator_objects_without_the_operator(without_operator: Rendered) -> None:
    assert without_operator.of_kind("ServiceMonitor", "PrometheusRule") == []
    assert {o["apiVersion"] for o in without_operator.objects}.isdisjoint({"monitoring.coreos.com/v1"})
    # Everything else is still there.
    assert len(without_operator.of_kind("Deployment")) == 3


def test_operator_objects_can_be_switched_off() -> None:
    rendered = render(
        MINIMAL_VALUES,
        sets={"monitoring.serviceMonitor.enabled": "false", "monitoring.prometheusRule.enabled": "false"},
    )
    assert rendered.of_kind("ServiceMonitor", "PrometheusRule") == []


def test_extra_labels_reach_every_monitoring_object(rendered: Rendered) -> None:
    extra = rendered.values.get("monitoring", {}).get("labels", {})
    objects = rendered.of_kind("ServiceMonitor", "PrometheusRule")
    objects += [c for c in rendered.of_kind("ConfigMap") if "grafana_dashboard" in labels(c)]
    assert objects
    for obj in objects:
        assert extra.items() <= labels(obj).items(), obj["metadata"]["name"]


def test_kube_prometheus_stack_release_label() -> None:
    rendered = render(MINIMAL_VALUES, sets={"monitoring.labels.release": "kube-prometheus-stack"})
    for obj in rendered.of_kind("ServiceMonitor", "PrometheusRule"):
        assert labels(obj)["release"] == "kube-prometheus-stack"


# --- rules ---------------------------------------------------------------------------------------------------------


def test_rendered_rules_are_the_repository_rule_files(minimal: Rendered) -> None:
    by_source = _rules_by_source(minimal)
    assert set(by_source) == {f"prometheus/{p.name}" for p in RULE_FILES}
    for path in RULE_FILES:
        expected = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        assert by_source[f"prometheus/{path.name}"]["spec"]["groups"] == expected, path.name


def test_the_rule_files_are_linked_not_copied() -> None:
    link = REPO / "deploy" / "helm" / "tagwatch" / "files" / "prometheus"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "prometheus").resolve()


@pytest.fixture(scope="module")
def extracted_rules(tmp_path_factory: pytest.TempPathFactory, minimal: Rendered) -> Path:
    """The rules of the rendered PrometheusRules written back to files, beside a copy of prometheus/tests (whose
    rule_files name ../<file>.rules.yml)."""
    root = tmp_path_factory.mktemp("rules")
    for source, rule in _rules_by_source(minimal).items():
        (root / Path(source).name).write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    (root / "tests").mkdir()
    for test in RULE_TESTS:
        shutil.copy(test, root / "tests" / test.name)
    return root


def _promtool(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [require_tool("promtool"), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_promtool_checks_the_rendered_rules(extracted_rules: Path) -> None:
    files = sorted(extracted_rules.glob("*.rules.yml"))
    assert len(files) == len(RULE_FILES)
    out = _promtool("check", "rules", *files, cwd=extracted_rules)
    assert out.count("SUCCESS") == len(files)


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_the_rule_unit_tests_pass_on_the_rendered_rules(extracted_rules: Path, test_file: Path) -> None:
    _promtool("test", "rules", Path("tests") / test_file.name, cwd=extracted_rules)


# --- Grafana -------------------------------------------------------------------------------------------------------


def _dashboard_maps(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """Dashboard JSON by file name, from the ConfigMaps the sidecar picks up."""
    found: dict[str, dict[str, Any]] = {}
    for cm in rendered.of_kind("ConfigMap"):
        if labels(cm).get("grafana_dashboard") == "1":
            for name, text in cm["data"].items():
                assert name not in found
                found[name] = json.loads(text)
    return found


def test_dashboard_configmaps_are_the_repository_dashboards(minimal: Rendered) -> None:
    found = _dashboard_maps(minimal)
    assert set(found) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert found[path.name] == json.loads(path.read_text(encoding="utf-8")), path.name


def test_a_configmap_holds_a_dashboard_the_api_server_accepts(minimal: Rendered) -> None:
    # A ConfigMap is at most 1 MiB; the sidecar needs one dashboard per file.
    for cm in minimal.of_kind("ConfigMap"):
        assert len(json.dumps(cm["data"])) < 1_000_000, cm["metadata"]["name"]


def test_the_dashboard_label_is_configurable() -> None:
    rendered = render(
        MINIMAL_VALUES, sets={"grafana.dashboards.label": "dashboards", "grafana.dashboards.labelValue": "tagwatch"}
    )
    maps = [c for c in rendered.of_kind("ConfigMap") if labels(c).get("dashboards") == "tagwatch"]
    assert len(maps) == len(DASHBOARDS)


def _datasource_uids_used(dashboard: Any) -> set[str]:
    if isinstance(dashboard, dict):
        found = {dashboard["uid"]} if isinstance(dashboard.get("uid"), str) and "type" in dashboard else set()
        datasource = dashboard.get("datasource")
        if isinstance(datasource, dict) and isinstance(datasource.get("uid"), str):
            found.add(datasource["uid"])
        for value in dashboard.values():
            found |= _datasource_uids_used(value) if isinstance(value, dict | list) else set()
        return found
    if isinstance(dashboard, list):
        return set().union(*(_datasource_uids_used(v) for v in dashboard)) if dashboard else set()
    return set()


def test_datasources_carry_the_uids_the_dashboards_use(minimal: Rendered) -> None:
    (cm,) = (c for c in minimal.of_kind("ConfigMap") if labels(c).get("grafana_datasource") == "1")
    (text,) = cm["data"].values()
    rendered = {d["uid"]: d for d in yaml.safe_load(text)["datasources"]}
    provisioned = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]}
    assert set(rendered) == set(provisioned)
    used = set().union(*(_datasource_uids_used(json.loads(p.read_text(encoding="utf-8"))) for p in DASHBOARDS))
    used = {uid for uid in used if not uid.startswith("$") and uid not in {"-- Grafana --", "grafana"}}
    assert used, "no data source uid found in the dashboards"
    assert used <= set(rendered), f"dashboards use data sources the chart does not provide: {used - set(rendered)}"
    for uid, source in rendered.items():
        assert source["type"] == provisioned[uid]["type"]
        # kube-prometheus-stack's Grafana has its own default data source: two defaults are an error.
        assert source["isDefault"] is False
    postgres = rendered["tagwatch-postgres"]
    assert postgres["url"] == "tagwatch-db-rw:5432"
    assert postgres["user"] == "tagwatch_grafana"
    # Expanded by Grafana from its environment: the chart never holds the password.
    assert postgres["secureJsonData"]["password"] == "${TAGWATCH_GRAFANA_DB_PASSWORD}"

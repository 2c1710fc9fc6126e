"""The chart checked the way charts are checked without a cluster: `helm lint --strict`, the rendered built-in objects
against Kubernetes' OpenAPI schemas (kubernetes-validate, strict: unknown fields fail), the Prometheus Operator's
objects against its models (cloudcoil), and values.schema.json refusing wrong values at `helm template`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import pytest
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

from tests.deploy.helm.chart import (
    CHART,
    KUBE_VERSIONS,
    OPERATOR_KINDS,
    VALUES_FILES,
    Rendered,
    render,
    render_error,
    run_helm,
)

OPERATOR_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ServiceMonitor": ServiceMonitor,
    "PrometheusRule": PrometheusRule,
}


# --- helm lint ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_helm_lint_strict(values: Path, kube_version: str) -> None:
    # `helm lint` has no --api-versions: the Operator branch is rendered and validated below instead.
    result = run_helm("lint", "--strict", "--kube-version", kube_version, "--values", values, CHART)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_helm_lint_names_the_secrets_a_release_needs() -> None:
    # Lint renders `required` as a warning (even with --strict); `helm template` and `helm install` fail (below).
    result = run_helm("lint", "--strict", CHART)
    assert "database.existingSecret is required" in result.stderr
    assert "auth.existingSecret is required" in result.stderr


def test_the_chart_packages(tmp_path: Path) -> None:
    """`helm package` follows the links under files/: the package holds the rules and dashboards themselves."""
    result = run_helm("package", CHART, "--destination", tmp_path)
    assert result.returncode == 0, result.stderr
    import tarfile

    (package,) = tmp_path.glob("tagwatch-*.tgz")
    with tarfile.open(package) as tgz:
        names = set(tgz.getnames())
    assert "tagwatch/files/prometheus/alerts.rules.yml" in names
    assert "tagwatch/files/dashboards/service.json" in names
    assert not any(n.startswith(("tagwatch/files/prometheus/tests/", "tagwatch/ci/")) for n in names)


# --- Kubernetes schemas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_built_in_objects_match_the_kubernetes_schemas(rendered: Rendered, kube_version: str) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} at Kubernetes {kube_version}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_the_schema_check_is_not_vacuous(minimal: Rendered) -> None:
    deployment = copy.deepcopy(minimal.component("Deployment", "api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_operator_objects_match_the_operator_models(rendered: Rendered) -> None:
    objects = rendered.of_kind(*OPERATOR_KINDS)
    assert {o["kind"] for o in objects} == set(OPERATOR_KINDS)
    for obj in objects:
        model = OPERATOR_MODELS[obj["kind"]].model_validate(obj)
        assert model.model_dump(by_alias=True, exclude_none=True)["spec"] == _without_none(obj["spec"])


def test_the_operator_models_refuse_a_bad_duration(minimal: Rendered) -> None:
    monitor = copy.deepcopy(minimal.component("ServiceMonitor", "api"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(pydantic.ValidationError):
        ServiceMonitor.model_validate(monitor)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


# --- values.schema.json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"api.replicas": "two"}, "at '/api/replicas': got string, want integer"),
        ({"api.replica": "2"}, "additional properties 'replica' not allowed"),
        ({"monitor.everyMinutes": "7"}, "at '/monitor/everyMinutes': value must be one of"),
        ({"monitor.everyMinutes": "0"}, "at '/monitor/everyMinutes': value must be one of"),
        ({"prune.schedule": "hourly"}, "at '/prune/schedule'"),
        ({"spill.type": "hostPath"}, "at '/spill/type'"),
        ({"persistence.size": "20GB"}, "at '/persistence/size'"),
        ({"persistence.accessModes[0]": "ReadWriteAll"}, "at '/persistence/accessModes/0'"),
        ({"securityContext.readOnlyRootFilesystem": "false"}, "at '/securityContext/readOnlyRootFilesystem'"),
        ({"podSecurityContext.runAsNonRoot": "false"}, "at '/podSecurityContext/runAsNonRoot'"),
        ({"database.rolePrefix": "Tag-Watch"}, "at '/database/rolePrefix'"),
        ({"env.tagwatch_home": "x"}, "invalid propertyName 'tagwatch_home'"),
        ({"monitoring.serviceMonitor.interval": "15"}, "at '/monitoring/serviceMonitor/interval'"),
        ({"api.resources.limits": "null"}, "at '/api/resources'"),
        ({"image.pullPolicy": "Sometimes"}, "at '/image/pullPolicy'"),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else "",
)
def test_the_schema_refuses_wrong_values(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets=sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"database.existingSecret": ""}, "database.existingSecret is required"),
        ({"auth.existingSecret": ""}, "auth.existingSecret is required"),
        ({"env.TAGWATCH_DATABASE_URL": "sqlite:///x"}, "env.TAGWATCH_DATABASE_URL is set by the chart"),
        ({"api.autoscaling.minReplicas": "5", "api.autoscaling.maxReplicas": "3"}, "minReplicas (5) is above"),
        ({"grafana.datasources.postgres.host": ""}, "grafana.datasources.postgres.host is empty"),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else "",
)
def test_the_templates_refuse_what_the_schema_cannot_express(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets=sets)


def test_settings_passed_through_env_reach_every_process() -> None:
    rendered = render(sets={"env.TAGWATCH_RETENTION_DAYS": "180"})
    from tests.deploy.helm.chart import containers, env_value, tagwatch_workloads

    for obj in tagwatch_workloads(rendered):
        for container in containers(obj):
            assert env_value(container, "TAGWATCH_RETENTION_DAYS") == "180"

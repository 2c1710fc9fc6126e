"""The optional MLflow UI of the chart (mlflow.enabled): off by default; on, a hardened Deployment and a ClusterIP
Service that read the registry with the API's read-only role and the artifacts from the home claim, read-only.

Its objects are also checked against the Kubernetes schemas and by `helm lint` (test_validation.py): the full values
set enables it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.helm.chart import (
    CHART,
    MINIMAL_VALUES,
    VALUES_FILES,
    Rendered,
    containers,
    env,
    labels,
    pod_spec,
    render,
    render_error,
)

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]
HOME = "/var/lib/tagwatch"


@pytest.fixture(scope="module")
def enabled() -> Rendered:
    return render(MINIMAL_VALUES, sets={"mlflow.enabled": "true"})


def _container(rendered: Rendered) -> dict[str, Any]:
    (container,) = containers(rendered.component("Deployment", "mlflow"))
    return container


def test_off_by_default(minimal: Rendered) -> None:
    assert DEFAULTS["mlflow"]["enabled"] is False
    assert not [o for o in minimal.objects if labels(o).get("app.kubernetes.io/component") == "mlflow"]


def test_the_full_values_set_enables_it_so_the_validation_tests_cover_it() -> None:
    (full,) = (p for p in VALUES_FILES if p.name == "full-values.yaml")
    assert yaml.safe_load(full.read_text(encoding="utf-8"))["mlflow"]["enabled"] is True


def test_enabled_it_renders_one_deployment_and_its_service(enabled: Rendered) -> None:
    mlflow = [o for o in enabled.objects if labels(o).get("app.kubernetes.io/component") == "mlflow"]
    assert sorted(o["kind"] for o in mlflow) == ["Deployment", "Service"]
    deployment = enabled.component("Deployment", "mlflow")
    assert deployment["spec"]["replicas"] == 1
    service = enabled.component("Service", "mlflow")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 5000
    (container_port,) = _container(enabled)["ports"]
    assert (port["targetPort"], container_port["containerPort"]) == (container_port["name"], 5000)


def test_the_image_is_tagwatch_mlflow_at_the_chart_s_version(enabled: Rendered) -> None:
    from tests.deploy.test_compose import services

    assert _container(enabled)["image"] == f"tagwatch-mlflow:{APP_VERSION}"
    # The name compose builds deploy/mlflow/Dockerfile as.
    assert services()["mlflow"]["image"].split(":")[0] == DEFAULTS["mlflow"]["image"]["repository"]
    custom = render(MINIMAL_VALUES, sets={"mlflow.enabled": "true", "mlflow.image.tag": "0.2.0"})
    assert _container(custom)["image"] == "tagwatch-mlflow:0.2.0"


def test_it_starts_the_server_compose_starts_and_installs_nothing(enabled: Rendered) -> None:
    from tests.deploy.test_compose import services

    container = _container(enabled)
    assert "command" not in container, "the image's ENTRYPOINT is `mlflow`"
    args = container["args"]
    assert args == services()["mlflow"]["command"]
    assert args[args.index("--default-artifact-root") + 1] == f"file://{HOME}/artifacts"
    assert "--no-serve-artifacts" in args


def test_it_reads_the_registry_as_the_api_s_read_only_role(enabled: Rendered) -> None:
    from tagwatch.roles import REGISTRY_TABLE_GRANTS

    assert REGISTRY_TABLE_GRANTS["api"] == ("SELECT",)
    variables = env(_container(enabled))
    store = variables["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    (api,) = containers(enabled.component("Deployment", "api"))
    assert store == env(api)["TAGWATCH_REGISTRY_URL"]["valueFrom"]["secretKeyRef"]
    assert store["key"] == DEFAULTS["database"]["keys"]["apiRegistryUrl"]
    # Nothing else from a Secret: no owner URL, no password.
    assert [n for n, e in variables.items() if "valueFrom" in e] == ["MLFLOW_BACKEND_STORE_URI"]


def test_it_mounts_the_home_claim_read_only_where_versions_were_registered(enabled: Rendered) -> None:
    deployment = enabled.component("Deployment", "mlflow")
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    mounts = {m["mountPath"]: m for m in _container(enabled)["volumeMounts"]}
    assert set(mounts) == {HOME, "/tmp"}
    assert mounts[HOME]["readOnly"] is True
    home = volumes[mounts[HOME]["name"]]["persistentVolumeClaim"]
    assert home["readOnly"] is True
    api_volumes = {v["name"]: v for v in pod_spec(enabled.component("Deployment", "api"))["volumes"]}
    assert home["claimName"] == api_volumes["home"]["persistentVolumeClaim"]["claimName"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_it_is_hardened_like_every_other_pod(enabled: Rendered) -> None:
    from tests.deploy.test_compose import MLFLOW_DOCKERFILE, parse_dockerfile

    spec = pod_spec(enabled.component("Deployment", "mlflow"))
    assert spec["securityContext"] == DEFAULTS["podSecurityContext"]
    assert spec["automountServiceAccountToken"] is False
    container = _container(enabled)
    assert container["securityContext"] == DEFAULTS["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The pod's uid is the image's user, tagwatch's (the home volume's files are tagwatch's).
    user = [args for keyword, args in parse_dockerfile(MLFLOW_DOCKERFILE) if keyword == "USER"][-1]
    context = spec["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == user
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_probes_ask_health(enabled: Rendered) -> None:
    container = _container(enabled)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        # /health answers whatever the Host header (MLflow exempts it from its check; kubelet sends the pod's IP).
        assert (get["path"], get["port"]) == ("/health", "http"), probe
        assert get.get("scheme", "HTTP") == "HTTP", probe


def test_allowed_hosts_keep_localhost(enabled: Rendered) -> None:
    assert "MLFLOW_SERVER_ALLOWED_HOSTS" not in env(_container(enabled))  # MLflow's default: localhost, private IPs
    rendered = render(
        MINIMAL_VALUES, sets={"mlflow.enabled": "true", "mlflow.allowedHosts": "{mlflow.example.com,ui.example.com}"}
    )
    hosts = env(_container(rendered))["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert hosts == ["localhost", "localhost:*", "mlflow.example.com", "ui.example.com"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"mlflow.enabled": "yes"}, "at '/mlflow/enabled'"),
        ({"mlflow.replicas": "2"}, "additional properties 'replicas' not allowed"),
        ({"mlflow.image.repository": ""}, "at '/mlflow/image/repository'"),
        ({"mlflow.service.type": "LoadBalancer"}, "additional properties 'type' not allowed"),
        ({"mlflow.allowedHosts": "{a.example.com\\,b.example.com}"}, "at '/mlflow/allowedHosts/0'"),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else "",
)
def test_the_schema_refuses_wrong_values(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets=sets)

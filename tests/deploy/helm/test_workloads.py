"""The chart's workloads as rendered: commands, probes, resources, hardening, volumes, shutdown, schedules, hooks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.helm.chart import (
    CHART,
    MINIMAL_VALUES,
    Rendered,
    annotations,
    containers,
    env,
    env_value,
    labels,
    pod_spec,
    render,
    tagwatch_workloads,
    workloads,
)

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
HOME = "/var/lib/tagwatch"


def _hooks(obj: dict[str, Any]) -> set[str]:
    return set(filter(None, annotations(obj).get("helm.sh/hook", "").split(",")))


def _weight(obj: dict[str, Any]) -> int:
    return int(annotations(obj).get("helm.sh/hook-weight", "0"))


def _mount(container: dict[str, Any], path: str) -> dict[str, Any]:
    (mount,) = (m for m in container.get("volumeMounts") or () if m["mountPath"] == path)
    return mount


# --- what runs -----------------------------------------------------------------------------------------------------


def test_each_component_runs_its_command(minimal: Rendered) -> None:
    expected = {
        ("Deployment", "api"): ["serve", "--host", "0.0.0.0", "--port", "8000"],
        ("CronJob", "monitor"): ["drift-check"],
        ("Deployment", "exporter"): ["monitor", "--exporter", "--host", "0.0.0.0", "--port", "9108"],
        ("Deployment", "retrain-worker"): ["retrain-worker", "--host", "0.0.0.0", "--port", "9109"],
        ("CronJob", "prune"): ["prune", "--json"],
        ("Job", "init"): ["init", "--max-train", "12000", "--until", "2019-01-01"],
    }
    for (kind, component), args in expected.items():
        (container,) = containers(minimal.component(kind, component))
        assert container["args"] == args, (kind, component)
        # The image's ENTRYPOINT is `tagwatch`: a command would replace it.
        assert "command" not in container, (kind, component)


def test_every_process_runs_in_production_without_migrating(rendered: Rendered) -> None:
    for obj in tagwatch_workloads(rendered):
        for container in containers(obj):
            assert env_value(container, "TAGWATCH_ENVIRONMENT") == "production", obj["metadata"]["name"]
            assert env_value(container, "TAGWATCH_HOME") == HOME
            # Only the init hook migrates (it does so whatever this says).
            assert env_value(container, "TAGWATCH_AUTO_MIGRATE") == "false"


def test_secrets_are_referenced_never_inlined(rendered: Rendered) -> None:
    secret_like = ("URL", "URI", "PASSWORD", "KEYS")
    for obj in workloads(rendered):
        for container in containers(obj):
            for name, entry in env(container).items():
                if name.endswith(secret_like):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name} is not read from a Secret"


def test_each_process_gets_its_own_database_role(minimal: Rendered) -> None:
    def key(obj: dict[str, Any], name: str) -> str:
        (container,) = containers(obj)
        return str(env(container)[name]["valueFrom"]["secretKeyRef"]["key"])

    roles = {
        ("Job", "init"): "owner",
        ("Deployment", "api"): "api",
        ("CronJob", "monitor"): "monitor",
        ("Deployment", "exporter"): "monitor",
        ("Deployment", "retrain-worker"): "monitor",
        ("CronJob", "prune"): "monitor",
    }
    for (kind, component), role in roles.items():
        obj = minimal.component(kind, component)
        assert key(obj, "TAGWATCH_DATABASE_URL") == f"{role}-url", component
        assert key(obj, "TAGWATCH_REGISTRY_URL") == f"{role}-registry-url", component
    # Only init creates the roles, so only init gets their passwords.
    for obj in workloads(minimal):
        for container in containers(obj):
            has_passwords = any(name.endswith("_DB_PASSWORD") for name in env(container))
            assert has_passwords == (labels(obj)["app.kubernetes.io/component"] == "init"), obj["metadata"]["name"]


def test_the_exporter_reads_from_the_replica_when_one_is_given() -> None:
    rendered = render(MINIMAL_VALUES, sets={"database.readUrlKey": "monitor-read-url"})
    (exporter,) = containers(rendered.component("Deployment", "exporter"))
    assert env(exporter)["TAGWATCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "monitor-read-url"
    # The drift job writes drift_runs: it stays on the primary.
    (monitor,) = containers(rendered.component("CronJob", "monitor"))
    assert env(monitor)["TAGWATCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "monitor-url"


# --- probes, resources, hardening ------------------------------------------------------------------------------


def test_every_deployment_has_three_probes(rendered: Rendered) -> None:
    for obj in rendered.of_kind("Deployment"):
        for container in containers(obj):
            ports = {p["name"] for p in container["ports"]}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{obj['metadata']['name']}: no {probe}"
                assert container[probe]["httpGet"]["port"] in ports


def test_api_probes_liveness_on_health_and_readiness_on_ready(minimal: Rendered) -> None:
    (api,) = containers(minimal.component("Deployment", "api"))
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_every_container_has_requests_and_a_memory_limit(rendered: Rendered) -> None:
    for obj in workloads(rendered):
        for container in containers(obj):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), obj["metadata"]["name"]
            assert "memory" in resources["limits"], obj["metadata"]["name"]


def test_every_pod_is_hardened(rendered: Rendered) -> None:
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        name = obj["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(obj):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["runAsNonRoot"] is True, name
            assert not sc.get("privileged"), name


def test_a_read_only_root_gets_a_writable_tmp(rendered: Rendered) -> None:
    for obj in workloads(rendered):
        if obj["kind"] == "Pod":
            continue
        volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
        for container in containers(obj):
            tmp = _mount(container, "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], obj["metadata"]["name"]


# --- volumes -------------------------------------------------------------------------------------------------------


def test_one_shared_home_claim_read_only_for_the_api(minimal: Rendered) -> None:
    claims = set()
    for obj in workloads(minimal):
        if obj["kind"] == "Pod" or labels(obj)["app.kubernetes.io/component"] == "exporter":
            continue  # the test pod, and the exporter (it reads the database only)
        volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
        (container,) = containers(obj)
        mount = _mount(container, HOME)
        claim = volumes[mount["name"]]["persistentVolumeClaim"]
        claims.add(claim["claimName"])
        read_only = labels(obj)["app.kubernetes.io/component"] == "api"
        assert mount["readOnly"] is read_only, obj["metadata"]["name"]
        assert claim["readOnly"] is read_only, obj["metadata"]["name"]
    assert claims == {"tw-tagwatch-home"}
    (home,) = (c for c in minimal.of_kind("PersistentVolumeClaim") if c["metadata"]["name"] == "tw-tagwatch-home")
    assert home["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_api_spills_to_a_volume_of_its_own(minimal: Rendered) -> None:
    api = minimal.component("Deployment", "api")
    (container,) = containers(api)
    spill_dir = env_value(container, "TAGWATCH_SPILL_DIR")
    assert not spill_dir.startswith(HOME + "/"), "the spill must not share the models' volume"
    volumes = {v["name"]: v for v in pod_spec(api)["volumes"]}
    spill = volumes[_mount(container, spill_dir)["name"]]
    assert spill["persistentVolumeClaim"]["claimName"] == "tw-tagwatch-spill"
    assert int(env_value(container, "TAGWATCH_SPILL_MAX_BYTES")) == DEFAULTS["spill"]["maxBytes"]


def test_existing_claims_and_an_emptydir_spill() -> None:
    rendered = render(
        MINIMAL_VALUES, sets={"persistence.existingClaim": "models", "spill.type": "emptyDir", "spill.size": "3Gi"}
    )
    assert rendered.of_kind("PersistentVolumeClaim") == []
    api = rendered.component("Deployment", "api")
    volumes = {v["name"]: v for v in pod_spec(api)["volumes"]}
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "models"
    assert volumes["spill"] == {"name": "spill", "emptyDir": {"sizeLimit": "3Gi"}}


# --- shutdown and scaling ----------------------------------------------------------------------------------------


def test_the_grace_period_covers_prestop_and_the_request_log_drain(rendered: Rendered) -> None:
    api = rendered.component("Deployment", "api")
    (container,) = containers(api)
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain = float(env_value(container, "TAGWATCH_LOG_DRAIN_SECONDS"))
    assert drain == 20  # the setting's default (tagwatch/settings.py), measured for compose's stop_grace_period
    assert pod_spec(api)["terminationGracePeriodSeconds"] > int(sleep[1]) + drain


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    from tests.deploy.helm.chart import render_error

    error = render_error(sets={"api.terminationGracePeriodSeconds": "25"})
    assert "api.terminationGracePeriodSeconds (25) must exceed" in error


def test_api_autoscales_on_cpu_and_tolerates_one_disruption(minimal: Rendered) -> None:
    api = minimal.component("Deployment", "api")
    assert "replicas" not in api["spec"], "the HPA owns the replica count"
    hpa = minimal.component("HorizontalPodAutoscaler", "api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tw-tagwatch-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = minimal.component("PodDisruptionBudget", "api")
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]


def test_selectors_match_their_pods(rendered: Rendered) -> None:
    for obj in rendered.of_kind("Deployment"):
        selector = obj["spec"]["selector"]["matchLabels"]
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), obj["metadata"]["name"]
    pods = [o["spec"]["template"]["metadata"]["labels"] for o in rendered.of_kind("Deployment")]
    for service in rendered.of_kind("Service"):
        selected = [p for p in pods if service["spec"]["selector"].items() <= p.items()]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} Deployments"


def test_the_retrain_worker_is_one_replica_replaced_not_rolled(minimal: Rendered) -> None:
    worker = minimal.component("Deployment", "retrain-worker")
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["strategy"] == {"type": "Recreate"}


# --- schedules ---------------------------------------------------------------------------------------------------


def test_cronjobs_never_overlap(rendered: Rendered) -> None:
    for cronjob in rendered.of_kind("CronJob"):
        spec = cronjob["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", cronjob["metadata"]["name"]
        assert spec["startingDeadlineSeconds"] > 0
        job = spec["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] > 0
        assert job["backoffLimit"] >= 0
        assert pod_spec(cronjob)["restartPolicy"] == "Never"


@pytest.mark.parametrize(("minutes", "schedule"), [(1, "*/1 * * * *"), (5, "*/5 * * * *"), (60, "0 * * * *")])
def test_the_monitor_schedule_and_its_interval_setting_agree(minutes: int, schedule: str) -> None:
    rendered = render(MINIMAL_VALUES, sets={"monitor.everyMinutes": str(minutes)})
    cronjob = rendered.component("CronJob", "monitor")
    assert cronjob["spec"]["schedule"] == schedule
    # A run may last at most one interval (Forbid would skip the next one anyway).
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == minutes * 60
    # The exporter's tagwatch_monitor_interval_seconds is the staleness alert's clock.
    for kind, component in (("CronJob", "monitor"), ("Deployment", "exporter")):
        (container,) = containers(rendered.component(kind, component))
        assert env_value(container, "TAGWATCH_MONITOR_INTERVAL_SECONDS") == str(minutes * 60)


def test_the_monitor_only_files_retrains(minimal: Rendered) -> None:
    (container,) = containers(minimal.component("CronJob", "monitor"))
    assert env_value(container, "TAGWATCH_RETRAIN_RUNNER") == "off"


# --- the init hook ---------------------------------------------------------------------------------------------


def test_init_is_a_pre_install_and_pre_upgrade_hook(minimal: Rendered) -> None:
    job = minimal.component("Job", "init")
    assert _hooks(job) == {"pre-install", "pre-upgrade"}
    assert set(annotations(job)["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_what_the_init_hook_uses_exists_before_it(rendered: Rendered) -> None:
    """Hooks run before the release's ordinary objects exist: the ServiceAccount and claim the init Job names must be
    hooks of an earlier weight, or come from outside the release."""
    job = rendered.component("Job", "init")
    spec = pod_spec(job)
    needed = {("ServiceAccount", spec["serviceAccountName"])}
    needed |= {
        ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    for kind, name in needed:
        found = [o for o in rendered.of_kind(kind) if o["metadata"]["name"] == name]
        if not found:
            continue  # from outside: serviceAccount.create=false, persistence.existingClaim
        (obj,) = found
        assert "pre-install" in _hooks(obj), f"{kind} {name} is not created before the init hook"
        assert _weight(obj) < _weight(job), f"{kind} {name} is created after the init hook"


def test_helm_never_deletes_the_home_claim(minimal: Rendered) -> None:
    home = minimal.named("PersistentVolumeClaim", "tw-tagwatch-home")
    # Without a delete policy Helm applies before-hook-creation, which would delete the models on a reinstall.
    assert annotations(home)["helm.sh/hook-delete-policy"] == "hook-failed"
    assert _hooks(home) == {"pre-install"}, "pre-upgrade too would apply it again on every upgrade"

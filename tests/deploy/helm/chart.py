"""Rendering the Helm chart (deploy/helm/tagwatch) with the real `helm`, and reading what it rendered.

`make test` installs helm into the venv's bin directory (deploy/helm/install_tools.py); without it the chart tests
skip, except under CI=true, where they fail (tests.support.unavailable).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import unavailable

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "tagwatch"
# chart-testing's convention: every ci/*-values.yaml is a values set the chart must render and lint with.
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
MINIMAL_VALUES = CHART / "ci" / "minimal-values.yaml"
# What a cluster running the Prometheus Operator reports (group/version and group/version/kind).
OPERATOR_API_VERSIONS = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
# The oldest Kubernetes still common on managed clusters, and the newest kubectl shipped with our helm.
KUBE_VERSIONS = ("1.29.0", "1.35.0")
RELEASE = "tw"
NAMESPACE = "tagwatch"

WORKLOAD_KINDS = ("Deployment", "CronJob", "Job", "Pod")
# Components whose containers run another image than tagwatch's.
NON_TAGWATCH_COMPONENTS = ("mlflow",)
OPERATOR_KINDS = ("ServiceMonitor", "PrometheusRule")


def helm() -> str:
    """The helm binary: the venv's (make test puts it there) or one on PATH."""
    beside_python = Path(sys.executable).parent / "helm"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("helm")
    if found is None:
        unavailable("helm is not installed (`make helm-tools` puts it into .venv/bin)")
    return found


def run_helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`helm ARGS` from the repository root. Helm logs each followed link under files/ at INFO on stderr."""
    return subprocess.run([helm(), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def template_args(
    values: Path | None = MINIMAL_VALUES,
    *,
    operator: bool = True,
    kube_version: str | None = None,
    sets: Mapping[str, str] | None = None,
) -> list[str | Path]:
    args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", values]
    if operator:
        for api_version in OPERATOR_API_VERSIONS:
            args += ["--api-versions", api_version]
    if kube_version is not None:
        args += ["--kube-version", kube_version]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template` run, in its order."""

    objects: tuple[dict[str, Any], ...]
    # The values given (a ci/*-values.yaml and --set pairs), read back by tests that check they took effect.
    values: Mapping[str, Any]

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = (o for o in self.of_kind(kind) if o["metadata"]["name"] == name)
        return found

    def component(self, kind: str, component: str) -> dict[str, Any]:
        """The one object of ``kind`` labelled app.kubernetes.io/component=``component``."""
        matches = [o for o in self.of_kind(kind) if labels(o).get("app.kubernetes.io/component") == component]
        assert len(matches) == 1, f"{len(matches)} {kind} objects of component {component!r}"
        return matches[0]


def render(
    values: Path | None = MINIMAL_VALUES,
    *,
    operator: bool = True,
    kube_version: str | None = None,
    sets: Mapping[str, str] | None = None,
) -> Rendered:
    result = run_helm(*template_args(values, operator=operator, kube_version=kube_version, sets=sets))
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    given = yaml.safe_load(values.read_text(encoding="utf-8")) if values is not None else {}
    return Rendered(tuple(o for o in yaml.safe_load_all(result.stdout) if o), given or {})


def render_error(values: Path | None = MINIMAL_VALUES, *, sets: Mapping[str, str] | None = None) -> str:
    """The error of a `helm template` run that must fail."""
    result = run_helm(*template_args(values, sets=sets))
    assert result.returncode != 0, f"helm template accepted {dict(sets or {})}"
    return result.stderr


# --- reading objects ------------------------------------------------------------------------------------------------


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, Job, CronJob or Pod."""
    kind = obj["kind"]
    if kind == "Pod":
        return dict(obj["spec"])
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def containers(obj: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers") or ()
    yield from spec["containers"]


def env(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Environment variables by name (each its whole entry: value or valueFrom)."""
    entries = container.get("env") or []
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"{container['name']}: a variable set twice: {names}"
    return {e["name"]: e for e in entries}


def env_value(container: Mapping[str, Any], name: str) -> str:
    return str(env(container)[name]["value"])


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.of_kind(*WORKLOAD_KINDS)


def tagwatch_workloads(rendered: Rendered) -> list[dict[str, Any]]:
    """The workloads running the tagwatch image: not the `helm test` pod (python) nor the MLflow UI (its own image)."""
    return [
        o
        for o in workloads(rendered)
        if o["kind"] != "Pod" and labels(o).get("app.kubernetes.io/component") not in NON_TAGWATCH_COMPONENTS
    ]

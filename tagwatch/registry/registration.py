"""Logging a new version to MLflow: the experiment, the registered model, the run with its artifacts, the version.

``Registry.register`` checks and stages everything first (``tagwatch.registry.staging``), then calls ``log_version``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tagwatch.registry.artifacts import MODEL_DIR, local_path
from tagwatch.registry.entities import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

_BATCH_PARAMS = 100
_BATCH_METRICS = 1000


def error_code(exc: Exception) -> str | None:
    """The MLflow error code of an exception (``RESOURCE_DOES_NOT_EXIST``, ...), None for other exceptions."""
    code = getattr(exc, "error_code", None)
    return None if code is None else str(code)


def experiment_id(client: MlflowClient, model_name: str, artifacts_dir: Path) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(model_name)
    if experiment is None:
        location = (artifacts_dir / model_name).as_uri()
        try:
            return str(client.create_experiment(model_name, artifact_location=location))
        except MlflowException as exc:  # another process created it first
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(model_name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise RegistryError(f"MLflow experiment {model_name!r} is deleted; restore it or purge it")
    expected = artifacts_dir / model_name
    if local_path(experiment.artifact_location) != expected:
        # The location is fixed when the experiment is created; new runs still go there.
        log.warning(
            "experiment %s keeps its artifacts at %s, not under %s",
            model_name,
            experiment.artifact_location,
            artifacts_dir,
        )
    return str(experiment.experiment_id)


def ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name, description="Stack Overflow tag suggestions (tagwatch).")
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def log_version(
    client: MlflowClient,
    model_name: str,
    artifacts_dir: Path,
    staging: Path,
    *,
    flat_params: dict[str, str],
    flat_metrics: dict[str, float],
    run_tags: dict[str, str],
    version_tags: dict[str, str],
    description: str,
) -> str:
    from mlflow.entities import Metric, Param

    experiment = experiment_id(client, model_name, artifacts_dir)
    ensure_registered_model(client, model_name)
    run_name = f"{model_name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    run = client.create_run(experiment, tags=run_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        params_list = [Param(k, v) for k, v in flat_params.items()]
        for i in range(0, len(params_list), _BATCH_PARAMS):
            client.log_batch(run_id, params=params_list[i : i + _BATCH_PARAMS])
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        metric_list = [Metric(k, v, now_ms, 0) for k, v in flat_metrics.items()]
        for i in range(0, len(metric_list), _BATCH_METRICS):
            client.log_batch(run_id, metrics=metric_list[i : i + _BATCH_METRICS])
        client.log_artifacts(run_id, str(staging))
        # The version is created last: a reader never sees a version whose artifacts are incomplete.
        mv = client.create_model_version(
            model_name,
            source=f"{run.info.artifact_uri}/{MODEL_DIR}",
            run_id=run_id,
            tags=version_tags,
            description=description,
        )
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    log.info("registered %s version %s (run %s)", model_name, mv.version, run_id)
    return str(mv.version)

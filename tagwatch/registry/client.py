"""The registry client: tag-model versions in MLflow, what each was trained on, and the aliases that pick one.

Every version is one MLflow run (experiment named after the model) plus one registered model version whose
source is the run's ``model/`` artifact directory. The run holds params, metrics, the tag vocabulary, the data
window, a reference sample of the training data (drift is measured against it), the hold-out ids, the lineage.
Which version serves is decided by aliases only (champion, challenger, previous); MLflow stages are not used.

MLflow is imported lazily: it takes 2-3 s and ~90 MB to import, which the CLI, the tests and the API (it reads the
champion through ``tagwatch.registry.resolver``) should not pay when unused.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagwatch.data import Question
from tagwatch.registry import artifacts, registration, staging
from tagwatch.registry.artifacts import (
    GUARD_FILE,
    HOLDOUT_FILE,
    MODEL_DIR,
    REFERENCE_FILE,
    REQUIRED_META_FILES,
    load_model_from,
    local_path,
    read_reference,
)
from tagwatch.registry.codecs import MODEL_NAME, normalize_version
from tagwatch.registry.entities import (
    CHAMPION,
    PREVIOUS,
    ModelVersionInfo,
    MoveJournal,
    RegistryError,
    SavableModel,
    VersionNotFoundError,
)
from tagwatch.registry.registration import error_code

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from sqlalchemy import Engine

    from tagwatch.model import TagModel
    from tagwatch.settings import Settings

log = logging.getLogger(__name__)


class Registry:
    """Tag-model versions and aliases in an MLflow tracking/registry store (SQLite or PostgreSQL URI).

    With a ``journal`` every alias move (``set_alias``, ``delete_alias``, ``promote``) is recorded there, with its
    trigger and its actor (the call's ``actor``, else the registry's). The record is written right AFTER the MLflow
    alias write: a failed MLflow write records nothing (the history never claims a move that did not happen); a
    failed journal write is logged as an error and the move stays (a rollback during an incident must not depend on
    the request-log database). Setting an alias to the version it already names is not a move and is not recorded.
    ``from_settings`` builds one from the settings; with an ``actor`` its journal is the settings' request-log database.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifacts_dir: Path,
        model_name: str,
        *,
        model_loader: Callable[[Path], TagModel] | None = None,
        journal: MoveJournal | None = None,
        actor: str = "unknown",
    ) -> None:
        if not MODEL_NAME.fullmatch(model_name):
            raise ValueError(f"model name {model_name!r}: use letters, digits, '_', '-' and '.'")
        self.tracking_uri = tracking_uri
        self.artifacts_dir = Path(artifacts_dir).expanduser().resolve()
        self.model_name = model_name
        self._model_loader = model_loader
        self.journal = journal
        self.actor = actor

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        actor: str | None = None,
        engine: Engine | None = None,
        model_loader: Callable[[Path], TagModel] | None = None,
    ) -> Registry:
        """The settings' registry (``registry_url``, ``artifacts_dir``, ``model_name``).

        With an ``actor``, alias moves are recorded in the request-log database as that actor: in ``engine``, or in a
        new engine on ``settings.db_url`` (then, with ``settings.auto_migrate``, the schema is brought to head first, as
        the service and the monitor do when they start, so that ``alias_moves`` exists). Without one nothing is
        recorded: for readers, and for tests that move aliases without a request log.
        """
        journal: MoveJournal | None = None
        if actor is not None:
            from tagwatch.history import Journal

            if engine is None:
                from tagwatch.db import make_engine, upgrade_database

                if settings.auto_migrate:
                    upgrade_database(settings.db_url)
                engine = make_engine(settings.db_url)
            journal = Journal(engine)
        return cls(
            settings.tracking_url,
            settings.artifacts_dir,
            settings.model_name,
            model_loader=model_loader,
            journal=journal,
            actor=actor or "unknown",
        )

    def __repr__(self) -> str:
        return f"Registry(model_name={self.model_name!r}, artifacts_dir={str(self.artifacts_dir)!r})"

    @cached_property
    def _client(self) -> MlflowClient:
        # The first client for a new store creates its tables (MLflow's own migrations). MLflow caches the
        # store per URI, so more Registry instances in one process share one engine.
        self._ensure_sqlite_dir()
        # MLflow sends usage telemetry unless told not to; tagwatch's machines may have no route out, and a
        # registry should not phone home. An explicit setting in the environment wins.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _ensure_sqlite_dir(self) -> None:
        if not self.tracking_uri.startswith("sqlite:"):
            return
        from sqlalchemy.engine import make_url

        database = make_url(self.tracking_uri).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def _model_version(self, version: str | int) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        number = normalize_version(version)
        try:
            return self._client.get_model_version(self.model_name, number)
        except MlflowException as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise VersionNotFoundError(f"{self.model_name} has no version {number}") from None
            raise

    def _meta_dir(self, mv: ModelVersion) -> Path:
        return artifacts.meta_dir(self.model_name, mv)

    def _read_json(self, mv: ModelVersion, name: str) -> Any:
        return artifacts.read_json(self.model_name, mv, name)

    def register(
        self,
        model: SavableModel,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        data_window: Mapping[str, Any],
        reference: Sequence[Question],
        holdout_ids: Mapping[str, Sequence[str]] | None = None,
        lineage: Mapping[str, Any] | None = None,
        guard: Sequence[Question] | None = None,
    ) -> str:
        """Log a model and its facts as an MLflow run; register it as a new version and return its number.

        ``guard``: the trusted guard set to keep with the version (see ``GUARD_FILE``); None or empty: none.

        Sets ``model.version`` to the new number. No alias is set: use ``promote`` or ``set_alias``.
        """
        # Check, serialize and stage everything (the model too) before touching MLflow, so bad input or a
        # failing save leaves no half-logged run behind.
        checked = staging.check(
            model, params=params, metrics=metrics, data_window=data_window, holdout_ids=holdout_ids, lineage=lineage
        )
        with tempfile.TemporaryDirectory(prefix="tagwatch-register-") as tmp:
            staging.stage(Path(tmp), model, checked, reference=reference, guard=guard)
            version = registration.log_version(
                self._client,
                self.model_name,
                self.artifacts_dir,
                Path(tmp),
                flat_params=checked.flat_params,
                flat_metrics=checked.flat_metrics,
                run_tags=checked.run_tags(self.model_name, n_reference=len(reference), n_guard=len(guard or ())),
                version_tags=checked.version_tags(n_reference=len(reference)),
                description=checked.description(),
            )
        model.version = version
        return version

    def _aliases(self) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            registered = self._client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        return {alias: str(version) for alias, version in registered.aliases.items()}

    def champion_version(self) -> str | None:
        """The version the champion alias points at: a few small queries, cheap enough to poll."""
        return self.get_alias(CHAMPION)

    def get_alias(self, alias: str) -> str | None:
        """The version ``alias`` points at, None if it is not set (or there is no registered model yet)."""
        from mlflow.exceptions import MlflowException

        # Not get_registered_model: that loads every version, so it gets slower as versions accumulate
        # (18 ms at 30 versions on SQLite against a constant 4 ms here).
        try:
            found = self._client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            code = error_code(exc)
            if code == "RESOURCE_DOES_NOT_EXIST":
                return None
            # MLflow reports an unset alias as INVALID_PARAMETER_VALUE; confirm that before saying "not set".
            if code == "INVALID_PARAMETER_VALUE" and alias not in self._aliases():
                return None
            raise
        return str(found.version)

    def set_alias(self, alias: str, version: str | int, *, trigger: str = "manual", actor: str | None = None) -> None:
        """Point ``alias`` at ``version``; recorded in the journal (if any) with ``trigger`` and ``actor``."""
        number = normalize_version(version)
        before = self.get_alias(alias) if self.journal is not None else None
        self._set_alias(alias, number, before=before, trigger=trigger, actor=actor)

    def _set_alias(self, alias: str, number: str, *, before: str | None, trigger: str, actor: str | None) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.set_registered_model_alias(self.model_name, alias, number)
        except MlflowException as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise VersionNotFoundError(f"{self.model_name} has no version {number}") from None
            if error_code(exc) == "INVALID_PARAMETER_VALUE":
                raise ValueError(str(exc.message)) from None
            raise
        self._record(alias, before, number, trigger=trigger, actor=actor)

    def delete_alias(self, alias: str, *, trigger: str = "manual", actor: str | None = None) -> None:
        """Remove an alias; nothing happens if it is not set. Recorded (to None) in the journal, if any."""
        from mlflow.exceptions import MlflowException

        before = self.get_alias(alias) if self.journal is not None else None
        try:
            self._client.delete_registered_model_alias(self.model_name, alias)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
        self._record(alias, before, None, trigger=trigger, actor=actor)

    def _record(self, alias: str, before: str | None, after: str | None, *, trigger: str, actor: str | None) -> None:
        """Journal one move, after the MLflow write. A failure is logged, not raised: the alias has moved already."""
        if self.journal is None or before == after:
            return
        who = actor or self.actor
        try:
            self.journal.record(
                model_name=self.model_name,
                alias=alias,
                from_version=before,
                to_version=after,
                trigger=trigger,
                actor=who,
            )
        except Exception:
            log.exception(
                "%s: alias %s moved %s -> %s (%s, by %s) but the move could not be recorded in the history",
                self.model_name,
                alias,
                before,
                after,
                trigger,
                who,
            )

    def promote(self, version: str | int, *, trigger: str = "manual", actor: str | None = None) -> None:
        """Make ``version`` the champion; the champion it replaces becomes ``previous``.

        Order matters for readers that poll: ``previous`` is moved first, then ``champion``. Between the two
        writes both aliases name the old champion, which is still a valid state (if the process dies there,
        promoting again finishes the job), and whoever sees the new champion also sees the right ``previous``.
        Other aliases (``challenger``) are left alone.
        Two promotions racing each other are not serialized; the last champion write wins.
        Both moves are recorded in the journal (if any) with ``trigger`` and ``actor``.
        """
        number = normalize_version(version)
        self._model_version(number)  # fail before moving anything
        current = self.champion_version()
        if current != number:
            if current is not None:
                before = self.get_alias(PREVIOUS) if self.journal is not None else None
                self._set_alias(PREVIOUS, current, before=before, trigger=trigger, actor=actor)
            self._set_alias(CHAMPION, number, before=current, trigger=trigger, actor=actor)
            log.info("%s: champion %s -> %s (%s)", self.model_name, current, number, trigger)

    def check_artifacts(self, version: str | int) -> None:
        """Raise unless ``version`` exists and its artifacts are all in place: the model directory (not empty) and
        the tagwatch files every version is registered with. ``VersionNotFoundError`` for an unknown version,
        ``RegistryError`` naming everything that is missing otherwise. Reads nothing but the file system."""
        mv = self._model_version(version)
        model_dir = local_path(mv.source)
        missing = []
        if not model_dir.is_dir():
            missing.append(f"model directory {model_dir}")
        elif not any(model_dir.iterdir()):
            missing.append(f"the model files in {model_dir} (the directory is empty)")
        meta = self._meta_dir(mv)
        missing += [str(meta / name) for name in REQUIRED_META_FILES if not (meta / name).is_file()]
        if missing:
            raise RegistryError(
                f"{self.model_name} version {mv.version}: artifacts missing: {', '.join(missing)} (deleted, or the "
                "artifact store is not mounted at this path)"
            )

    def load_model(self, version: str | int) -> TagModel:
        """The model of ``version``, read in place from the artifact store, with ``model.version`` set."""
        mv = self._model_version(version)
        return load_model_from(
            mv.source, model_name=self.model_name, version=str(mv.version), loader=self._model_loader
        )

    def load_champion(self) -> TagModel | None:
        version = self.champion_version()
        return None if version is None else self.load_model(version)

    def load_reference(self, version: str | int) -> list[Question]:
        """The reference sample of the training data logged with ``version``."""
        return self._reference(self._model_version(version))

    def _reference(self, mv: ModelVersion) -> list[Question]:
        return read_reference(artifacts.meta_file(self.model_name, mv, REFERENCE_FILE))

    def load_guard(self, version: str | int) -> list[Question]:
        """The trusted guard set kept with ``version`` ([] when it has none, e.g. a version from before guards)."""
        path = self._meta_dir(self._model_version(version)) / GUARD_FILE
        return read_reference(path) if path.is_file() else []

    def holdout_ids(self, version: str | int) -> dict[str, list[str]]:
        """Question ids of each hold-out set of ``version`` ({} if none were logged)."""
        data = self._read_json(self._model_version(version), HOLDOUT_FILE)
        return {str(name): [str(i) for i in ids] for name, ids in data.items()}

    def version_info(self, version: str | int) -> ModelVersionInfo:
        return self._info(self._model_version(version))

    def _info(self, mv: ModelVersion) -> ModelVersionInfo:
        if mv.run_id is None:
            raise RegistryError(f"{self.model_name} version {mv.version} has no run: not registered by tagwatch")
        run = self._client.get_run(mv.run_id)
        return artifacts.version_info(self.model_name, mv, run.data.metrics)

    def aliases(self) -> dict[str, str]:
        """Every alias of the model and the version it names ({} when there is no registered model yet)."""
        return self._aliases()

    def version_sources(self) -> dict[str, str]:
        """Every version of the model and its artifact location (``source``), without reading its files: a version
        whose artifacts are gone is listed too (``list_versions`` reads each version's files)."""
        return {str(mv.version): str(mv.source) for mv in self._search_versions()}

    def _search_versions(self) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token = None
        while True:
            page = self._client.search_model_versions(f"name = '{self.model_name}'", page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
        return found

    def run_directory(self, source: str) -> Path | None:
        """The run directory holding a version's artifacts (``<artifacts_dir>/<model>/<run id>``, the parent of the
        ``artifacts/model`` directory its ``source`` names), or None (logged) when that is not a directory under this
        registry's ``artifacts_dir``: tagwatch deletes nothing it did not write."""
        try:
            model_dir = local_path(source)
        except RegistryError:
            log.warning("%s: artifact location %s is not a local directory: its files are left alone", self, source)
            return None
        run_dir = model_dir.resolve().parent.parent
        inside = run_dir.is_relative_to(self.artifacts_dir) and run_dir != self.artifacts_dir
        if model_dir.name != MODEL_DIR or not inside:
            log.warning("%s: %s is not a run directory under %s: left alone", self, run_dir, self.artifacts_dir)
            return None
        return run_dir

    def delete_version(self, version: str | int) -> None:
        """Delete a version from the registry (and mark its run deleted), leaving its files (``remove_run_directory``).
        Refuses a version an alias names. A version already gone is not an error."""
        from mlflow.exceptions import MlflowException

        number = normalize_version(version)
        named = sorted(alias for alias, v in self._aliases().items() if v == number)
        if named:
            raise RegistryError(f"{self.model_name} version {number} is named by {', '.join(named)}: not deleted")
        try:
            mv = self._model_version(number)
        except VersionNotFoundError:
            return
        try:
            self._client.delete_model_version(self.model_name, number)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
        if mv.run_id:
            try:
                self._client.delete_run(mv.run_id)  # soft: the run's params and metrics stay readable
            except MlflowException as exc:
                log.warning("%s: could not mark run %s of version %s deleted: %s", self, mv.run_id, number, exc)

    def remove_run_directory(self, directory: Path) -> bool:
        """Remove a run directory ``run_directory`` returned; False when it was already gone."""
        import shutil

        directory = directory.resolve()
        if not directory.is_relative_to(self.artifacts_dir) or directory == self.artifacts_dir:
            raise RegistryError(f"{directory} is not under {self.artifacts_dir}: not removed")
        if not directory.exists():
            return False
        shutil.rmtree(directory)
        return True

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version of the model, newest first."""
        found = self._search_versions()
        found.sort(key=lambda mv: int(mv.version), reverse=True)
        # MLflow leaves aliases empty in search results: take them from the registered model
        by_version: dict[str, list[str]] = {}
        for alias, number in self._aliases().items():
            by_version.setdefault(number, []).append(alias)
        infos = []
        for mv in found:
            info = self._info(mv)
            infos.append(replace(info, aliases=sorted(by_version.get(info.version, []))))
        return infos

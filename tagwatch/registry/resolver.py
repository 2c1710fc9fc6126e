"""The champion and its files, read straight from the MLflow registry's tables, without importing MLflow.

What an API replica needs of the registry is small: which version an alias names, where that version's model
directory is, and its facts (params, metrics, data window). ``ChampionResolver`` reads them with a few SELECTs on the
store's tables (``registered_model_aliases``, ``model_versions``, ``model_version_tags``, ``latest_metrics``), as
MLflow's own SQL store does, and the files with ``tagwatch.registry.artifacts``: importing the MLflow client would
cost each replica ~1.5 s of start-up and ~90 MB. It never writes, creates or migrates anything: a store that has no
tables yet (nothing trained) has no champion. ``tests/tagwatch/registry/test_resolver.py`` checks it against
``Registry`` on the same stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tagwatch.registry import artifacts
from tagwatch.registry.artifacts import VersionRecord, load_model_from
from tagwatch.registry.codecs import MODEL_NAME, normalize_version
from tagwatch.registry.entities import CHAMPION, ModelVersionInfo, VersionNotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tagwatch.model import TagModel
    from tagwatch.settings import Settings

log = logging.getLogger(__name__)

# MLflow's registry rows carry a workspace; tagwatch uses MLflow's single default one.
WORKSPACE = "default"
# MLflow marks a deleted version with this stage until it is gone (mlflow.entities.model_registry).
DELETED_STAGE = "Deleted_Internal"

_ALIAS = "SELECT version FROM registered_model_aliases WHERE workspace = :workspace AND name = :name AND alias = :alias"
_VERSION = (
    "SELECT version, source, run_id, creation_time FROM model_versions "
    "WHERE workspace = :workspace AND name = :name AND version = :version AND current_stage != :deleted"
)
_VERSION_TAGS = (
    "SELECT key, value FROM model_version_tags WHERE workspace = :workspace AND name = :name AND version = :version"
)
_VERSION_ALIASES = (
    "SELECT alias FROM registered_model_aliases WHERE workspace = :workspace AND name = :name AND version = :version"
)
_RUN_METRICS = "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = :run_id"


class ChampionResolver:
    """A read-only view of one model's aliases and versions in an MLflow SQL store (SQLite or PostgreSQL URI).

    Satisfies ``service.model_holder.ModelSource``.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        *,
        model_loader: Callable[[Path], TagModel] | None = None,
    ) -> None:
        if not MODEL_NAME.fullmatch(model_name):
            raise ValueError(f"model name {model_name!r}: use letters, digits, '_', '-' and '.'")
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._model_loader = model_loader

    @classmethod
    def from_settings(
        cls, settings: Settings, *, model_loader: Callable[[Path], TagModel] | None = None
    ) -> ChampionResolver:
        return cls(settings.tracking_url, settings.model_name, model_loader=model_loader)

    def __repr__(self) -> str:
        return f"ChampionResolver(model_name={self.model_name!r})"

    @cached_property
    def _engine(self) -> Engine:
        from sqlalchemy import create_engine, make_url

        url = make_url(self.tracking_uri)
        if url.get_backend_name() == "sqlite":
            return create_engine(url, connect_args={"check_same_thread": False, "timeout": 5.0})
        return create_engine(url, pool_size=1, max_overflow=2, pool_pre_ping=True)

    def dispose(self) -> None:
        if "_engine" in self.__dict__:
            self._engine.dispose()

    def _store_missing(self) -> bool:
        """True when there is no store to read yet: an SQLite file not created, or a database without MLflow's
        tables. (Connecting would create an empty SQLite file; MLflow, not the API, creates the store.)"""
        from sqlalchemy import make_url

        url = make_url(self.tracking_uri)
        sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        return sqlite_file and not Path(str(url.database)).expanduser().is_file()

    def champion_version(self) -> str | None:
        return self.get_alias(CHAMPION)

    def get_alias(self, alias: str) -> str | None:
        """The version ``alias`` points at, None if it is not set (or nothing is registered yet)."""
        if self._store_missing():
            return None
        from sqlalchemy import inspect, text
        from sqlalchemy.exc import DBAPIError

        params = {"workspace": WORKSPACE, "name": self.model_name, "alias": alias}
        try:
            with self._engine.connect() as conn:
                row = conn.execute(text(_ALIAS), params).first()
        except DBAPIError:
            if not inspect(self._engine).has_table("registered_model_aliases"):
                return None  # MLflow has not created its tables yet
            raise
        return None if row is None else str(row[0])

    def _record(self, version: str | int) -> VersionRecord:
        from sqlalchemy import text

        number = normalize_version(version)
        key = {"workspace": WORKSPACE, "name": self.model_name, "version": int(number)}
        with self._engine.connect() as conn:
            row = conn.execute(text(_VERSION), {**key, "deleted": DELETED_STAGE}).first()
            if row is None:
                raise VersionNotFoundError(f"{self.model_name} has no version {number}")
            tags = {str(k): str(v) for k, v in conn.execute(text(_VERSION_TAGS), key).all()}
            aliases = sorted(str(a) for (a,) in conn.execute(text(_VERSION_ALIASES), key).all())
        return VersionRecord(
            version=str(row.version),
            source=str(row.source),
            run_id=str(row.run_id),
            creation_timestamp=int(row.creation_time),
            tags=tags,
            aliases=aliases,
        )

    def load_model(self, version: str | int) -> TagModel:
        """The model of ``version``, read in place from the artifact store, with ``model.version`` set."""
        record = self._record(version)
        return load_model_from(
            record.source, model_name=self.model_name, version=record.version, loader=self._model_loader
        )

    def version_info(self, version: str | int) -> ModelVersionInfo:
        """The facts of ``version``, as ``Registry.version_info`` gives them."""
        from sqlalchemy import text

        record = self._record(version)
        with self._engine.connect() as conn:
            rows = conn.execute(text(_RUN_METRICS), {"run_id": record.run_id}).all()
        metrics = {str(key): float("nan") if is_nan else float(value) for key, value, is_nan in rows}
        return artifacts.version_info(self.model_name, record, metrics)

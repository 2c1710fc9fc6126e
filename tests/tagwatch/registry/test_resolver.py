"""The read-only resolver the API uses answers what the MLflow client answers, on the same stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.postgres import fresh_postgres_database
from tagwatch.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ChampionResolver,
    Registry,
    RegistryError,
    VersionNotFoundError,
)
from tests.tagwatch.registry.support import Store, TinyModel, register_tiny


def _resolver(store: Store, registry: Registry) -> ChampionResolver:
    return ChampionResolver(store.tracking_uri, registry.model_name, model_loader=TinyModel.load)


def test_aliases_and_facts_are_the_clients(store: Store, registry: Registry) -> None:
    resolver = _resolver(store, registry)
    assert resolver.champion_version() is None  # nothing registered under this name yet
    _, v1 = register_tiny(registry, seed=1)
    model, v2 = register_tiny(registry, seed=2)
    registry.promote(v1)
    registry.promote(v2)
    registry.set_alias(CHALLENGER, v1)
    assert resolver.champion_version() == registry.champion_version() == v2
    for alias in (CHAMPION, CHALLENGER, PREVIOUS, "nope"):
        assert resolver.get_alias(alias) == registry.get_alias(alias)
    for version in (v1, v2):
        assert resolver.version_info(version) == registry.version_info(version)
    loaded = resolver.load_model(v2)
    assert loaded.version == v2
    np.testing.assert_array_equal(loaded.weights, model.weights)
    registry.delete_alias(CHAMPION)
    assert resolver.champion_version() is None
    resolver.dispose()


def test_unknown_versions_and_missing_files_are_errors(store: Store, registry: Registry) -> None:
    resolver = _resolver(store, registry)
    _, version = register_tiny(registry)
    with pytest.raises(VersionNotFoundError):
        resolver.load_model("999")
    with pytest.raises(VersionNotFoundError):
        resolver.version_info("999")
    with pytest.raises(ValueError, match="positive integer"):
        resolver.load_model("latest")
    model_dir = Path(registry.version_info(version).source.removeprefix("file://"))
    shutil.rmtree(model_dir)
    with pytest.raises(RegistryError, match="model directory"):
        resolver.load_model(version)
    resolver.dispose()


def test_a_store_not_created_yet_has_no_champion(tmp_path: Path) -> None:
    missing = tmp_path / "registry.db"
    resolver = ChampionResolver(f"sqlite:///{missing}", "tagwatch")
    assert resolver.champion_version() is None
    assert not missing.exists()  # the API never creates the registry's database
    missing.touch()  # an empty database: no MLflow tables yet
    assert resolver.champion_version() is None
    resolver.dispose()


@pytest.mark.postgres
def test_a_postgres_database_without_mlflow_tables_has_no_champion(postgres_admin_url: str) -> None:
    with fresh_postgres_database(postgres_admin_url, "tagwatch_resolver") as url:
        resolver = ChampionResolver(url, "tagwatch")
        assert resolver.champion_version() is None
        resolver.dispose()


def test_a_bad_model_name_is_refused() -> None:
    with pytest.raises(ValueError, match="model name"):
        ChampionResolver("sqlite://", "name with 'quotes'")

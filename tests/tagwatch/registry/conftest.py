"""One SQLite and one PostgreSQL MLflow store for the registry tests (a new store takes seconds to migrate), shared by
the package; a model name of its own per test, so the tests do not see each other's versions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bench.postgres import fresh_postgres_database
from tagwatch.registry import Registry
from tests.tagwatch.registry.support import Store


@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One MLflow store per backend for the whole module (PostgreSQL: a database made and dropped here)."""
    root = tmp_path_factory.mktemp(f"registry_{request.param}")
    if request.param == "sqlite":
        yield Store("sqlite", f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url"), "tagwatch_registry") as url:
        yield Store("postgres", url, root / "artifacts")


@pytest.fixture
def registry(store: Store) -> Registry:
    return store.registry(f"tags_{uuid.uuid4().hex[:8]}")

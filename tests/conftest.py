"""Shared fixtures: real databases (SQLite files and fresh PostgreSQL databases), settings under a temp home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from bench.postgres import fresh_postgres_database
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import SMALL_MODEL_TAGS, unavailable

# The PostgreSQL server the tests use; each test gets a database of its own on it.
ADMIN_URL = os.environ.get("TAGWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: no server to test against
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = _postgres_reachable()
    if problem is not None:
        unavailable(f"PostgreSQL unreachable at {ADMIN_URL}: {problem}")
    return ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database(postgres_admin_url, "tagwatch_test") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tagwatch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tagwatch.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated request-log database, SQLite and PostgreSQL (``database_url``)."""
    from tagwatch.db import make_engine, upgrade_database

    upgrade_database(database_url)
    made = make_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


# --- models -------------------------------------------------------------------------------------------------------
# A small model trained once per test session on a seeded sample of the bundled questions (a few seconds).
SMALL_MODEL_QUESTIONS = 4_000


@pytest.fixture(scope="session")
def bundled_questions() -> list[Question]:
    from tagwatch.data import load_questions
    from tagwatch.settings import BUNDLED_DATA

    questions, _ = load_questions(BUNDLED_DATA)
    return questions


@pytest.fixture(scope="session")
def small_training_set(bundled_questions: list[Question]) -> list[Question]:
    import random

    return random.Random(7).sample(bundled_questions, SMALL_MODEL_QUESTIONS)


@pytest.fixture(scope="session")
def small_model(small_training_set: list[Question]) -> TagModel:
    from retrain.train import train_model

    return train_model(small_training_set, top_n=SMALL_MODEL_TAGS, max_tags=5, seed=7)


@pytest.fixture
def registry_with_champion(settings: Settings, small_model: TagModel, small_training_set: list[Question]) -> Any:
    """A real (SQLite) MLflow registry whose champion is the small model, with hold-out metrics and a reference."""
    import copy

    from retrain.evaluate import evaluate
    from tagwatch.registry import Registry

    registry = Registry.from_settings(settings)
    holdout = small_training_set[:600]
    version = registry.register(
        copy.copy(small_model),
        params=small_model.params,
        metrics={"holdout_random": evaluate(small_model, holdout)},
        data_window={"n_questions": len(small_training_set)},
        reference=holdout,
    )
    registry.promote(version)
    return registry

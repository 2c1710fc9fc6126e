"""`tagwatch migrate` and `tagwatch init`: migrations, the registry's store and a first champion on SQLite; a second
init trains nothing. (The database roles on PostgreSQL: tests/tagwatch/test_roles.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from commands.cli import app
from tagwatch.settings import Settings, get_settings
from tests.commands.cli.support import TINY_DATA, invoke


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings from the environment, as the compose service gets them: everything under a temporary home."""
    home = tmp_path / "home"
    monkeypatch.setenv("TAGWATCH_HOME", str(home))
    for name in ("TAGWATCH_DATABASE_URL", "TAGWATCH_REGISTRY_URL", "TAGWATCH_DATA_PATH", "TAGWATCH_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.mark.slow
def test_init_trains_a_first_champion_once(home: Path) -> None:
    from tagwatch.db import make_engine
    from tagwatch.registry import Registry

    runner = CliRunner()
    first = runner.invoke(app, ["init", "--max-train", "600"])
    assert first.exit_code == 0, first.output
    assert "database at head" in first.output
    assert "training on 600 questions created before 2019-01-01" in first.output
    assert "version 1 (champion)" in first.output

    settings = Settings(home=home)
    engine = make_engine(settings.db_url)
    try:
        assert {"prediction_requests", "feedback", "drift_runs"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    registry = Registry.from_settings(settings)
    assert registry.champion_version() == "1"
    window = registry.version_info("1").data_window
    assert window["n_questions"] == 600
    assert window["until"] < "2019-01-01"

    second = runner.invoke(app, ["init", "--max-train", "600"])
    assert second.exit_code == 0, second.output
    assert "database at head" in second.output
    assert "version 1 is champion: no model to train" in second.output
    assert "training on" not in second.output
    assert [v.version for v in registry.list_versions()] == ["1"]

    # --always registers another version, but leaves the champion alone.
    third = runner.invoke(app, ["init", "--max-train", "600", "--always"])
    assert third.exit_code == 0, third.output
    assert "Registered tagwatch version 2 in" in third.output
    assert registry.champion_version() == "1"


def test_init_refuses_a_window_with_too_few_questions(home: Path) -> None:
    from tagwatch.registry import Registry

    result = CliRunner().invoke(app, ["init", "--data", str(TINY_DATA)])
    assert result.exit_code == 2, result.output
    assert "at least 200 are needed" in result.output
    settings = Settings(home=home)
    assert Registry.from_settings(settings).list_versions() == []


def test_migrate_creates_the_database_and_the_registry_store(cli_home: Settings) -> None:
    from tagwatch.registry import Registry

    first = invoke("migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"database at head: {cli_home.db_url}",
        f"registry ready: {cli_home.tracking_url}",
        "database roles: none (SQLite has no roles; every process opens the files itself)",
    ]
    engine = create_engine(cli_home.db_url)
    try:
        assert {"prediction_requests", "feedback", "drift_runs", "alias_moves"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
    assert Registry.from_settings(cli_home).champion_version() is None
    # The reports directory exists before any drift run: the API replicas mount the home read-only (the chart).
    assert cli_home.reports_dir.is_dir()
    again = invoke("migrate")  # idempotent
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout


def test_init_refuses_a_date_before_touching_anything(cli_home: Settings) -> None:
    result = invoke("init", "--until", "soon")
    assert result.exit_code == 2
    assert "'soon' is not a date like 2018-01-31" in result.output
    assert not cli_home.home.exists()

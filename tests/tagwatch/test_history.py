"""The history of alias moves: recorded and listed on SQLite and PostgreSQL, written by a registry built with
``Registry.from_settings(..., actor=...)``, shown by ``tagwatch history``, changed by ``tagwatch rollback --to``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from commands.cli import app
from tagwatch.db import make_engine, upgrade_database
from tagwatch.history import AliasMoveRecord, Journal, list_moves, local_actor, record_move
from tagwatch.registry import CHAMPION, PREVIOUS, Registry
from tagwatch.settings import Settings, get_settings
from tests.tagwatch.registry.support import register_tiny

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_record_and_list_moves(engine: Engine) -> None:
    assert list_moves(engine, model_name="tagwatch") == []
    first = record_move(
        engine,
        model_name="tagwatch",
        alias=CHAMPION,
        from_version=None,
        to_version="1",
        trigger="init",
        actor="cli:alice",
        at=T0,
    )
    assert first == AliasMoveRecord(first.id, T0, "tagwatch", CHAMPION, None, "1", "init", "cli:alice")
    moves: list[tuple[datetime, str, str | None, str | int | None, str, str]] = [
        (T0 + timedelta(hours=1), "challenger", None, 2, "drift: data, concept", "monitor"),
        (T0 + timedelta(hours=1, seconds=1), PREVIOUS, None, "1", "drift: data, concept", "monitor"),
        (T0 + timedelta(hours=1, seconds=1), CHAMPION, "1", "2", "drift: data, concept", "monitor"),
        (T0 + timedelta(hours=2), CHAMPION, "2", "1", "rollback", "cli:bob"),
    ]
    for at, alias, old, new, trigger, actor in moves:
        record_move(
            engine,
            model_name="tagwatch",
            alias=alias,
            from_version=old,
            to_version=new,
            trigger=trigger,
            actor=actor,
            at=at,
        )
    record_move(
        engine, model_name="other", alias=CHAMPION, from_version=None, to_version="7", trigger="x", actor="y", at=T0
    )

    listed = list_moves(engine, model_name="tagwatch")
    # Newest first; two moves of the same instant in reverse insertion order (champion before previous).
    assert [(m.alias, m.from_version, m.to_version) for m in listed] == [
        (CHAMPION, "2", "1"),
        (CHAMPION, "1", "2"),
        (PREVIOUS, None, "1"),
        ("challenger", None, "2"),
        (CHAMPION, None, "1"),
    ]
    assert listed[0].moved_at == T0 + timedelta(hours=2)
    assert listed[0].moved_at.tzinfo is not None
    assert (listed[0].trigger, listed[0].actor) == ("rollback", "cli:bob")
    champion = list_moves(engine, model_name="tagwatch", alias=CHAMPION)
    assert [m.to_version for m in champion] == ["1", "2", "1"]
    assert [m.to_version for m in list_moves(engine, model_name="tagwatch", alias=CHAMPION, limit=2)] == ["1", "2"]
    assert list_moves(engine, model_name="tagwatch", limit=0) == []
    assert [m.to_version for m in list_moves(engine, model_name="other")] == ["7"]
    assert listed[0].to_dict() == {
        "id": listed[0].id,
        "moved_at": "2026-11-25T14:00:00+00:00",
        "model_name": "tagwatch",
        "alias": CHAMPION,
        "from_version": "2",
        "to_version": "1",
        "trigger": "rollback",
        "actor": "cli:bob",
    }


def test_record_move_refuses_naive_times_and_cuts_long_values(engine: Engine) -> None:
    with pytest.raises(ValueError, match="naive"):
        record_move(
            engine,
            model_name="m",
            alias=CHAMPION,
            from_version=None,
            to_version="1",
            trigger="t",
            actor="a",
            at=datetime(2026, 1, 1),
        )
    moved = record_move(
        engine, model_name="m", alias=CHAMPION, from_version=None, to_version="1", trigger="t" * 5000, actor="a" * 300
    )
    assert len(moved.trigger) == 2000
    assert moved.trigger.endswith("…")
    assert len(moved.actor) == 128
    [stored] = list_moves(engine, model_name="m")
    assert stored == moved
    assert datetime.now(UTC) - stored.moved_at < timedelta(minutes=1)


def test_local_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert local_actor() == "cli:alice"

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert local_actor() == "cli:unknown"


def test_registry_from_settings_records_into_the_request_log(settings: Settings) -> None:
    registry = Registry.from_settings(settings, actor="cli:alice")
    assert isinstance(registry.journal, Journal)
    _, v1 = register_tiny(registry)
    registry.promote(v1, trigger="init")
    engine = make_engine(settings.db_url)
    try:
        [move] = list_moves(engine, model_name=settings.model_name)
    finally:
        engine.dispose()
    assert (move.alias, move.from_version, move.to_version, move.trigger, move.actor) == (
        CHAMPION,
        None,
        v1,
        "init",
        "cli:alice",
    )


def test_the_monitor_records_its_moves_as_monitor(settings: Settings) -> None:
    from commands.scheduler import build_monitor

    monitor = build_monitor(settings)
    try:
        assert isinstance(monitor.registry.journal, Journal)
        assert monitor.registry.journal.engine is monitor.engine
        assert monitor.registry.actor == "monitor"
    finally:
        monitor.engine.dispose()


# --- the command line --------------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings from the environment, everything under a temporary home; the OS user is "alice"."""
    import getpass

    home = tmp_path / "home"
    monkeypatch.setenv("TAGWATCH_HOME", str(home))
    for name in ("TAGWATCH_DATABASE_URL", "TAGWATCH_REGISTRY_URL", "TAGWATCH_DATA_PATH", "TAGWATCH_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _three_promotions(settings: Settings) -> Registry:
    """Versions 1, 2, 3, each promoted by the monitor in turn (champion 3, previous 2)."""
    registry = Registry.from_settings(settings, actor="monitor")
    for seed in range(3):
        _, version = register_tiny(registry, seed=seed)
        registry.set_alias("challenger", version, trigger="drift: data")
        registry.promote(version, trigger="drift: data")
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == ("3", "2")
    return registry


def _history(runner: CliRunner, *args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["history", "--json", *args])
    assert result.exit_code == 0, result.output
    moves: list[dict[str, object]] = json.loads(result.stdout)
    return moves


def test_cli_rollback_to_the_first_of_three_promotions_and_its_history(home: Path) -> None:
    settings = Settings(home=home)
    registry = _three_promotions(settings)
    runner = CliRunner()
    assert len(_history(runner)) == 3 + 2 + 3  # challenger x3, previous x2, champion x3

    result = runner.invoke(app, ["rollback", "--to", "1"])
    assert result.exit_code == 0, result.output
    assert "champion 3 -> 1 (previous is now 3)" in result.stdout
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == ("1", "3")

    champion = _history(runner, "--alias", "champion")
    assert [(m["from_version"], m["to_version"], m["trigger"], m["actor"]) for m in champion] == [
        ("3", "1", "rollback", "cli:alice"),
        ("2", "3", "drift: data", "monitor"),
        ("1", "2", "drift: data", "monitor"),
        (None, "1", "drift: data", "monitor"),
    ]
    newest = champion[0]
    assert set(newest) == {"id", "moved_at", "model_name", "alias", "from_version", "to_version", "trigger", "actor"}
    assert newest["model_name"] == "tagwatch"
    moved_at = datetime.fromisoformat(str(newest["moved_at"]))
    assert moved_at.utcoffset() == timedelta(0)
    assert datetime.now(UTC) - moved_at < timedelta(minutes=5)
    [previous] = _history(runner, "--alias", "previous", "--limit", "1")
    assert (previous["from_version"], previous["to_version"], previous["actor"]) == ("2", "3", "cli:alice")
    assert len(_history(runner, "--limit", "2")) == 2

    # The table: newest first, one line per move.
    table = runner.invoke(app, ["history", "--alias", "champion"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["moved", "at", "(UTC)", "alias", "from", "->", "to", "trigger", "who"]
    assert lines[1].split()[2:] == ["champion", "3", "->", "1", "rollback", "cli:alice"]
    assert len(lines) == 5

    # Already champion: nothing moves, nothing is recorded.
    again = runner.invoke(app, ["rollback", "--to", "1"])
    assert again.exit_code == 0, again.output
    assert "version 1 is the champion already: nothing moved" in again.stdout
    assert len(_history(runner)) == 3 + 2 + 3 + 2

    # Without --to: one step back, as before.
    back = runner.invoke(app, ["rollback"])
    assert back.exit_code == 0, back.output
    assert "champion 1 -> 3" in back.stdout
    assert registry.champion_version() == "3"


def test_cli_rollback_refuses_a_version_without_its_model_directory(home: Path) -> None:
    settings = Settings(home=home)
    registry = _three_promotions(settings)
    source = Path(registry.version_info("1").source.removeprefix("file://"))
    for item in source.iterdir():
        item.unlink()
    source.rmdir()
    runner = CliRunner()
    before = _history(runner)

    result = runner.invoke(app, ["rollback", "--to", "1"])
    assert result.exit_code == 1, result.output
    assert "rollback refused" in result.output
    assert "model directory" in result.output
    assert "no alias moved" in result.output
    for bad, message in (("9", "has no version 9"), ("latest", "positive integer")):
        refused = runner.invoke(app, ["rollback", "--to", bad])
        assert refused.exit_code == 1, refused.output
        assert message in refused.output
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == ("3", "2")
    assert _history(runner) == before


def test_cli_history_escapes_control_characters_and_says_when_empty(home: Path) -> None:
    settings = Settings(home=home)
    runner = CliRunner()
    upgrade_database(settings.db_url)
    empty = runner.invoke(app, ["history"])
    assert empty.exit_code == 0, empty.output
    assert "no alias move recorded for tagwatch" in empty.stdout
    assert _history(runner) == []

    engine = make_engine(settings.db_url)
    try:
        record_move(
            engine,
            model_name="tagwatch",
            alias=CHAMPION,
            from_version=None,
            to_version="1",
            trigger="drift\x1b[2J\nforged line",
            actor="key\x07",
        )
    finally:
        engine.dispose()
    table = runner.invoke(app, ["history"])
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.stdout
    assert "\x07" not in table.stdout
    assert "drift\\x1b[2J\\nforged line" in table.stdout
    assert len(table.stdout.splitlines()) == 2
    [move] = _history(runner)
    assert move["trigger"] == "drift\x1b[2J\nforged line"


def test_cli_history_without_the_table(home: Path) -> None:
    # No migration: the request-log database has no alias_moves table.
    result = CliRunner().invoke(app, ["history"])
    assert result.exit_code == 1
    assert "cannot read the history" in result.output
    assert "tagwatch migrate" in result.output


def test_cli_rollback_waits_for_no_one_while_a_promotion_holds_the_lock(home: Path) -> None:
    from tagwatch.locks import promotion_lock

    settings = Settings(home=home)
    registry = _three_promotions(settings)
    runner = CliRunner()
    before = _history(runner)
    engine = make_engine(settings.db_url)
    try:
        with promotion_lock(engine, settings.model_name):
            busy = runner.invoke(app, ["rollback", "--to", "1"])
    finally:
        engine.dispose()
    assert busy.exit_code == 1, busy.output
    assert "a retrain or promotion is running" in busy.output
    assert "no alias moved" in busy.output
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == ("3", "2")
    assert _history(runner) == before
    # Released: the rollback goes through.
    done = runner.invoke(app, ["rollback", "--to", "1"])
    assert done.exit_code == 0, done.output
    assert registry.champion_version() == "1"

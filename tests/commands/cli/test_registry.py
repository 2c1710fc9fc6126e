"""`tagwatch rollback` and `tagwatch history` where there is nothing to move or read (moves and locks:
tests/tagwatch/test_history.py; `tagwatch retrain`: tests/monitor/test_locks.py)."""

from __future__ import annotations

import json

from tagwatch.settings import Settings
from tests.commands.cli.support import invoke


def test_rollback_without_a_previous_champion_moves_nothing(cli_home: Settings) -> None:
    from tagwatch.db import make_engine
    from tagwatch.history import list_moves

    result = invoke("rollback")
    assert result.exit_code == 1
    assert "rollback refused: nothing to roll back to" in result.output
    assert "; no alias moved" in result.output
    engine = make_engine(cli_home.db_url)  # migrated first (TAGWATCH_AUTO_MIGRATE), so the refusal is the rollback's
    try:
        assert list_moves(engine, model_name=cli_home.model_name) == []
    finally:
        engine.dispose()


def test_history_before_the_database_is_migrated(cli_home: Settings) -> None:
    cli_home.home.mkdir(parents=True)
    result = invoke("history")
    assert result.exit_code == 1
    assert f"cannot read the history from {cli_home.db_url}: " in result.output
    assert "(is the database at head? `tagwatch migrate`)" in result.output


def test_history_json_of_a_fresh_database(cli_home: Settings) -> None:
    assert invoke("migrate").exit_code == 0
    result = invoke("history", "--json", "--alias", "champion", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert invoke("history", "--limit", "0").exit_code == 2

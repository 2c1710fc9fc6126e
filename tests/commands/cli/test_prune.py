"""`tagwatch prune`: its output (lines, or one JSON document), its dry run, its exit code, a clear error."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

import commands.prune
from tagwatch.db.partitions import RequestPrune
from tagwatch.settings import Settings
from tests.commands.cli.support import invoke


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The request-log retention of tagwatch.db.partitions, recorded (its own tests are in tests/tagwatch/db)."""
    seen: list[dict[str, Any]] = []

    def prune(engine: Any, *, older_than: datetime, dry_run: bool) -> RequestPrune:
        seen.append({"older_than": older_than, "dry_run": dry_run})
        return RequestPrune("sqlite", older_than, dry_run, partitions_dropped=(), rows_deleted=0, seconds=0.0)

    monkeypatch.setattr(commands.prune, "_ensure_partitions", lambda engine, *, now, ahead: None)
    monkeypatch.setattr(commands.prune, "_prune_requests", prune)
    return seen


def test_prune_dry_run_prints_one_json_document(cli_home: Settings, retention: list[dict[str, Any]]) -> None:
    from tagwatch.db import upgrade_database

    upgrade_database(cli_home.db_url)  # a dry run does not migrate either
    result = invoke("prune", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["dry_run"] is True
    assert document["parts"]["partitions"]["status"] == "skipped"
    assert document["parts"]["model_versions"]["result"]["deleted"] == []
    assert document["parts"]["spill"]["result"]["directory"] == str(cli_home.spill_dir)
    assert document["parts"]["spill"]["result"]["limit_bytes"] == cli_home.spill_max_bytes
    assert retention == [{"older_than": retention[0]["older_than"], "dry_run": True}]


def test_prune_prints_a_line_per_part(cli_home: Settings, retention: list[dict[str, Any]]) -> None:
    result = invoke("prune")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "tagwatch prune:"
    assert [line.split(":", 1)[0].strip() for line in lines[1:]] == list(commands.prune.PARTS)
    assert "never deletes them" in result.stdout  # the spill files
    assert retention[0]["dry_run"] is False


def test_a_failed_part_exits_1_and_names_it(
    cli_home: Settings, retention: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("permission denied for table prediction_requests")

    monkeypatch.setattr(commands.prune, "_prune_requests", denied)
    result = invoke("prune", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["parts"]["requests"]["status"] == "failed"
    assert "tagwatch prune: failed: requests (the other parts ran; see above)" in result.output


def test_an_unreachable_database_is_one_line_not_a_traceback(
    cli_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", "postgresql+psycopg://nobody:secret-password@127.0.0.1:9/none")
    result = invoke("prune")
    assert result.exit_code == 1
    assert "tagwatch prune: failed: " in result.output
    assert "Traceback" not in result.output
    assert "secret-password" not in result.output

"""`tagwatch replay`: its window, and its exit code when nothing is answered (the key is tests/commands/test_replay)."""

from __future__ import annotations

import json

from commands.polling import free_port
from tagwatch.settings import Settings
from tests.commands.cli.support import TINY_DATA, invoke


def test_replay_of_an_empty_window_sends_nothing(cli_home: Settings) -> None:
    result = invoke("replay", "--data", str(TINY_DATA), "--since", "2100-01-01", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "No questions to replay in that window." in result.output


def test_replay_fails_when_no_question_is_answered(cli_home: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke("replay", "--data", str(TINY_DATA), "--limit", "2", "--url", url, "--json")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["answered"] == 0
    assert summary["sent"] == 2

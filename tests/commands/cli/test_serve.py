"""`tagwatch serve`: the app built from the settings, handed to uvicorn with the shutdown grace and no headers."""

from __future__ import annotations

from typing import Any

import pytest

from tagwatch.settings import Settings
from tests.commands.cli.support import invoke


def test_serve_runs_the_app_on_the_given_interface(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from fastapi import FastAPI

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    result = invoke("serve", "--host", "0.0.0.0", "--port", "8123")
    assert result.exit_code == 0, result.output
    [(app, kwargs)] = calls
    assert isinstance(app, FastAPI)
    assert kwargs == {
        "host": "0.0.0.0",
        "port": 8123,
        "log_level": "info",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
    }


def test_serve_refuses_production_without_feedback_keys(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: pytest.fail("must not serve"))
    monkeypatch.setenv("TAGWATCH_ENVIRONMENT", "production")
    result = invoke("serve")
    assert result.exit_code == 2
    assert result.output.startswith("tagwatch: invalid setting: ")
    assert "TAGWATCH_FEEDBACK_KEYS" in result.output

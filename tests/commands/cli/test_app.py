"""The app: its commands in their help order, the settings check before any command, a cheap import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from tagwatch.settings import Settings
from tests.commands.cli.support import invoke

COMMANDS = [
    "train",
    "evaluate",
    "serve",
    "replay",
    "monitor",
    "drift-check",
    "retrain",
    "rollback",
    "history",
    "backtest",
    "migrate",
    "init",
    "alert-sink",
    "demo",
]


def _commands() -> list[str]:
    from commands.cli import app

    return list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_commands_in_their_help_order() -> None:
    # New commands may come anywhere; these keep the order they always had.
    assert [name for name in _commands() if name in COMMANDS] == COMMANDS


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(cli_home: Settings, command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: tagwatch {command} [OPTIONS]" in result.output
    assert not cli_home.home.exists()  # help touches nothing


def test_no_command_shows_the_help(cli_home: Settings) -> None:
    result = invoke()
    assert "Usage: tagwatch [OPTIONS] COMMAND" in result.output
    assert "drift-check" in result.output


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TAGWATCH_TOP_N_TAGS", "1", "TAGWATCH_TOP_N_TAGS: Input should be greater than or equal to 2"),
        ("TAGWATCH_ENVIRONMENT", "staging", "TAGWATCH_ENVIRONMENT: Input should be 'local' or 'production'"),
        (
            "TAGWATCH_MONITOR_PORT",
            "http://x",
            "TAGWATCH_MONITOR_PORT: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_before_any_command(
    cli_home: Settings, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = invoke("migrate")
    assert result.exit_code == 2
    assert result.output == f"tagwatch: invalid setting: {message}\n"
    assert not cli_home.home.exists()  # the command did not run


def test_the_import_is_cheap_and_python_m_runs_it() -> None:
    heavy = ["service", "monitor", "retrain", "mlflow", "sklearn", "numpy", "pandas", "sqlalchemy", "uvicorn"]
    code = f"import sys, commands.cli; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
    helped = subprocess.run(
        [sys.executable, "-m", "commands.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert helped.returncode == 0, helped.stderr
    assert "Usage: python -m commands.cli [OPTIONS] COMMAND" in helped.stdout

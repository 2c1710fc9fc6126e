"""What the commands print: URLs without passwords, text without terminal control characters."""

from __future__ import annotations

from commands.cli.console import printable, redact


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql+psycopg://tagwatch:s3cret@db:5432/tagwatch") == (
        "postgresql+psycopg://tagwatch:***@db:5432/tagwatch"
    )
    assert redact("sqlite:////var/tagwatch/tagwatch.db") == "sqlite:////var/tagwatch/tagwatch.db"


def test_printable_escapes_control_characters() -> None:
    assert printable("rollback by ops") == "rollback by ops"
    assert printable("é ünïcode") == "é ünïcode"
    assert printable("\x1b[31mred\x1b[0m\r\nnext") == "\\x1b[31mred\\x1b[0m\\r\\nnext"


def test_setup_logging_writes_json_lines_when_the_settings_ask() -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import logging; from commands.cli.console import setup_logging; setup_logging(); "
        "logging.getLogger('uvicorn.error').info('started %s', 'here'); logging.getLogger('x').warning('w')"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    lines = {}
    for log_format in ("json", "text"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env | {"TAGWATCH_LOG_FORMAT": log_format},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        lines[log_format] = done.stderr.splitlines()
    first, second = (json.loads(line) for line in lines["json"])
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO",
        "logger": "uvicorn.error",
        "message": "started here",
    }
    assert first["timestamp"].endswith("+00:00")
    assert second["level"] == "WARNING"
    assert lines["text"][0].endswith(" INFO uvicorn.error: started here")


def test_log_format_setting() -> None:
    import pytest
    from pydantic import ValidationError

    from tagwatch.settings import Settings

    assert Settings().log_format == "text"
    assert Settings().access_log is False
    assert Settings(log_format="json", access_log=True).log_format == "json"
    with pytest.raises(ValidationError):
        Settings(log_format="xml")  # type: ignore[arg-type]

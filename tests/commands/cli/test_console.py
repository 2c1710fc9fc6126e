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

"""The ``tagwatch`` command's settings, read from a clean environment (helpers: support.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagwatch.settings import Settings, get_settings


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings from the environment with nothing set but TAGWATCH_HOME: SQLite databases under a temporary home."""
    for name in [n for n in os.environ if n.upper().startswith("TAGWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TAGWATCH_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield Settings(home=tmp_path / "home")
    get_settings.cache_clear()

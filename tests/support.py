"""Test helpers that are not fixtures."""

from __future__ import annotations

from tagwatch.model import TagModel

SMALL_MODEL_TAGS = 40


class InMemorySource:
    """A model source for service tests that need no registry: versions kept in a dict, one champion pointer."""

    def __init__(self) -> None:
        self.models: dict[str, TagModel] = {}
        self.champion: str | None = None
        self.fail_loading: set[str] = set()

    def add(self, version: str, model: TagModel, *, champion: bool = True) -> None:
        self.models[version] = model
        if champion:
            self.champion = version

    def champion_version(self) -> str | None:
        return self.champion

    def load_model(self, version: str) -> TagModel:
        if version in self.fail_loading:
            raise RuntimeError(f"cannot load version {version}")
        return self.models[version]

    def version_info(self, version: str) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(
            data_window={"n_questions": 1},
            metrics={"holdout_random.micro_f1": 0.5},
            params={"top_n": SMALL_MODEL_TAGS},
        )


def require_tool(name: str) -> str:
    """The path of an external program a test needs. Missing: a failure under CI=true (CI installs it), else a skip."""
    import os
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it: see the Makefile's 'tools' target)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path

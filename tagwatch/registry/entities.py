"""The registry's names and records: alias names, errors, what a version is, and what the registry needs of others."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


class RegistryError(RuntimeError):
    """The registry is in a state this module cannot work with (missing artifacts, foreign versions, ...)."""


class VersionNotFoundError(RegistryError, LookupError):
    """No such model version in the registry."""


class SavableModel(Protocol):
    """What ``register`` needs of a model; ``tagwatch.model.TagModel`` satisfies it."""

    tags: list[str]
    version: str | None

    def save(self, directory: Path) -> None: ...


class MoveJournal(Protocol):
    """Where a ``Registry`` records each alias move; ``tagwatch.history.Journal`` writes ``alias_moves``."""

    def record(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        trigger: str,
        actor: str,
    ) -> None: ...


@dataclass(frozen=True)
class ModelVersionInfo:
    version: str
    created_at: datetime
    run_id: str
    source: str
    params: dict[str, Any]
    metrics: dict[str, Any]  # nested again: {"holdout_time": {"micro_f1": 0.6, ...}}
    data_window: dict[str, Any]
    tags: list[str]  # the tag vocabulary of the model
    lineage: dict[str, Any]
    aliases: list[str]
    per_tag: dict[str, Any] = field(default_factory=dict)  # nested like metrics, leaves are {tag: value}

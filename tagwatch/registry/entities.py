"""The registry's names and records: alias names, errors, what a version is, and what the registry needs of others."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

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


class ChampionSource(Protocol):
    """Anything that names the champion: ``Registry``, ``ChampionResolver``."""

    def champion_version(self) -> str | None: ...


def champion_or_none(source: ChampionSource) -> str | None:
    """The champion's version, or None (logged) when the registry cannot be read: for the notes jobs write about a
    run that was interrupted, which must be written even then."""
    try:
        return source.champion_version()
    except Exception:
        log.exception("could not read the champion")
        return None

"""Bounded model versions: keep the versions an alias names and the newest N, delete the others and their files.

``plan_versions`` is the pure decision (versions, aliases, N -> what to keep and why, what to delete);
``prune_versions`` does it on a registry, holding the promotion lock (``tagwatch.locks.PROMOTION``, the lock a
retrain, a manual promotion and a rollback hold), so no alias moves between reading the aliases and deleting: a
version an alias names is never deleted. The registry's versions are deleted under the lock (a few rows each); their
artifact directories after it, since a version that is gone from the registry can no longer be named by an alias.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagwatch.locks import PROMOTION, hold
from tagwatch.registry.codecs import normalize_version

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tagwatch.registry.client import Registry

log = logging.getLogger(__name__)

# Why a version is kept (besides an alias name, e.g. "alias:champion").
NEWEST = "newest"
# Seconds ``prune_versions`` waits for the promotion lock by default: a retrain holds it for minutes, and then the
# next prune does the work (prune is idempotent), so it does not wait long.
LOCK_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class VersionPlan:
    """Which versions stay (with why) and which go, newest first."""

    keep: dict[str, tuple[str, ...]]  # version -> reasons ("alias:champion", "newest")
    delete: tuple[str, ...]


def plan_versions(versions: Sequence[str | int], aliases: Mapping[str, str | int], *, keep_newest: int) -> VersionPlan:
    """Keep every version an alias names (champion, previous, challenger, any other) and the ``keep_newest`` newest
    versions; delete the rest. An alias naming a version not in ``versions`` changes nothing (it cannot be deleted)."""
    if keep_newest < 0:
        raise ValueError(f"keep_newest must be >= 0, got {keep_newest}")
    numbers = sorted({normalize_version(v) for v in versions}, key=int, reverse=True)
    reasons: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        reasons.setdefault(normalize_version(version), []).append(f"alias:{alias}")
    for number in numbers[:keep_newest]:
        reasons.setdefault(number, []).append(NEWEST)
    keep = {n: tuple(reasons[n]) for n in numbers if n in reasons}
    return VersionPlan(keep=keep, delete=tuple(n for n in numbers if n not in reasons))


@dataclass(frozen=True)
class VersionPrune:
    """What a prune of model versions did (or, ``dry_run``, would do)."""

    model_name: str
    dry_run: bool
    keep_newest: int
    kept: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: tuple[str, ...] = ()  # deleted from the registry (dry run: would be)
    artifacts_deleted: tuple[str, ...] = ()  # directories removed (dry run: would be)
    artifacts_bytes: int = 0  # their size on disk
    skipped: str | None = None  # why nothing was done (the promotion lock was held elsewhere)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "dry_run": self.dry_run,
            "keep_newest": self.keep_newest,
            "kept": {v: list(r) for v, r in self.kept.items()},
            "deleted": list(self.deleted),
            "artifacts_deleted": list(self.artifacts_deleted),
            "artifacts_bytes": self.artifacts_bytes,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def prune_versions(
    registry: Registry,
    engine: Engine,
    *,
    keep_newest: int,
    dry_run: bool = False,
    lock_wait: float | None = None,
) -> VersionPrune:
    """Delete the versions ``plan_versions`` gives up, with their artifact directories, holding the promotion lock of
    the model on the request-log database ``engine`` while the aliases are read and the versions deleted.

    When the lock stays held elsewhere for ``lock_wait`` seconds (default ``LOCK_WAIT_SECONDS``), nothing is done
    (``skipped`` says why). Run twice, the second run finds nothing to delete."""
    started = time.perf_counter()
    lock_wait = LOCK_WAIT_SECONDS if lock_wait is None else lock_wait
    name = registry.model_name
    with hold(engine, PROMOTION, model_name=name, wait=lock_wait) as held:
        if not held:
            return VersionPrune(
                model_name=name,
                dry_run=dry_run,
                keep_newest=keep_newest,
                skipped="the promotion lock is held elsewhere (a retrain, promotion or rollback): next time",
                seconds=time.perf_counter() - started,
            )
        stored = registry.version_sources()
        plan = plan_versions(list(stored), registry.aliases(), keep_newest=keep_newest)
        directories = {v: registry.run_directory(stored[v]) for v in plan.delete}
        if not dry_run:
            for version in plan.delete:
                registry.delete_version(version)
    # Out of the lock: nothing names these versions any more.
    sizes = {v: _size(d) for v, d in directories.items() if d is not None}
    removed: list[str] = []
    for version, directory in directories.items():
        if directory is None:
            continue
        if dry_run:
            if directory.exists():
                removed.append(str(directory))
            continue
        if registry.remove_run_directory(directory):
            removed.append(str(directory))
            log.info("%s: deleted version %s and its artifacts %s", name, version, directory)
    return VersionPrune(
        model_name=name,
        dry_run=dry_run,
        keep_newest=keep_newest,
        kept=plan.keep,
        deleted=plan.delete,
        artifacts_deleted=tuple(removed),
        artifacts_bytes=sum(sizes.values()),
        seconds=time.perf_counter() - started,
    )


def _size(directory: Path) -> int:
    total = 0
    if directory.is_dir():
        for path in directory.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except FileNotFoundError:
                continue
    return total

"""The history of alias moves: which model version served when, and who or what moved it there.

Every move of a registry alias (``champion``, ``previous``, ``challenger``) is one row of ``alias_moves`` in the
request-log database (``tagwatch.db.AliasMove``): when, the alias, from which version to which (None: not set before,
or removed), the trigger ("init", "drift: data, concept", "rollback", "manual", ...) and the actor ("monitor",
"cli:<user>", an API key's name). ``tagwatch.registry.Registry`` writes them through a ``Journal`` right after it moves
an alias in MLflow; ``tagwatch history``, the reports index and the Grafana annotations read them.

Rows are only ever inserted. ``list_moves`` returns them newest first.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tagwatch.db import AliasMove

log = logging.getLogger(__name__)

# The column widths of alias_moves (migration 0003): longer values are cut, not refused (a move must be recorded).
_MAX_MODEL_NAME = 128
_MAX_ALIAS = 64
_MAX_VERSION = 64
_MAX_ACTOR = 128
_MAX_TRIGGER = 2_000


@dataclass(frozen=True, slots=True)
class AliasMoveRecord:
    """One recorded alias move, detached from any session."""

    id: int
    moved_at: datetime  # UTC, timezone-aware
    model_name: str
    alias: str
    from_version: str | None  # None: the alias was not set before
    to_version: str | None  # None: the alias was removed
    trigger: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``moved_at`` as an ISO 8601 string with its UTC offset."""
        return {
            "id": self.id,
            "moved_at": self.moved_at.isoformat(),
            "model_name": self.model_name,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "trigger": self.trigger,
            "actor": self.actor,
        }


def local_actor() -> str:
    """``cli:<os user>`` for moves made from a command line (``cli:unknown`` when the user cannot be found)."""
    try:
        user = getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (e.g. an arbitrary uid in a container)
        user = ""
    return f"cli:{user or 'unknown'}"


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _version(value: str | int | None) -> str | None:
    return None if value is None else _cut(str(value), _MAX_VERSION)


def record_move(
    engine: Engine,
    *,
    model_name: str,
    alias: str,
    from_version: str | int | None,
    to_version: str | int | None,
    trigger: str,
    actor: str,
    at: datetime | None = None,
) -> AliasMoveRecord:
    """Insert one alias move (``at``: when, default now; timezone-aware) and return it as stored.

    Values longer than their column are cut (with "…"), so a move is never refused for a long trigger or actor.
    """
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ValueError(f"at={at.isoformat()} is naive: give a timezone-aware (UTC) datetime")
    row = AliasMove(
        moved_at=(at or datetime.now(UTC)).astimezone(UTC),
        model_name=_cut(model_name, _MAX_MODEL_NAME),
        alias=_cut(alias, _MAX_ALIAS),
        from_version=_version(from_version),
        to_version=_version(to_version),
        trigger=_cut(trigger, _MAX_TRIGGER),
        actor=_cut(actor, _MAX_ACTOR),
    )
    with Session(engine, expire_on_commit=False) as session:
        session.add(row)
        session.commit()
        return _record(row)


def list_moves(
    engine: Engine, *, model_name: str, alias: str | None = None, limit: int | None = None
) -> list[AliasMoveRecord]:
    """The recorded moves of ``model_name``'s aliases (only ``alias`` when given), NEWEST FIRST.

    ``limit`` keeps the newest ``limit`` moves. Moves recorded in the same instant keep their insertion order (a
    promotion moves ``previous`` before ``champion``: listed newest first, the champion move comes first).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    stmt = select(AliasMove).where(AliasMove.model_name == model_name)
    if alias is not None:
        stmt = stmt.where(AliasMove.alias == alias)
    stmt = stmt.order_by(AliasMove.moved_at.desc(), AliasMove.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with Session(engine) as session:
        return [_record(row) for row in session.scalars(stmt)]


def _record(row: AliasMove) -> AliasMoveRecord:
    return AliasMoveRecord(
        id=row.id,
        moved_at=row.moved_at,
        model_name=row.model_name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        trigger=row.trigger,
        actor=row.actor,
    )


class Journal:
    """Where a ``Registry`` records its alias moves: ``alias_moves`` in the database of ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"Journal({self.engine.url.render_as_string(hide_password=True)!r})"

    def record(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        trigger: str,
        actor: str,
    ) -> None:
        record_move(
            self.engine,
            model_name=model_name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            trigger=trigger,
            actor=actor,
        )


__all__ = ["AliasMoveRecord", "Journal", "list_moves", "local_actor", "record_move"]

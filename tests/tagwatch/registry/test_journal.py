"""The journal of alias moves, and rollback through it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tagwatch.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Registry,
    RegistryError,
    VersionNotFoundError,
)
from tests.tagwatch.registry.support import (
    ListJournal,
    Move,
    Store,
    journaled_registry,
    register_tiny,
)

if TYPE_CHECKING:
    pass


def test_the_journal_records_every_alias_move_with_trigger_and_actor(store: Store, registry: Registry) -> None:
    journal = ListJournal()
    journaled = journaled_registry(store, registry.model_name, journal)
    versions = [register_tiny(journaled, seed=i)[1] for i in range(3)]
    v1, v2, v3 = versions
    assert journal.moves == []  # registering moves no alias

    journaled.promote(v1, trigger="init")
    journaled.set_alias(CHALLENGER, v2, trigger="drift: data, concept", actor="monitor")
    journaled.promote(v2, trigger="drift: data, concept", actor="monitor")
    journaled.promote(v2, trigger="again", actor="monitor")  # already champion: not a move
    journaled.set_alias(CHALLENGER, v2, trigger="same", actor="monitor")  # same version: not a move
    # Positional, as retrain() calls them: the default trigger and the registry's actor.
    journaled.set_alias(CHALLENGER, v3)
    journaled.promote(v3)
    journaled.delete_alias(CHALLENGER, trigger="cleanup")
    journaled.delete_alias(CHALLENGER, trigger="cleanup")  # not set: not a move

    assert journal.moves == [
        Move(CHAMPION, None, v1, "init", "cli:tester"),
        Move(CHALLENGER, None, v2, "drift: data, concept", "monitor"),
        Move(PREVIOUS, None, v1, "drift: data, concept", "monitor"),
        Move(CHAMPION, v1, v2, "drift: data, concept", "monitor"),
        Move(CHALLENGER, v2, v3, "manual", "cli:tester"),
        Move(PREVIOUS, v1, v2, "manual", "cli:tester"),
        Move(CHAMPION, v2, v3, "manual", "cli:tester"),
        Move(CHALLENGER, v3, None, "cleanup", "cli:tester"),
    ]
    assert journal.model_names == {registry.model_name}
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS), journaled.get_alias(CHALLENGER)) == (
        v3,
        v2,
        None,
    )


def test_a_failed_alias_write_records_nothing(store: Store, registry: Registry) -> None:
    journal = ListJournal()
    journaled = journaled_registry(store, registry.model_name, journal)
    _, v1 = register_tiny(journaled)
    with pytest.raises(VersionNotFoundError):
        journaled.set_alias(CHALLENGER, "42")
    with pytest.raises(VersionNotFoundError):
        journaled.promote("42")
    with pytest.raises(ValueError, match="reserved"):
        journaled.set_alias("latest", v1)
    assert journal.moves == []


def test_a_failing_journal_leaves_the_move_and_logs_an_error(
    store: Store, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    journaled = journaled_registry(store, registry.model_name, ListJournal(fail=True))
    _, v1 = register_tiny(journaled)
    with caplog.at_level("ERROR", logger="tagwatch.registry"):
        journaled.promote(v1, trigger="init", actor="cli:tester")
    assert journaled.champion_version() == v1
    [message] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"alias champion moved None -> {v1} (init, by cli:tester) but the move could not be recorded" in message


def _three_promotions(registry: Registry) -> list[str]:
    versions = []
    for seed in range(3):
        _, version = register_tiny(registry, seed=seed)
        registry.promote(version, trigger="drift: data", actor="monitor")
        versions.append(version)
    return versions


def test_rollback_to_restores_the_first_of_three_promotions(store: Store, registry: Registry) -> None:
    from retrain.promote import rollback

    journal = ListJournal()
    journaled = journaled_registry(store, registry.model_name, journal)
    v1, v2, v3 = _three_promotions(journaled)
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS)) == (v3, v2)
    del journal.moves[:]

    assert rollback(journaled, v1, actor="cli:alice") == (v3, v1)
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS)) == (v1, v3)
    assert journal.moves == [
        Move(PREVIOUS, v2, v3, "rollback", "cli:alice"),
        Move(CHAMPION, v3, v1, "rollback", "cli:alice"),
    ]
    loaded = journaled.load_champion()
    assert loaded is not None
    assert loaded.version == v1

    # The current champion: nothing moves, nothing is recorded.
    assert rollback(journaled, int(v1), actor="cli:alice") == (v1, v1)
    assert len(journal.moves) == 2
    # Without --to: one step back, as before.
    assert rollback(journaled) == (v1, v3)
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS)) == (v3, v1)
    assert journal.moves[-1] == Move(CHAMPION, v1, v3, "rollback", "cli:tester")


def test_rollback_refuses_a_version_whose_artifacts_are_gone_before_moving_anything(
    store: Store, registry: Registry
) -> None:
    from retrain.promote import rollback

    journal = ListJournal()
    journaled = journaled_registry(store, registry.model_name, journal)
    v1, v2, v3 = _three_promotions(journaled)
    recorded = list(journal.moves)
    source = Path(journaled.version_info(v1).source.removeprefix("file://"))
    for item in source.iterdir():
        item.unlink()
    source.rmdir()

    with pytest.raises(RegistryError, match=rf"version {v1}: artifacts missing: model directory"):
        rollback(journaled, v1)
    with pytest.raises(VersionNotFoundError, match="no version 42"):
        rollback(journaled, "42")
    with pytest.raises(ValueError, match="positive integer"):
        rollback(journaled, "v1")
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS)) == (v3, v2)
    assert journal.moves == recorded

    # Plain rollback checks ``previous`` the same way.
    (Path(journaled.version_info(v2).source.removeprefix("file://")).parent / "tagwatch" / "reference.csv.gz").unlink()
    with pytest.raises(RegistryError, match=r"reference\.csv\.gz"):
        rollback(journaled)
    assert (journaled.champion_version(), journaled.get_alias(PREVIOUS)) == (v3, v2)
    assert journal.moves == recorded

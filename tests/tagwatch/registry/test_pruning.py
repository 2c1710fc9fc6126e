"""Pruning model versions: the pure plan, then the prune on real MLflow stores (SQLite and PostgreSQL) with the
promotion lock on a real request-log database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tagwatch.db import make_engine, upgrade_database
from tagwatch.locks import promotion_lock
from tagwatch.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry, RegistryError
from tagwatch.registry.artifacts import local_path
from tagwatch.registry.pruning import NEWEST, plan_versions, prune_versions
from tests.tagwatch.registry.support import register_tiny

# --- the plan ------------------------------------------------------------------------------------------------------


def test_plan_keeps_aliased_versions_and_the_newest() -> None:
    plan = plan_versions([str(v) for v in range(1, 11)], {CHAMPION: "3", PREVIOUS: "2", CHALLENGER: "9"}, keep_newest=2)
    assert plan.delete == ("8", "7", "6", "5", "4", "1")
    assert plan.keep == {
        "10": (NEWEST,),
        "9": ("alias:challenger", NEWEST),
        "3": ("alias:champion",),
        "2": ("alias:previous",),
    }


def test_plan_sorts_versions_as_numbers_and_ignores_duplicates() -> None:
    plan = plan_versions(["9", "10", "11", 10, "2"], {}, keep_newest=2)
    assert list(plan.keep) == ["11", "10"]
    assert plan.delete == ("9", "2")


def test_plan_never_deletes_an_aliased_version_even_with_no_newest_kept() -> None:
    plan = plan_versions(["1", "2", "3"], {"champion": 1, "custom": "2"}, keep_newest=0)
    assert plan.delete == ("3",)
    assert set(plan.keep) == {"1", "2"}


def test_plan_with_fewer_versions_than_n_deletes_nothing() -> None:
    assert plan_versions(["1", "2"], {CHAMPION: "2"}, keep_newest=5).delete == ()
    assert plan_versions([], {}, keep_newest=5).delete == ()


def test_plan_ignores_an_alias_of_a_version_it_was_not_given() -> None:
    plan = plan_versions(["1", "2", "3"], {CHAMPION: "7"}, keep_newest=1)
    assert plan.delete == ("2", "1")
    assert "7" not in plan.keep


def test_plan_refuses_a_negative_n() -> None:
    with pytest.raises(ValueError, match="keep_newest"):
        plan_versions(["1"], {}, keep_newest=-1)


# --- on a registry -------------------------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'tagwatch.db'}"
    upgrade_database(url)
    made = make_engine(url)
    yield made
    made.dispose()


def _registry_of(registry: Registry, versions: int) -> dict[str, Path]:
    """Register ``versions`` versions; return each one's run directory."""
    runs = {}
    for seed in range(versions):
        _, version = register_tiny(registry, seed=seed)
        runs[version] = registry.run_directory(registry.version_sources()[version])
    return {v: d for v, d in runs.items() if d is not None}


def test_prune_deletes_versions_and_their_run_directories(registry: Registry, engine: Engine) -> None:
    runs = _registry_of(registry, 6)
    assert len(runs) == 6
    assert all(d.is_dir() and d.parent.parent == registry.artifacts_dir for d in runs.values())
    registry.promote("2")
    registry.promote("3")  # champion 3, previous 2
    registry.set_alias(CHALLENGER, "1")

    dry = prune_versions(registry, engine, keep_newest=2, dry_run=True)
    assert dry.deleted == ("4",)
    assert dry.artifacts_deleted == (str(runs["4"]),)
    assert dry.artifacts_bytes > 0
    assert set(registry.version_sources()) == set(runs)  # nothing changed
    assert runs["4"].is_dir()

    done = prune_versions(registry, engine, keep_newest=2)
    assert done.deleted == ("4",)
    assert done.kept == {
        "6": (NEWEST,),
        "5": (NEWEST,),
        "3": ("alias:champion",),
        "2": ("alias:previous",),
        "1": ("alias:challenger",),
    }
    assert set(registry.version_sources()) == {"1", "2", "3", "5", "6"}
    assert not runs["4"].exists()
    assert all(runs[v].is_dir() for v in ("1", "2", "3", "5", "6"))
    # The kept versions still load; the aliases did not move.
    assert registry.load_model("3").version == "3"
    assert registry.aliases() == {CHAMPION: "3", PREVIOUS: "2", CHALLENGER: "1"}
    assert [v.version for v in registry.list_versions()] == ["6", "5", "3", "2", "1"]

    again = prune_versions(registry, engine, keep_newest=2)  # idempotent: a CronJob may run twice
    assert again.deleted == ()
    assert again.artifacts_deleted == ()


def test_prune_waits_for_no_one_holding_the_promotion_lock(registry: Registry, engine: Engine) -> None:
    _registry_of(registry, 3)
    registry.promote("1")
    with promotion_lock(engine, registry.model_name):  # a retrain running elsewhere
        busy = prune_versions(registry, engine, keep_newest=1, lock_wait=0)
    assert busy.skipped is not None
    assert "promotion lock" in busy.skipped
    assert busy.deleted == ()
    assert set(registry.version_sources()) == {"1", "2", "3"}
    assert prune_versions(registry, engine, keep_newest=1, lock_wait=0).deleted == ("2",)


def test_prune_holds_the_promotion_lock_while_it_deletes(
    registry: Registry, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _registry_of(registry, 3)
    registry.promote("1")
    other = make_engine(engine.url)
    seen: list[bool] = []
    real = Registry.delete_version

    def delete(self: Registry, version: str | int) -> None:
        from tagwatch.locks import PROMOTION, hold

        with hold(other, PROMOTION, model_name=registry.model_name) as got:
            seen.append(got)
        real(self, version)

    monkeypatch.setattr(Registry, "delete_version", delete)
    assert prune_versions(registry, engine, keep_newest=1).deleted == ("2",)
    assert seen == [False]  # nobody could move an alias meanwhile
    other.dispose()


def test_delete_version_refuses_an_aliased_version(registry: Registry) -> None:
    _registry_of(registry, 2)
    registry.promote("2")
    with pytest.raises(RegistryError, match="champion"):
        registry.delete_version("2")
    registry.delete_version("1")
    registry.delete_version("1")  # already gone: nothing to do
    assert set(registry.version_sources()) == {"2"}


def test_a_version_whose_files_are_gone_is_still_pruned(registry: Registry, engine: Engine) -> None:
    runs = _registry_of(registry, 3)
    registry.promote("3")
    import shutil

    shutil.rmtree(runs["1"])
    done = prune_versions(registry, engine, keep_newest=1)
    assert done.deleted == ("2", "1")
    assert done.artifacts_deleted == (str(runs["2"]),)
    assert set(registry.version_sources()) == {"3"}


def test_files_outside_the_artifacts_dir_are_never_removed(registry: Registry, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "run" / "artifacts" / "model"
    outside.mkdir(parents=True)
    assert registry.run_directory(outside.as_uri()) is None
    assert registry.run_directory("s3://bucket/run/artifacts/model") is None
    with pytest.raises(RegistryError, match="not under"):
        registry.remove_run_directory(outside.parent.parent)
    with pytest.raises(RegistryError, match="not under"):
        registry.remove_run_directory(registry.artifacts_dir)
    assert outside.is_dir()


def test_prune_with_the_real_champion(registry_with_champion: Any, engine: Engine) -> None:
    """The conftest registry (a TagModel champion) with one more version: nothing to delete at N=1 but the old."""
    import copy

    registry = registry_with_champion
    source = registry.version_sources()["1"]
    model = registry.load_model("1")
    version = registry.register(
        copy.copy(model),
        params=model.params,
        metrics=registry.version_info("1").metrics,
        data_window={"n_questions": 1},
        reference=registry.load_reference("1"),
    )
    assert version == "2"
    registry.register(
        copy.copy(model),
        params=model.params,
        metrics=registry.version_info("1").metrics,
        data_window={"n_questions": 1},
        reference=registry.load_reference("1"),
    )
    done = prune_versions(registry, engine, keep_newest=1)
    assert done.deleted == ("2",)
    assert set(done.kept) == {"3", "1"}
    assert local_path(source).is_dir()  # the champion's files
    assert registry.load_champion() is not None

"""The registry on real MLflow stores.

One SQLite and one PostgreSQL store per module (a new store takes seconds to migrate), and a model name of its
own per test, so the tests do not see each other's versions.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from tagwatch.data import Question
from tagwatch.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Registry,
    RegistryError,
    VersionNotFoundError,
    flatten_params,
    nest_metrics,
    read_reference,
    split_metrics,
    write_reference,
)
from tests.support import fresh_postgres_database

if TYPE_CHECKING:
    from tagwatch.model import TagModel

REPO_ROOT = Path(__file__).resolve().parents[2]

# What the service or the monitor does in a process of its own: find the champion, load it and its facts.
OTHER_PROCESS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_registry import TinyModel
from tagwatch.registry import Registry

registry = Registry(sys.argv[2], Path(sys.argv[3]), sys.argv[4], model_loader=TinyModel.load)
model = registry.load_champion()
print(json.dumps({
    "version": model.version,
    "weights": model.weights.tolist(),
    "reference": len(registry.load_reference(model.version)),
    "window": registry.version_info(model.version).data_window,
}))
"""


class TinyModel:
    """Shaped like TagModel where the registry touches it: tags, version, save(dir), load(dir)."""

    def __init__(self, tags: list[str], weights: np.ndarray, params: dict[str, Any]) -> None:
        self.tags = tags
        self.weights = weights
        self.params = params
        self.version: str | None = None

    def save(self, directory: Path) -> None:
        np.savez(directory / "weights.npz", weights=self.weights)
        (directory / "model.json").write_text(json.dumps({"tags": self.tags, "params": self.params}))

    @classmethod
    def load(cls, directory: Path) -> TinyModel:
        meta = json.loads((directory / "model.json").read_text())
        with np.load(directory / "weights.npz") as npz:
            weights = npz["weights"]
        return cls(meta["tags"], weights, meta["params"])


class BrokenModel(TinyModel):
    def save(self, directory: Path) -> None:
        raise OSError("disk full")


@dataclass(frozen=True)
class Store:
    backend: str
    tracking_uri: str
    artifacts_dir: Path

    def registry(self, model_name: str) -> Registry:
        return Registry(self.tracking_uri, self.artifacts_dir, model_name, model_loader=TinyModel.load)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One MLflow store per backend for the whole module (PostgreSQL: a database made and dropped here)."""
    root = tmp_path_factory.mktemp(f"registry_{request.param}")
    if request.param == "sqlite":
        yield Store("sqlite", f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url"), "tagwatch_registry") as url:
        yield Store("postgres", url, root / "artifacts")


@pytest.fixture
def registry(store: Store) -> Registry:
    return store.registry(f"tags_{uuid.uuid4().hex[:8]}")


def _questions(n: int, *, start: datetime | None = None) -> list[Question]:
    start = start or datetime(2018, 4, 1, 12, 0, tzinfo=UTC)
    tags = [("python", "pandas"), ("javascript",), ("c#", ".net", "linq"), ("c++",)]
    return [
        Question(
            id=str(1000 + i),
            created_at=start + timedelta(minutes=7 * i),
            title=f"Question {i}, with a comma",
            body=f'<p>Body {i} "quoted"\nsecond line</p>',
            body_format="html",
            tags=tags[i % len(tags)],
            score=i - 2,
        )
        for i in range(n)
    ]


def _register(registry: Registry, seed: int = 0, **overrides: Any) -> tuple[TinyModel, str]:
    rng = np.random.default_rng(seed)
    model = TinyModel(["python", "c#", "c++", ".net"], rng.normal(size=(4, 6)), {"alpha": 0.1 * (seed + 1)})
    kwargs: dict[str, Any] = {
        "params": {"alpha": model.params["alpha"], "ngram_range": (1, 2), "vectorizer": {"min_df": 2}},
        "metrics": {
            "holdout_time": {
                "micro_f1": 0.5 + seed / 100,
                "n_questions": 120,
                "per_tag_f1": {"c#": 0.7, "c++": None},
            },
            "holdout_random": {"micro_f1": 0.6},
            "train_seconds": 12.5,
        },
        "data_window": {
            "since": "2018-04-01T12:00:00+00:00",
            "until": "2018-05-01T00:00:00+00:00",
            "n_questions": 300,
        },
        "reference": _questions(20),
        "holdout_ids": {"time": ["1", "2"], "random": ["3"]},
        "lineage": {"trigger": "manual", "parent_version": None},
    }
    kwargs.update(overrides)
    version = registry.register(model, **kwargs)
    return model, version


def test_register_two_versions_and_read_back_their_facts(registry: Registry) -> None:
    _, v1 = _register(registry, seed=0)
    _, v2 = _register(registry, seed=1, lineage={"trigger": "drift", "parent_version": v1})
    assert (v1, v2) == ("1", "2")

    info = registry.version_info(v2)
    assert info.version == "2"
    assert info.created_at.tzinfo is not None
    assert abs(info.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    # params come back exactly as given (JSON types: the tuple is a list), metrics nested again
    assert info.params == {"alpha": pytest.approx(0.2), "ngram_range": [1, 2], "vectorizer": {"min_df": 2}}
    assert info.metrics == {
        "holdout_time": {"micro_f1": pytest.approx(0.51), "n_questions": 120.0},
        "holdout_random": {"micro_f1": pytest.approx(0.6)},
        "train_seconds": 12.5,
    }
    assert info.per_tag == {"holdout_time": {"per_tag_f1": {"c#": 0.7, "c++": None}}}
    assert info.data_window == {
        "since": "2018-04-01T12:00:00+00:00",
        "until": "2018-05-01T00:00:00+00:00",
        "n_questions": 300,
    }
    assert info.tags == ["python", "c#", "c++", ".net"]
    assert info.lineage == {"trigger": "drift", "parent_version": "1"}
    assert info.aliases == []

    # The same facts are in MLflow itself, where its UI and search see them.
    client = registry._client
    run = client.get_run(info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.2", "ngram_range": "[1, 2]", "vectorizer.min_df": "2"}
    assert run.data.metrics["holdout_time.micro_f1"] == pytest.approx(0.51)
    assert not any("per_tag" in key for key in run.data.metrics)
    assert run.data.tags["tagwatch.lineage.trigger"] == "drift"
    assert run.data.tags["tagwatch.data_window.n_questions"] == "300"
    mv = client.get_model_version(registry.model_name, v2)
    assert json.loads(mv.tags["tagwatch.metrics"])["holdout_random"] == {"micro_f1": 0.6}
    assert mv.tags["tagwatch.n_tags"] == "4"

    # Artifacts live under artifacts_dir.
    assert Path(info.source.removeprefix("file://")).is_relative_to(registry.artifacts_dir)

    versions = registry.list_versions()
    assert [v.version for v in versions] == ["2", "1"]
    assert versions[1].lineage == {"trigger": "manual", "parent_version": None}


def test_load_model_returns_the_registered_state(registry: Registry) -> None:
    model, version = _register(registry, seed=3)
    assert model.version == version  # register tells the model its version

    loaded = registry.load_model(version)
    assert isinstance(loaded, TinyModel)
    assert loaded.version == version
    assert loaded.tags == model.tags
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert registry.load_model(int(version)).version == version

    with pytest.raises(VersionNotFoundError):
        registry.load_model("99")
    for bad in ("latest", "0", "1.0", "²"):
        with pytest.raises(ValueError, match="positive integer"):
            registry.load_model(bad)


def test_reference_sample_and_holdout_ids_round_trip(registry: Registry) -> None:
    reference = [
        *_questions(5),
        Question(
            id="h:0123456789abcdef",
            created_at=None,
            title="no date, no score",
            body="a,b\r\nc",
            body_format="text",
            tags=("sql",),
            score=None,
        ),
        Question(
            id="7",
            created_at=datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            title="Ünïcode — “quotes”",
            body="```py\nprint('x')\n```",
            body_format="markdown",
            tags=("python", "python-3.x"),
            score=0,
        ),
    ]
    _, version = _register(registry, reference=reference, holdout_ids={"time": ["7", "1001"], "random": []})
    assert registry.load_reference(version) == reference
    assert registry.holdout_ids(version) == {"time": ["7", "1001"], "random": []}

    _, no_holdouts = _register(registry, holdout_ids=None, lineage=None)
    assert registry.holdout_ids(no_holdouts) == {}
    assert registry.version_info(no_holdouts).lineage == {}


def test_reference_file_is_in_the_bundled_format(tmp_path: Path) -> None:
    path = tmp_path / "reference.csv.gz"
    questions = _questions(3)
    write_reference(questions, path)
    import pandas as pd

    frame = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    assert list(frame.columns) == [
        "id",
        "created_at",
        "title",
        "body",
        "tags",
        "score",
        "source",
        "body_format",
    ]
    assert frame.loc[0, "created_at"] == "2018-04-01T12:00:00Z"
    assert frame.loc[2, "tags"] == "c# .net linq"
    assert read_reference(path) == questions


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (Question("1", datetime(2020, 1, 1), "t", "b", "text", ("x",)), "timezone-aware"),
        (Question("1", None, "t", "b", "text", ("two words",)), "reads back as"),
        (Question("1", None, "t", "b", "text", ("Python",)), "reads back as"),
        (Question("1", None, "t", "b", "text", ()), "no tags"),
        (Question("not-an-id", None, "t", "b", "text", ("x",)), "bad id"),
    ],
)
def test_a_reference_that_would_not_read_back_unchanged_is_refused(
    tmp_path: Path, question: Question, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_reference([*_questions(2), question], tmp_path / "reference.csv.gz")


def test_aliases(registry: Registry) -> None:
    assert registry.champion_version() is None  # no registered model yet
    assert registry.get_alias(CHALLENGER) is None
    assert registry.load_champion() is None
    registry.delete_alias(CHALLENGER)  # deleting what is not there is fine

    _, v1 = _register(registry)
    _, v2 = _register(registry, seed=1)
    assert registry.champion_version() is None
    registry.set_alias(CHALLENGER, v2)
    assert registry.get_alias(CHALLENGER) == v2
    assert registry.version_info(v2).aliases == [CHALLENGER]
    registry.set_alias(CHALLENGER, v1)
    assert registry.get_alias(CHALLENGER) == v1
    registry.delete_alias(CHALLENGER)
    assert registry.get_alias(CHALLENGER) is None

    with pytest.raises(VersionNotFoundError):
        registry.set_alias(CHALLENGER, "42")
    with pytest.raises(ValueError, match="reserved"):
        registry.set_alias("latest", v1)


def test_promote_moves_champion_to_previous(registry: Registry) -> None:
    _, v1 = _register(registry)
    _, v2 = _register(registry, seed=1)
    _, v3 = _register(registry, seed=2)

    registry.promote(v1)
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == (v1, None)
    loaded = registry.load_champion()
    assert loaded is not None
    assert loaded.version == v1

    registry.set_alias(CHALLENGER, v2)
    registry.promote(v2)
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == (v2, v1)
    assert registry.get_alias(CHALLENGER) == v2  # other aliases stay where they were

    registry.promote(v2)  # already champion: nothing moves
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == (v2, v1)

    registry.promote(v3)
    assert (registry.champion_version(), registry.get_alias(PREVIOUS)) == (v3, v2)
    infos = {i.version: i.aliases for i in registry.list_versions()}
    assert infos == {v3: [CHAMPION], v2: [CHALLENGER, PREVIOUS], v1: []}

    with pytest.raises(VersionNotFoundError):
        registry.promote("17")
    assert registry.champion_version() == v3


def test_another_instance_sees_alias_changes(store: Store, registry: Registry) -> None:
    _, v1 = _register(registry)
    _, v2 = _register(registry, seed=1)
    other = store.registry(registry.model_name)
    assert other.champion_version() is None
    registry.promote(v1)
    assert other.champion_version() == v1
    registry.promote(v2)
    assert other.champion_version() == v2
    assert other.get_alias(PREVIOUS) == v1


def test_another_process_sees_the_champion_and_reads_its_artifacts(store: Store, registry: Registry) -> None:
    model, version = _register(registry, seed=5)
    registry.promote(version)
    args = [store.tracking_uri, str(store.artifacts_dir), registry.model_name]
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(Path(__file__).parent), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["version"] == version
    np.testing.assert_array_equal(np.array(seen["weights"]), model.weights)
    assert seen["reference"] == 20
    assert seen["window"]["n_questions"] == 300


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics": {"micro_f1": "high"}}, "must be a number"),
        ({"metrics": {"micro_f1": True}}, "must be a number"),
        ({"metrics": {"micro f1": 0.5}}, "not allowed"),
        ({"metrics": {"holdout": {"micro.f1": 0.5}}}, "not allowed"),
        ({"metrics": {"per_tag_f1": 0.5}}, "dict tag -> number"),
        ({"params": {"fn": object()}}, "JSON-serializable"),
        ({"data_window": {"since": object()}}, "JSON-serializable"),
        ({"holdout_ids": {"time": "12345"}}, "list of question ids"),
        ({"holdout_ids": {"time": [1, 2]}}, "must be strings"),
        ({"reference": [Question("1", datetime(2020, 1, 1), "t", "b", "text", ("x",))]}, "timezone-aware"),
    ],
)
def test_bad_input_fails_before_anything_is_logged(store: Store, overrides: dict[str, Any], message: str) -> None:
    registry = store.registry(f"bad_{uuid.uuid4().hex[:8]}")
    with pytest.raises(ValueError, match=message):
        _register(registry, **overrides)
    assert registry.list_versions() == []
    assert registry._client.get_experiment_by_name(registry.model_name) is None


def test_a_failing_save_logs_nothing(registry: Registry) -> None:
    model = BrokenModel(["a", "b"], np.zeros(2), {})
    with pytest.raises(OSError, match="disk full"):
        registry.register(model, params={}, metrics={}, data_window={}, reference=[])
    assert registry._client.get_experiment_by_name(registry.model_name) is None
    assert registry.list_versions() == []


def test_a_failure_while_logging_marks_the_run_failed_and_registers_nothing(registry: Registry) -> None:
    # A file where the experiment's artifact directory should be: the artifact copy fails mid-register.
    registry.artifacts_dir.mkdir(parents=True, exist_ok=True)
    (registry.artifacts_dir / registry.model_name).write_text("in the way")
    with pytest.raises(NotADirectoryError):
        _register(registry)
    client = registry._client
    experiment = client.get_experiment_by_name(registry.model_name)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert registry.list_versions() == []
    with pytest.raises(VersionNotFoundError):
        registry.version_info("1")


def test_flatten_params_stringifies_and_truncates() -> None:
    flat = flatten_params(
        {"a": 1, "b": {"c": True, "d": None}, "long": "x" * 7000, "empty": {}, "thresholds": {"c#": 0.5}}
    )
    assert flat == {
        "a": "1",
        "b.c": "true",
        "b.d": "null",
        "long": "x" * 6000,
        "empty": "{}",
        "thresholds": '{"c#": 0.5}',
    }
    with pytest.raises(ValueError, match="not allowed"):
        flatten_params({"a/b": 1})


def test_split_and_nest_metrics_are_inverse() -> None:
    metrics = {"t": {"f1": 0.5, "n": 3, "per_tag_f1": {"c#": 1, "x": None}}, "nan": float("nan")}
    flat, per_tag = split_metrics(metrics)
    assert (flat["t.f1"], flat["t.n"]) == (0.5, 3.0)
    assert math.isnan(flat["nan"])
    assert per_tag == {"t": {"per_tag_f1": {"c#": 1.0, "x": None}}}
    nested = nest_metrics(flat)
    assert nested["t"] == {"f1": 0.5, "n": 3.0}


def test_registry_rejects_a_bad_model_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model name"):
        Registry(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, "name with 'quotes'")


def test_artifacts_missing_give_a_clear_error(registry: Registry) -> None:
    _, version = _register(registry)
    source = Path(registry.version_info(version).source.removeprefix("file://"))
    (source.parent / "tagwatch" / "reference.csv.gz").unlink()
    with pytest.raises(RegistryError, match=r"reference\.csv\.gz is missing"):
        registry.load_reference(version)
    for item in source.iterdir():
        item.unlink()
    source.rmdir()
    with pytest.raises(RegistryError, match=r"model directory .* is missing"):
        registry.load_model(version)


def test_a_real_tag_model_round_trips(store: Store, small_model: TagModel, small_training_set: list[Question]) -> None:
    registry = Registry(store.tracking_uri, store.artifacts_dir, f"real_{uuid.uuid4().hex[:8]}")  # real loader
    version = registry.register(
        small_model,
        params=small_model.params,
        metrics={"holdout_random": {"micro_f1": 0.4}},
        data_window={"n_questions": len(small_training_set)},
        reference=small_training_set[:200],
    )
    registry.promote(version)
    loaded = registry.load_champion()
    assert loaded is not None
    assert type(loaded) is type(small_model)
    assert loaded.version == version
    assert loaded.tags == small_model.tags
    sample = small_training_set[:100]
    np.testing.assert_array_equal(loaded.predict_scores(sample), small_model.predict_scores(sample))
    assert loaded.predict(sample) == small_model.predict(sample)
    assert registry.version_info(version).params == json.loads(json.dumps(small_model.params))
    assert registry.load_reference(version) == small_training_set[:200]


# --- the journal of alias moves, check_artifacts, rollback ----------------------------------------------------


@dataclass(frozen=True)
class Move:
    alias: str
    from_version: str | None
    to_version: str | None
    trigger: str
    actor: str


class ListJournal:
    """A journal that keeps its records in a list (the real one, tagwatch.history.Journal, is tested there)."""

    def __init__(self, fail: bool = False) -> None:
        self.moves: list[Move] = []
        self.model_names: set[str] = set()
        self.fail = fail

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
        if self.fail:
            raise OSError("the request-log database is down")
        self.model_names.add(model_name)
        self.moves.append(Move(alias, from_version, to_version, trigger, actor))


def _journaled(store: Store, model_name: str, journal: ListJournal, actor: str = "cli:tester") -> Registry:
    return Registry(
        store.tracking_uri,
        store.artifacts_dir,
        model_name,
        model_loader=TinyModel.load,
        journal=journal,
        actor=actor,
    )


def test_the_journal_records_every_alias_move_with_trigger_and_actor(store: Store, registry: Registry) -> None:
    journal = ListJournal()
    journaled = _journaled(store, registry.model_name, journal)
    versions = [_register(journaled, seed=i)[1] for i in range(3)]
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
    journaled = _journaled(store, registry.model_name, journal)
    _, v1 = _register(journaled)
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
    journaled = _journaled(store, registry.model_name, ListJournal(fail=True))
    _, v1 = _register(journaled)
    with caplog.at_level("ERROR", logger="tagwatch.registry"):
        journaled.promote(v1, trigger="init", actor="cli:tester")
    assert journaled.champion_version() == v1
    [message] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"alias champion moved None -> {v1} (init, by cli:tester) but the move could not be recorded" in message


def test_check_artifacts_names_what_is_missing(registry: Registry) -> None:
    _, version = _register(registry)
    registry.check_artifacts(version)  # all there
    with pytest.raises(VersionNotFoundError):
        registry.check_artifacts("42")
    source = Path(registry.version_info(version).source.removeprefix("file://"))
    (source.parent / "tagwatch" / "lineage.json").unlink()
    with pytest.raises(RegistryError, match=r"artifacts missing: .*lineage\.json") as missing_meta:
        registry.check_artifacts(version)
    assert "model directory" not in str(missing_meta.value)
    for item in source.iterdir():
        item.unlink()
    with pytest.raises(RegistryError, match=r"the model files in .* \(the directory is empty\)"):
        registry.check_artifacts(version)
    source.rmdir()
    with pytest.raises(RegistryError, match=r"model directory .*, .*lineage\.json"):
        registry.check_artifacts(version)


def _three_promotions(registry: Registry) -> list[str]:
    versions = []
    for seed in range(3):
        _, version = _register(registry, seed=seed)
        registry.promote(version, trigger="drift: data", actor="monitor")
        versions.append(version)
    return versions


def test_rollback_to_restores_the_first_of_three_promotions(store: Store, registry: Registry) -> None:
    from retrain.promote import rollback

    journal = ListJournal()
    journaled = _journaled(store, registry.model_name, journal)
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
    journaled = _journaled(store, registry.model_name, journal)
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

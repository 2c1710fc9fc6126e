"""The registry client on real MLflow stores: registering versions, reading them back, aliases, other readers."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
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
)
from tests.tagwatch.registry.support import (
    BrokenModel,
    Store,
    TinyModel,
    make_questions,
    register_tiny,
)

if TYPE_CHECKING:
    from tagwatch.model import TagModel

REPO_ROOT = Path(__file__).resolve().parents[3]

# What the service or the monitor does in a process of its own: find the champion, load it and its facts.
OTHER_PROCESS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.tagwatch.registry.support import TinyModel
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


def test_register_two_versions_and_read_back_their_facts(registry: Registry) -> None:
    _, v1 = register_tiny(registry, seed=0)
    _, v2 = register_tiny(registry, seed=1, lineage={"trigger": "drift", "parent_version": v1})
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
    model, version = register_tiny(registry, seed=3)
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
        *make_questions(5),
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
    _, version = register_tiny(registry, reference=reference, holdout_ids={"time": ["7", "1001"], "random": []})
    assert registry.load_reference(version) == reference
    assert registry.holdout_ids(version) == {"time": ["7", "1001"], "random": []}

    _, no_holdouts = register_tiny(registry, holdout_ids=None, lineage=None)
    assert registry.holdout_ids(no_holdouts) == {}
    assert registry.version_info(no_holdouts).lineage == {}


def test_aliases(registry: Registry) -> None:
    assert registry.champion_version() is None  # no registered model yet
    assert registry.get_alias(CHALLENGER) is None
    assert registry.load_champion() is None
    registry.delete_alias(CHALLENGER)  # deleting what is not there is fine

    _, v1 = register_tiny(registry)
    _, v2 = register_tiny(registry, seed=1)
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
    _, v1 = register_tiny(registry)
    _, v2 = register_tiny(registry, seed=1)
    _, v3 = register_tiny(registry, seed=2)

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
    _, v1 = register_tiny(registry)
    _, v2 = register_tiny(registry, seed=1)
    other = store.registry(registry.model_name)
    assert other.champion_version() is None
    registry.promote(v1)
    assert other.champion_version() == v1
    registry.promote(v2)
    assert other.champion_version() == v2
    assert other.get_alias(PREVIOUS) == v1


def test_another_process_sees_the_champion_and_reads_its_artifacts(store: Store, registry: Registry) -> None:
    model, version = register_tiny(registry, seed=5)
    registry.promote(version)
    args = [store.tracking_uri, str(store.artifacts_dir), registry.model_name]
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(REPO_ROOT), *args],
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
        register_tiny(registry, **overrides)
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
        register_tiny(registry)
    client = registry._client
    experiment = client.get_experiment_by_name(registry.model_name)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert registry.list_versions() == []
    with pytest.raises(VersionNotFoundError):
        registry.version_info("1")


def test_registry_rejects_a_bad_model_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model name"):
        Registry(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, "name with 'quotes'")


def test_artifacts_missing_give_a_clear_error(registry: Registry) -> None:
    _, version = register_tiny(registry)
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
    # A copy: register() sets the version on the model it is given, and small_model is shared by the session.
    version = registry.register(
        copy.copy(small_model),
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

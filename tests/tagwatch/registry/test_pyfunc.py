"""The MLflow pyfunc flavour of a registered version: ``models:/<name>@champion`` loads with ``mlflow.pyfunc`` and
answers what the service answers, without unpickling anything of ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.registry import CHAMPION, ChampionResolver, pyfunc
from tagwatch.registry.artifacts import local_path
from tagwatch.settings import Settings
from tagwatch.text import TextInput


@pytest.fixture
def champion_uri(settings: Settings, registry_with_champion: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``models:/<name>@champion`` with MLflow pointed at the test's registry (as MLFLOW_TRACKING_URI would)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", settings.tracking_url)
    # MLflow refuses cloudpickled models when this is false: the flavour must load without one.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    return f"models:/{settings.model_name}@{CHAMPION}"


def test_pyfunc_champion_predicts_what_the_service_predicts(
    champion_uri: str, settings: Settings, small_training_set: list[Question]
) -> None:
    import mlflow.pyfunc

    questions = small_training_set[:60]
    loaded = mlflow.pyfunc.load_model(champion_uri)
    out = loaded.predict(pd.DataFrame({"title": [q.title for q in questions], "body": [q.body for q in questions]}))

    # The service's scorer: the champion as the API's MLflow-free resolver loads it, scored as /predict does.
    resolver = ChampionResolver.from_settings(settings)
    version = resolver.champion_version()
    assert version is not None
    served = resolver.load_model(version)
    expected = [served.predict([TextInput(q.title, q.body)])[0] for q in questions]
    assert list(out.columns) == ["tags"]
    assert [[(d["tag"], d["score"]) for d in row] for row in out["tags"]] == expected
    # Most questions get suggestions (one the model finds no tag for gets [] from both).
    assert sum(1 for row in expected if row) >= len(expected) // 2


def test_pyfunc_answers_its_input_example_and_an_empty_body(champion_uri: str) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(champion_uri)
    out = loaded.predict(pd.DataFrame({"title": ["pandas dataframe groupby sum", "x"], "body": ["", "<p>y</p>"]}))
    assert len(out) == 2
    assert all(isinstance(d["tag"], str) and 0.0 <= d["score"] <= 1.0 for row in out["tags"] for d in row)
    assert len(loaded.predict(pyfunc.input_example())) == 1


def test_the_flavour_has_a_signature_an_example_and_no_pickle(settings: Settings, registry_with_champion: Any) -> None:
    from mlflow.models import Model

    version = registry_with_champion.champion_version()
    model_dir = local_path(registry_with_champion.version_info(version).source)
    mlmodel = Model.load(str(model_dir))
    config = mlmodel.flavors["python_function"]
    assert Path(config["model_code_path"]).name == pyfunc.ENTRY_FILE
    assert "python_model" not in config  # no cloudpickled PythonModel instance
    assert config["artifacts"] == {pyfunc.ARTIFACT: {"path": "."}}  # the model's own files, not a copy
    assert not [p for p in model_dir.rglob("*") if p.suffix in {".pkl", ".pickle", ".cloudpickle"}]
    assert mlmodel.signature is not None
    assert mlmodel.signature.inputs.input_names() == ["title", "body"]
    assert mlmodel.signature.outputs.input_names() == ["tags"]
    assert mlmodel.saved_input_example_info is not None
    assert (model_dir / "input_example.json").is_file()
    assert (model_dir / "requirements.txt").read_text().startswith("tagwatch")
    # The layout the MLflow-free resolver reads is unchanged.
    assert TagModel.load(model_dir).tags == ChampionResolver.from_settings(settings).load_model(version).tags

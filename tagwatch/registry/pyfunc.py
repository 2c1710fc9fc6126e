"""The MLflow pyfunc flavour of a registered version: ``mlflow.pyfunc.load_model("models:/<name>@champion")`` works.

A version's ``model/`` directory holds the pickle-free model files (``tagwatch.model.persistence``) and, next to
them, an MLflow model written here: ``MLmodel`` (the ``python_function`` flavour, a signature, an input example),
the environment files, and a small models-from-code entry file (``tagwatch_pyfunc.py``) that imports
``TagwatchPyfunc`` and calls ``mlflow.models.set_model``. MLflow stores no pickle: it runs that entry file, and
``load_context`` reads the model files with ``TagModel.load``, as the service does. Loading therefore needs
``tagwatch`` installed (the entry file imports it; ``requirements.txt`` names it).

Input: a DataFrame with string columns ``title`` and ``body``. Output: a DataFrame with one column ``tags``, a list
of ``{"tag": str, "score": float}`` per question, best first, exactly what ``/predict`` answers.

The files are only added next to the model's own, so the MLflow-free ``ChampionResolver`` reads versions as before.
This module imports MLflow; import it only where MLflow is wanted (``staging`` does so lazily).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

with warnings.catch_warnings():
    # MLflow 3 warns about its own agent schemas' ``Any`` type hints when mlflow.pyfunc is first imported.
    warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning)
    import mlflow.pyfunc
    from mlflow.pyfunc.model import PythonModel

ENTRY_FILE = "tagwatch_pyfunc.py"
ENTRY_CODE = '''"""The MLflow models-from-code entry of a tagwatch model (from tagwatch.registry.pyfunc): no pickle."""

from mlflow.models import set_model

from tagwatch.registry.pyfunc import TagwatchPyfunc

set_model(TagwatchPyfunc())
'''
# The pyfunc artifact that names the model files: the MLflow model's own directory (nothing is copied).
ARTIFACT = "tagmodel"
INPUT_COLUMNS = ("title", "body")
OUTPUT_COLUMN = "tags"
# What MLflow's model files list (MLflow writes these files but never reads them itself).
MLFLOW_FILES = (
    "MLmodel",
    ENTRY_FILE,
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
)
_EXAMPLE = {
    "title": ["How do I merge two dictionaries in a single expression?"],
    "body": ["<p>I have two Python dictionaries and want one with the items of both.</p>"],
}


def signature() -> Any:
    """``title``, ``body`` (strings) -> ``tags`` (a list of ``{tag, score}`` per question)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Object, Property, Schema

    tag_score = Object([Property("tag", DataType.string), Property("score", DataType.double)])
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, name) for name in INPUT_COLUMNS]),
        outputs=Schema([ColSpec(Array(tag_score), OUTPUT_COLUMN)]),
    )


def input_example() -> pd.DataFrame:
    return pd.DataFrame(_EXAMPLE)


class TagwatchPyfunc(PythonModel):
    """A tagwatch ``TagModel`` as an MLflow ``PythonModel``: loaded from its files, scored as the service does."""

    def __init__(self) -> None:
        self.model: Any = None

    def load_context(self, context: Any) -> None:
        from tagwatch.model import TagModel

        self.model = TagModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from tagwatch.text import TextInput

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"input needs string columns {list(INPUT_COLUMNS)}; missing {missing}")
        items = [
            TextInput("" if title is None else str(title), "" if body is None else str(body))
            for title, body in zip(frame["title"].tolist(), frame["body"].tolist(), strict=True)
        ]
        results = self.model.predict(items) if items else []
        return pd.DataFrame({OUTPUT_COLUMN: [[{"tag": t, "score": s} for t, s in tags] for tags in results]})


def requirements() -> list[str]:
    """What loading needs: this tagwatch (the entry file imports it) and the MLflow it was written with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("tagwatch", "mlflow-skinny"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            out.append(dist)
    return out


def write_flavour(model_dir: Path, *, requirements: list[str]) -> None:
    """Add the MLflow model files (pyfunc flavour, signature, input example) to a saved model's directory."""
    from mlflow.models import Model

    clash = [name for name in MLFLOW_FILES if (model_dir / name).exists()]
    if clash:
        raise ValueError(f"{model_dir}: the model's own files clash with MLflow's: {clash}")
    with tempfile.TemporaryDirectory(prefix="tagwatch-pyfunc-") as tmp:
        entry = Path(tmp) / ENTRY_FILE
        entry.write_text(ENTRY_CODE, encoding="utf-8")
        out = Path(tmp) / "mlflow-model"
        mlflow.pyfunc.save_model(
            path=str(out),
            python_model=str(entry),
            signature=signature(),
            input_example=input_example(),
            pip_requirements=requirements,
        )
        mlmodel = Model.load(str(out))
        # The model files are the artifact, in place: ``load_context`` reads them from the MLflow model's directory.
        mlmodel.flavors["python_function"]["artifacts"] = {ARTIFACT: {"path": "."}}
        # MLflow records where the entry file was written from; it loads the copy next to MLmodel by its name.
        mlmodel.flavors["python_function"]["model_code_path"] = ENTRY_FILE
        mlmodel.save(str(out / "MLmodel"))
        for path in out.iterdir():
            shutil.move(str(path), model_dir / path.name)

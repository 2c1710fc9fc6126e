"""What ``Registry.register`` logs, checked and written to a staging directory before MLflow is touched.

Bad input or a failing ``model.save`` therefore leaves no half-logged run behind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagwatch.data import Question
from tagwatch.registry.artifacts import (
    DATA_WINDOW_FILE,
    GUARD_FILE,
    HOLDOUT_FILE,
    LINEAGE_FILE,
    META_DIR,
    MODEL_DIR,
    PARAMS_FILE,
    PER_TAG_FILE,
    REFERENCE_FILE,
    TAG_PREFIX,
    VOCABULARY_FILE,
    check_holdout_ids,
    write_reference,
)
from tagwatch.registry.codecs import (
    check_key_part,
    flatten_params,
    nest_metrics,
    roundtrip_json,
    split_metrics,
    tag_value,
    to_json,
)
from tagwatch.registry.entities import RegistryError, SavableModel


@dataclass(frozen=True)
class Checked:
    """A version's facts, checked and serialized: what goes into the files, the run and the version's tags."""

    vocabulary: list[str]
    flat_params: dict[str, str]
    exact_params: str
    flat_metrics: dict[str, float]
    per_tag: dict[str, Any]
    window: dict[str, Any]
    lineage: dict[str, Any]
    holdouts: dict[str, list[str]]

    def run_tags(self, model_name: str, *, n_reference: int, n_guard: int) -> dict[str, str]:
        return {
            "tagwatch.model_name": model_name,
            "tagwatch.n_tags": str(len(self.vocabulary)),
            "tagwatch.n_reference": str(n_reference),
            "tagwatch.n_guard": str(n_guard),
            **{f"tagwatch.data_window.{k}": tag_value(v) for k, v in self.window.items()},
            **{f"tagwatch.lineage.{k}": tag_value(v) for k, v in self.lineage.items()},
        }

    def version_tags(self, *, n_reference: int) -> dict[str, str]:
        return {
            f"{TAG_PREFIX}data_window": json.dumps(self.window, sort_keys=True),
            f"{TAG_PREFIX}lineage": json.dumps(self.lineage, sort_keys=True),
            f"{TAG_PREFIX}metrics": to_json(nest_metrics(self.flat_metrics), "metrics"),
            f"{TAG_PREFIX}n_tags": str(len(self.vocabulary)),
            f"{TAG_PREFIX}n_reference": str(n_reference),
        }

    def description(self) -> str:
        w = self.window
        return f"trained on {w.get('n_questions', '?')} questions ({w.get('since')} .. {w.get('until')})"


def check(
    model: SavableModel,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    data_window: Mapping[str, Any],
    holdout_ids: Mapping[str, Sequence[str]] | None,
    lineage: Mapping[str, Any] | None,
) -> Checked:
    """Check and serialize a version's facts; ``ValueError`` naming the first bad one."""
    vocabulary = list(model.tags)
    if not vocabulary or not all(isinstance(t, str) and t for t in vocabulary):
        raise ValueError("model.tags must be a non-empty list of tag names")
    flat_params = flatten_params(params)
    exact_params = to_json(dict(params), "params")
    flat_metrics, per_tag = split_metrics(metrics)
    window = roundtrip_json(dict(data_window), "data_window")
    lineage_dict = roundtrip_json(dict(lineage or {}), "lineage")
    for key in (*window, *lineage_dict):
        check_key_part(key, "data_window/lineage")
    holdouts = check_holdout_ids(holdout_ids or {})
    return Checked(vocabulary, flat_params, exact_params, flat_metrics, per_tag, window, lineage_dict, holdouts)


def stage(
    staging: Path,
    model: SavableModel,
    checked: Checked,
    *,
    reference: Sequence[Question],
    guard: Sequence[Question] | None,
) -> None:
    """Write the run's artifacts into ``staging``: the tagwatch files and the model directory."""
    meta = staging / META_DIR
    meta.mkdir()
    write_reference(reference, meta / REFERENCE_FILE)
    if guard:
        write_reference(guard, meta / GUARD_FILE)
    (meta / VOCABULARY_FILE).write_text(json.dumps(checked.vocabulary), encoding="utf-8")
    (meta / PARAMS_FILE).write_text(checked.exact_params, encoding="utf-8")
    (meta / DATA_WINDOW_FILE).write_text(json.dumps(checked.window, sort_keys=True), encoding="utf-8")
    (meta / LINEAGE_FILE).write_text(json.dumps(checked.lineage, sort_keys=True), encoding="utf-8")
    (meta / HOLDOUT_FILE).write_text(json.dumps(checked.holdouts), encoding="utf-8")
    if checked.per_tag:
        (meta / PER_TAG_FILE).write_text(json.dumps(checked.per_tag, sort_keys=True), encoding="utf-8")
    model_dir = staging / MODEL_DIR
    model_dir.mkdir()
    model.save(model_dir)
    if not any(model_dir.iterdir()):
        raise RegistryError(f"{type(model).__name__}.save wrote nothing to {model_dir}")
    from tagwatch.model import TagModel

    if isinstance(model, TagModel):
        # MLflow's pyfunc flavour next to the model's files (tagwatch.registry.pyfunc): no pickle, same layout.
        from tagwatch.registry import pyfunc

        pyfunc.write_flavour(model_dir, requirements=pyfunc.requirements())

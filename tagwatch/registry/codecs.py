"""What goes into MLflow, checked and flattened: key names, JSON values, nested params and metrics, version numbers.

Pure functions (no MLflow import): bad input fails here, before a run is created.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

# MLflow's limits (mlflow.utils.validation); checked here so bad input fails before a run is created.
MAX_PARAM_VALUE_CHARS = 6000
MAX_RUN_TAG_VALUE_CHARS = 8000
MAX_KEY_CHARS = 250

# Metric and param name parts: MLflow also allows spaces, colons and slashes, but a key is a path segment in
# the UI and in our own dotted flattening, so keep them plain. Dots are the nesting separator.
KEY_PART = re.compile(r"[A-Za-z0-9_\-]+")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.]*")
_VERSION = re.compile(r"[0-9]+")
# Metrics under a key with this prefix are per-tag dicts: logged as one JSON artifact, not as MLflow metrics
# (hundreds of tags would be hundreds of metrics, and tag names like "c#" are not valid metric names).
PER_TAG_PREFIX = "per_tag"


def check_key_part(part: object, what: str) -> str:
    if not isinstance(part, str) or not KEY_PART.fullmatch(part):
        raise ValueError(
            f"{what} name part {part!r} is not allowed: use letters, digits, '_' and '-' (dots separate nesting levels)"
        )
    return part


def _check_key(key: str, what: str) -> str:
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"{what} name {key[:60]!r}... is longer than MLflow's {MAX_KEY_CHARS} characters")
    return key


def json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    # numpy scalars and arrays, without importing numpy here
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: object, what: str) -> str:
    try:
        return json.dumps(value, default=json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


def roundtrip_json(value: object, what: str) -> Any:
    return json.loads(to_json(value, what))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow params: dotted keys, JSON-ish string values cut to MLflow's length limit.

    A nested dict whose keys are not all plain names (say, a threshold per tag, "c#": 0.3) becomes one param
    holding its JSON; the exact params are kept in an artifact anyway.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{check_key_part(key, 'param')}"
        if isinstance(value, Mapping) and value and all(isinstance(k, str) and KEY_PART.fullmatch(k) for k in value):
            flat.update(flatten_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else to_json(value, f"param {name!r}")
        # The exact value is kept in the params.json artifact; the MLflow param is for the UI and search.
        flat[_check_key(name, "param")] = text[:MAX_PARAM_VALUE_CHARS]
    return flat


def split_metrics(metrics: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Nested metrics -> (flat MLflow metrics with dotted keys, the per-tag dicts nested as given).

    Leaves must be numbers (NaN allowed, bool and None not); a dict under a key starting with ``per_tag`` maps
    tag -> number or None and is kept out of the MLflow metrics.
    """
    flat: dict[str, float] = {}
    per_tag: dict[str, Any] = {}
    for key, value in metrics.items():
        check_key_part(key, "metric")
        name = f"{prefix}{key}"
        if key.startswith(PER_TAG_PREFIX):
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"metric {name!r}: a per-tag metric must be a dict tag -> number, got {type(value).__name__}"
                )
            per_tag[key] = {str(tag): _per_tag_value(v, f"{name}[{tag!r}]") for tag, v in value.items()}
        elif isinstance(value, Mapping):
            sub_flat, sub_per_tag = split_metrics(value, f"{name}.")
            flat.update(sub_flat)
            if sub_per_tag:
                per_tag[key] = sub_per_tag
        else:
            flat[_check_key(name, "metric")] = _metric_value(value, name)
    return flat, per_tag


def _metric_value(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}")
    return float(value)


def _per_tag_value(value: object, name: str) -> float | None:
    return None if value is None else _metric_value(value, name)


def nest_metrics(flat: Mapping[str, float]) -> dict[str, Any]:
    """Dotted metric keys back into nested dicts (the inverse of the flattening in ``split_metrics``)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def tag_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=json_default)
    return text[:MAX_RUN_TAG_VALUE_CHARS]


def normalize_version(version: str | int) -> str:
    text = str(version).strip()
    if not _VERSION.fullmatch(text) or int(text) < 1:
        raise ValueError(f"a model version is a positive integer, got {version!r}")
    return str(int(text))

"""Checking and flattening what goes into MLflow."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from tagwatch.registry import (
    flatten_params,
    nest_metrics,
    split_metrics,
)

if TYPE_CHECKING:
    pass


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

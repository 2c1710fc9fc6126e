"""Preparing one side: its inputs checked, and the model it was prepared for known by identity."""

from __future__ import annotations

import copy
import gc

import numpy as np
import pytest

from monitor.drift.prepare import Prepared, model_key_of
from monitor.drift.types import Baseline, DriftInput
from tagwatch.data import Question
from tagwatch.model import TagModel
from tests.monitor.drift.support import run, window


def test_bad_inputs_are_rejected(
    reference: Prepared, stable_pool: list[Question], small_model: TagModel, baseline: Baseline
) -> None:
    questions = window(stable_pool, 23, 30)
    n_tags = len(small_model.tags)
    with pytest.raises(ValueError, match="shape"):
        run(reference, DriftInput(questions, scores=np.zeros((30, n_tags + 1))), small_model, baseline)
    with pytest.raises(ValueError, match="probabilities"):
        run(reference, DriftInput(questions, scores=np.full((30, n_tags), 2.0)), small_model, baseline)
    with pytest.raises(ValueError, match="does not know"):
        run(reference, DriftInput(questions, predicted=[[("no-such-tag", 0.9)]] * 30), small_model, baseline)
    with pytest.raises(ValueError, match="tag sets for"):
        run(reference, DriftInput(questions, [("python",)]), small_model, baseline)
    with pytest.raises(ValueError, match="empty tag set"):
        run(reference, DriftInput(questions, [()] * 30), small_model, baseline)
    with pytest.raises(ValueError, match="tuple of tag names"):
        run(reference, DriftInput(questions, ["python"] * 30), small_model, baseline)  # type: ignore[list-item]


def test_the_model_of_a_side_is_known_by_the_object_not_its_address(small_model: TagModel) -> None:
    assert model_key_of(small_model) == model_key_of(small_model)
    other = copy.copy(small_model)  # the same weights, another (unregistered) model object
    assert model_key_of(other) != model_key_of(small_model)
    freed_key, freed_address = model_key_of(other), id(other)
    del other
    gc.collect()
    # Models made now may take the freed model's address: none of them is taken for it.
    for _ in range(200):
        new = copy.copy(small_model)
        assert model_key_of(new) != freed_key
        if id(new) == freed_address:
            break
    # A registered model is known by its version: a copy loaded again is the same model.
    first, again = copy.copy(small_model), copy.copy(small_model)
    first.version = again.version = "7"
    assert model_key_of(first) == model_key_of(again)

"""The drift run's parameters: their checks, and the thresholds built from the settings alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.drift.types import Baseline, Thresholds
from tagwatch.settings import Settings
from tests.monitor.drift.support import THRESHOLDS


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="text_auc"):
        replace(THRESHOLDS, text_auc=0.4)
    with pytest.raises(ValueError, match="min_feedback"):
        replace(THRESHOLDS, min_feedback=0)
    with pytest.raises(ValueError, match="micro_f1"):
        Baseline(micro_f1=1.5, samples_jaccard=0.5)
    with pytest.raises(ValueError, match="lack"):
        Baseline.from_metrics({"micro_f1": 0.5})


def test_thresholds_have_their_defaults_in_the_settings_alone() -> None:
    with pytest.raises(TypeError):
        Thresholds()  # type: ignore[call-arg]
    fields = Settings.model_fields
    defaults = Thresholds.from_settings(Settings.model_construct())
    assert defaults.text_auc == fields["drift_text_auc"].default
    assert defaults.f1_drop == fields["drift_f1_drop"].default
    assert defaults.emerging_share == fields["drift_emerging_share"].default
    assert defaults.importance_drop == fields["drift_importance_drop"].default
    assert defaults.min_current == fields["drift_min_current"].default
    assert defaults.min_feedback == fields["drift_min_feedback"].default
    chosen = Thresholds.from_settings(Settings(drift_text_auc=0.7, drift_min_feedback=50))
    assert (chosen.text_auc, chosen.min_feedback) == (0.7, 50)
    assert replace(chosen, text_auc=THRESHOLDS.text_auc, min_feedback=THRESHOLDS.min_feedback) == THRESHOLDS

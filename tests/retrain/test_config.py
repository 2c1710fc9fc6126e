"""RetrainConfig: its defaults are the settings' defaults, and from_settings carries every setting over."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from retrain.config import RetrainConfig
from tagwatch.settings import Settings

# RetrainConfig field -> the setting it comes from.
SETTINGS = {
    "window": "retrain_window",
    "min_labelled": "retrain_min_labelled",
    "holdout_fraction": "retrain_holdout_fraction",
    "max_holdout": "retrain_max_holdout",
    "reference_ratio": "retrain_reference_ratio",
    "reference_size": "retrain_reference_size",
    "min_improvement": "promotion_min_improvement",
    "max_tag_regression": "promotion_max_tag_regression",
    "guard_tolerance": "promotion_guard_tolerance",
    "guard_max_tag_drop": "promotion_guard_max_tag_drop",
    "confident_score": "feedback_confident_score",
    "suspect_contradiction": "feedback_suspect_contradiction",
}


def test_the_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    assert RetrainConfig() == RetrainConfig.from_settings(Settings(home=tmp_path))
    for name, setting in SETTINGS.items():
        assert getattr(RetrainConfig(), name) == Settings.model_fields[setting].default, name


def test_from_settings_takes_every_setting(tmp_path: Path) -> None:
    changed = Settings(
        home=tmp_path,
        retrain_window=900,
        retrain_min_labelled=120,
        retrain_holdout_fraction=0.3,
        retrain_max_holdout=None,
        retrain_reference_ratio=0.25,
        retrain_reference_size=400,
        promotion_min_improvement=0.02,
        promotion_max_tag_regression=0.2,
        promotion_guard_tolerance=None,
        promotion_guard_max_tag_drop=0.3,
        feedback_confident_score=0.8,
        feedback_suspect_contradiction=None,
    )
    config = RetrainConfig.from_settings(changed)
    for name, setting in SETTINGS.items():
        assert getattr(config, name) == getattr(changed, setting), name
    # The tuning constants no setting exposes keep their defaults.
    constants = {f.name for f in fields(RetrainConfig)} - set(SETTINGS)
    assert constants == {
        "min_holdout",
        "frequent_tag_support",
        "suspect_min_confident",
        "stable_share_ratio",
        "suspect_margin",
    }
    for name in constants:
        assert getattr(config, name) == getattr(RetrainConfig(), name)

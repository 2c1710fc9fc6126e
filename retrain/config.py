"""What a retrain may use and what a challenger must show: ``RetrainConfig``, built from the settings.

The defaults of the settable fields are the ``Settings`` defaults (``TAGWATCH_RETRAIN_*``, ``TAGWATCH_PROMOTION_*``,
``TAGWATCH_FEEDBACK_*``), read from the settings class, so they are written in one place. The others are tuning
constants no setting exposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from tagwatch.settings import Settings

T = TypeVar("T")


def _default(name: str, kind: type[T]) -> T:
    """The default of the ``Settings`` field ``name``, a ``kind``."""
    value: object = Settings.model_fields[name].default
    if not isinstance(value, kind):
        raise TypeError(f"Settings.{name} defaults to {value!r}, not a {kind.__name__}")
    return value


def _optional(name: str, kind: type[T]) -> T | None:
    """The default of the optional ``Settings`` field ``name``: a ``kind`` or None."""
    value: object = Settings.model_fields[name].default
    return None if value is None else _default(name, kind)


@dataclass(frozen=True)
class RetrainConfig:
    # Labelled questions the retrain uses at the most (the newest), and at the least.
    window: int = _default("retrain_window", int)
    min_labelled: int = _default("retrain_min_labelled", int)
    # The newest share of them is the hold-out the challenger never sees (at least ``min_holdout`` questions, at
    # most ``max_holdout``: right after a shift the newest questions are the few that show it, and the challenger
    # must train on most of them).
    holdout_fraction: float = _default("retrain_holdout_fraction", float)
    min_holdout: int = 100
    max_holdout: int | None = _optional("retrain_max_holdout", int)
    # Part of the champion's reference questions mixed into the challenger's training data, relative to the number
    # of recent questions: keeps what still holds from the old distribution.
    reference_ratio: float = _default("retrain_reference_ratio", float)
    # The promoted model's reference for the drift monitor: the newest questions of its data window (the tail of its
    # training part and the hold-out), at most this many. More than the hold-out alone, which is capped to keep
    # training data, and more than the monitor's minimum reference size.
    reference_size: int = _default("retrain_reference_size", int)
    # Promotion: micro-F1 must rise by this much, and no frequent tag may lose more F1 than ``max_tag_regression``.
    min_improvement: float = _default("promotion_min_improvement", float)
    max_tag_regression: float = _default("promotion_max_tag_regression", float)
    frequent_tag_support: int = 20
    # The trusted guard set: the challenger's micro-F1 on it may fall at most ``guard_tolerance`` below the
    # champion's, and, when ``guard_max_tag_drop`` is set, no tag with ``frequent_tag_support`` guard questions may
    # lose more than that F1. Legitimate drift moves the newest data away from the guard set, so these are looser than
    # the recent hold-out's bounds: on the chronological backtest (2018 -> 2024) the legitimate promotions lost 0.038,
    # 0.040, 0.046 and 0.096 micro-F1 on the guard set step by step, and one 2022 challenger 0.35 F1 on its python
    # questions (so the per-tag bound is off by default). The first line against poisoned labels is
    # ``feedback_disagreement``; this one catches what gets past it.
    guard_tolerance: float | None = _optional("promotion_guard_tolerance", float)
    guard_max_tag_drop: float | None = _optional("promotion_guard_max_tag_drop", float)
    # Feedback against the champion's confident predictions (score >= ``confident_score``): a tag is suspect when it
    # had at least ``suspect_min_confident`` of them in the feedback, its share of confident predictions did not
    # drift (within a factor ``stable_share_ratio`` of its share on the guard set), and the feedback contradicts them
    # at least ``suspect_contradiction`` of the time and ``suspect_margin`` more often than the guard set's labels do.
    # Any suspect tag holds the retrain (None: the check is off).
    confident_score: float = _default("feedback_confident_score", float)
    suspect_min_confident: int = 10
    stable_share_ratio: float = 2.0
    suspect_contradiction: float | None = _optional("feedback_suspect_contradiction", float)
    suspect_margin: float = 0.3

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrainConfig:
        """The configuration ``settings`` give (the tuning constants keep their defaults)."""
        return cls(
            window=settings.retrain_window,
            min_labelled=settings.retrain_min_labelled,
            holdout_fraction=settings.retrain_holdout_fraction,
            max_holdout=settings.retrain_max_holdout,
            reference_ratio=settings.retrain_reference_ratio,
            reference_size=settings.retrain_reference_size,
            min_improvement=settings.promotion_min_improvement,
            max_tag_regression=settings.promotion_max_tag_regression,
            guard_tolerance=settings.promotion_guard_tolerance,
            guard_max_tag_drop=settings.promotion_guard_max_tag_drop,
            confident_score=settings.feedback_confident_score,
            suspect_contradiction=settings.feedback_suspect_contradiction,
        )

"""The drift run's vocabulary: its parameters (``Thresholds``, ``Baseline``), one side's input (``DriftInput``) and its
result (``Signal``, ``KindResult``, ``DriftResult``, with the JSON the drift_runs row and ``drift-check --json`` hold).

Plain data: nothing here computes a statistic or runs Evidently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tagwatch.text import HasText

if TYPE_CHECKING:
    from tagwatch.settings import Settings

# The three kinds of drift a run measures, in the order every table, gauge and row lists them.
KINDS: tuple[str, ...] = ("data", "concept", "feature")
# The item standing for "every tag outside the model's vocabulary" (label shifts) or "every other tag" (report).
OTHER = "(other)"
# The prediction column of a question the model suggested no tag for (its best score below the minimum top score).
NO_TAG = "(no tag)"
# The domain classifier needs both classes in its test half: below this many rows a side it is not run.
MIN_TEXT_ROWS = 20


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Thresholds and minimum sample sizes of the per-window detection (defaults measured: bench/drift.py).

    The six that can be set (``TAGWATCH_DRIFT_*``) have their defaults in ``Settings`` alone: build with
    ``from_settings``. The others are the detector's own constants, written here once.
    """

    # data drift
    text_auc: float  # Settings.drift_text_auc
    min_current: int  # Settings.drift_min_current: current questions for the data kind (and the feature values)
    min_reference: int = 300
    # Questions per side the model and Evidently work on (see Prepared): the text AUC's noise is +-0.015 at
    # 1,500 rows a side, and the model's transform and the domain classifier cost time per row.
    max_rows: int = 1_500
    text_chars: int = 2_000  # characters of each question the domain classifier sees
    descriptor_wasserstein: float = 0.2  # Evidently's normed Wasserstein distance (reason only)
    prediction_js: float = 0.3  # JS distance (base 2) of the predicted-tag distributions (reason only)
    expected_f1_drop: float = 0.05  # label-free expected micro-F1 below the reference's (reason only)
    # concept drift
    min_feedback: int  # Settings.drift_min_feedback
    # micro-F1 below the champion's hold-out micro-F1 by at least this, and by more than shift_z standard
    # errors of the window's micro-F1
    f1_drop: float  # Settings.drift_f1_drop
    label_shift_share: float = 0.1  # share of tags whose question rate changed significantly
    emerging_share: float  # Settings.drift_emerging_share: share of labelled questions with an emerging tag
    emerging_p_value: float = 1e-4  # one-sided exact test of a tag's rate, current vs reference
    emerging_min_count: int = 3
    # feature drift
    min_feature_feedback: int = 200
    top_features: int = 20  # per tag: the champion's features the quick model is compared on
    min_tag_positives: int = 20  # per side, for a tag to take part in the importance comparison
    # Settings.drift_importance_drop: largest per-tag drop of the cosine agreement with the champion
    importance_drop: float
    feature_shift_share: float = 0.05  # share of the champion's important features whose rate changed
    # |z| of the two-proportion z-tests behind the "share changed significantly" signals (p < 0.001)
    shift_z: float = 3.29

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The thresholds the settings name (``TAGWATCH_DRIFT_*``), the detector's constants for the rest."""
        return cls(
            text_auc=settings.drift_text_auc,
            f1_drop=settings.drift_f1_drop,
            emerging_share=settings.drift_emerging_share,
            importance_drop=settings.drift_importance_drop,
            min_current=settings.drift_min_current,
            min_feedback=settings.drift_min_feedback,
        )

    def __post_init__(self) -> None:
        if not 0.5 <= self.text_auc < 1.0:
            raise ValueError(f"Thresholds.text_auc must be in [0.5, 1): got {self.text_auc!r}")
        for name in (
            "descriptor_wasserstein",
            "prediction_js",
            "expected_f1_drop",
            "f1_drop",
            "label_shift_share",
            "emerging_share",
            "emerging_p_value",
            "feature_shift_share",
        ):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"Thresholds.{name} must be in (0, 1]: got {getattr(self, name)!r}")
        if not 0.0 < self.importance_drop <= 2.0:
            raise ValueError(f"Thresholds.importance_drop must be in (0, 2]: got {self.importance_drop!r}")
        for name in (
            "min_current",
            "min_reference",
            "min_feedback",
            "min_feature_feedback",
            "emerging_min_count",
            "top_features",
            "min_tag_positives",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Thresholds.{name} must be >= 1: got {getattr(self, name)!r}")
        if self.max_rows < MIN_TEXT_ROWS or self.text_chars < 100 or self.shift_z <= 0:
            raise ValueError(f"Thresholds: max_rows must be >= {MIN_TEXT_ROWS}, text_chars >= 100, shift_z > 0")


@dataclass(frozen=True)
class Baseline:
    """The champion's scores in distribution: ``evaluate`` on its random hold-out."""

    micro_f1: float
    samples_jaccard: float
    n_questions: int | None = None
    # Expected micro-F1 of the calibrated scores on the hold-out (``label_free_estimate``). When given, the
    # label-free estimate of a window is compared with it instead of with the estimate on the reference.
    expected_micro_f1: float | None = None

    def __post_init__(self) -> None:
        for name in ("micro_f1", "samples_jaccard", "expected_micro_f1"):
            value = getattr(self, name)
            if value is None and name == "expected_micro_f1":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"Baseline.{name} must be a number in [0, 1]: got {value!r}")

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> Baseline:
        """From ``evaluate``'s dict on the random hold-out (micro_f1, samples_jaccard, n_questions)."""
        missing = [k for k in ("micro_f1", "samples_jaccard") if k not in metrics]
        if missing:
            raise ValueError(f"hold-out metrics lack {missing}: got keys {sorted(metrics)}")
        expected = metrics.get("expected_micro_f1")
        n = metrics.get("n_questions")
        return cls(
            micro_f1=float(metrics["micro_f1"]),
            samples_jaccard=float(metrics["samples_jaccard"]),
            n_questions=int(n) if n is not None else None,
            expected_micro_f1=float(expected) if expected is not None else None,
        )


@dataclass
class DriftInput:
    """One side: questions, their true tags where known, and the model's output where it was logged.

    ``true_tags`` is per question (``None`` for a request without feedback), or ``None`` when none has any.
    ``predicted`` (per question, (tag, score) as ``TagModel.decide`` returns) and ``scores`` (calibrated,
    n x len(model.tags), columns in ``model.tags`` order) are computed with the model when missing.
    """

    questions: Sequence[HasText]
    true_tags: Sequence[tuple[str, ...] | None] | None = None
    predicted: Sequence[Sequence[tuple[str, float]]] | None = None
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.questions)


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class Signal:
    """One measured quantity; ``deciding`` signals can make their kind detected, the others add reasons."""

    name: str
    value: float | None
    threshold: float
    sample_size: int
    enough_data: bool
    deciding: bool
    label: str

    @property
    def exceeded(self) -> bool:
        return self.value is not None and self.value > self.threshold

    @property
    def detected(self) -> bool:
        return self.deciding and self.enough_data and self.exceeded

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _num(self.value),
            "threshold": self.threshold,
            "exceeded": self.exceeded,
            "deciding": self.deciding,
            "enough_data": self.enough_data,
            "sample_size": self.sample_size,
        }


@dataclass
class KindResult:
    kind: str  # data | concept | feature
    score: float | None  # None: not computable on this window (e.g. no feedback at all)
    threshold: float
    detected: bool
    sample_size: int
    enough_data: bool
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": _num(self.score),
            "threshold": self.threshold,
            "detected": self.detected,
            "sample_size": self.sample_size,
            "enough_data": self.enough_data,
            "reasons": list(self.reasons),
            "details": _jsonable(self.details),
        }


@dataclass
class DriftResult:
    data: KindResult
    concept: KindResult
    feature: KindResult
    label_free: dict[str, Any]
    characteristic_words: dict[str, list[str]]  # {"reference": [...], "current": [...]}
    emerging_tags: list[tuple[str, int]]  # (tag, questions in the window), most frequent first
    sizes: dict[str, int]
    thresholds: Thresholds
    model_version: str | None
    duration_seconds: float
    # The Evidently snapshot of the run (None when the window was too small for it): report.write_report.
    snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def kinds(self) -> dict[str, KindResult]:
        return {"data": self.data, "concept": self.concept, "feature": self.feature}

    @property
    def detected_kinds(self) -> list[str]:
        return [k for k, r in self.kinds.items() if r.detected]

    # The numbers the monitor's gauges show, read where the kinds put them (None: not measured on this window).
    @property
    def feedback_micro_f1(self) -> float | None:
        """Micro-F1 on the window's questions with feedback."""
        return _finite((self.concept.details.get("observed") or {}).get("micro_f1"))

    @property
    def emerging_share(self) -> float | None:
        """Share of the window's questions with feedback that carry an emerging tag."""
        return _finite(((self.concept.details.get("signals") or {}).get("emerging_share") or {}).get("value"))

    @property
    def estimated_micro_f1(self) -> float | None:
        """The label-free estimate of micro-F1 on the window."""
        return _finite((self.label_free.get("current") or {}).get("micro_f1"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, stable keys: the drift-runs row and ``drift-check --json`` are built from it."""
        return {
            "model_version": self.model_version,
            "sizes": dict(self.sizes),
            "kinds": {k: r.to_dict() for k, r in self.kinds.items()},
            "detected": self.detected_kinds,
            "label_free": _jsonable(self.label_free),
            "characteristic_words": {k: list(v) for k, v in self.characteristic_words.items()},
            "emerging_tags": [{"tag": t, "count": c} for t, c in self.emerging_tags],
            "thresholds": asdict(self.thresholds),
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass
class TextDrift:
    """What the Evidently report measured on the two uniform samples (``monitor.drift.evidently``)."""

    auc: float  # ROC AUC of the domain classifier telling the sides' text apart
    words: dict[str, list[str]]  # its characteristic words: {"reference": [...], "current": [...]}
    descriptors: dict[str, float]  # normed Wasserstein distance of each descriptor (length, code_share, oov_share)
    descriptor_means: dict[str, dict[str, float]]  # descriptor -> {"reference": mean, "current": mean}
    prediction_top_js: float  # JS distance of the top-predicted-tag column
    rows_used: dict[str, int]  # {"reference": n, "current": n}
    snapshot: Any = field(repr=False, compare=False)  # Evidently's snapshot, for the HTML report


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _num(float(value))
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"not JSON-able in a drift result: {type(value).__name__}")

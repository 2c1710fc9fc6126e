"""Drift detection for one window of requests against the champion's reference: data, concept, feature drift.

``detect_drift`` is the pure core of the monitor: it reads and writes nothing. The job hands it the reference,
the current window (requests, with feedback where it arrived), the champion and its hold-out scores, and gets a
``DriftResult``. Evidently (7 s to import) is imported inside the functions that use it. ``prepare`` does the
per-side work (model scores, cleaned text, features) so that the job can prepare the reference once per champion.

The reference should be labelled questions of the training period that the model did not train on (e.g. its
random hold-out): the model's scores, predictions and vocabulary are optimistic on its own training questions,
which would show up as prediction drift, a label-free "drop" and unknown words on every window.

What each kind measures and what decides it (every number is also in ``details``):

* data: Evidently's text drift, a domain classifier (TF-IDF + linear model) telling reference from current
  text, scored by ROC AUC (0.5: indistinguishable). The AUC alone decides: ``score`` is the AUC, compared with
  ``Thresholds.text_auc``. Descriptor drift (length, code share, share of words unknown to the model),
  prediction drift (predicted-tag distribution) and the label-free estimate add reasons only: they follow from
  the same shift and are noisier, and one deciding number keeps ``detected == score > threshold``.
* concept (questions with feedback only): the text->tag relation can break in independent ways, each with its own
  threshold: micro-F1 below the champion's hold-out micro-F1; true-tag (label) drift, the share of tags whose
  question rate changed significantly; the share of questions carrying an emerging tag (one the model cannot
  predict, far more frequent than in the reference). ``score`` is the severity ``max(value / threshold)`` of
  these signals, so its ``threshold`` is 1.0.
* feature: whether what predicts a tag changed. Per tag, a quick model fitted on the labelled window (class
  centroid difference) is compared with the champion's weights on the champion's top features (cosine), against
  the same comparison on an equally large reference sample; and the share of the champion's important features
  whose presence rate changed significantly. Severity as for concept.

The label-free estimate (``label_free``) is CBPE-like, for multi-label: with calibrated scores, a predicted tag
is right with probability equal to its score and a tag not predicted is a miss with probability equal to its
score, so expected precision, recall and micro-F1 follow from the scores alone, before feedback arrives.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from tagwatch.scoring import expected_micro_f1, micro_prf, samples_jaccard
from tagwatch.text import HasText, clean_body, clean_title, tokenize

if TYPE_CHECKING:
    import pandas as pd

    from tagwatch.model import TagModel

KINDS = ("data", "concept", "feature")
# Bounded label set of the Evidently report's prediction column: the most predicted tags, the rest as "other".
REPORT_TOP_TAGS = 15
OTHER = "(other)"
# The domain classifier needs both classes in its test half: below this many rows a side it is not run.
MIN_TEXT_ROWS = 20


# --- parameters and inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Thresholds and minimum sample sizes of the per-window detection (defaults measured: bench/drift.py)."""

    # data drift
    text_auc: float = 0.6
    min_current: int = 300  # current questions for the data kind (and the feature values)
    min_reference: int = 300
    # Questions per side the model and Evidently work on (see Prepared): the text AUC's noise is +-0.015 at
    # 1,500 rows a side, and the model's transform and the domain classifier cost time per row.
    max_rows: int = 1_500
    text_chars: int = 2_000  # characters of each question the domain classifier sees
    descriptor_wasserstein: float = 0.2  # Evidently's normed Wasserstein distance (reason only)
    prediction_js: float = 0.3  # JS distance (base 2) of the predicted-tag distributions (reason only)
    expected_f1_drop: float = 0.05  # label-free expected micro-F1 below the reference's (reason only)
    # concept drift
    min_feedback: int = 100
    # micro-F1 below the champion's hold-out micro-F1 by at least this, and by more than shift_z standard
    # errors of the window's micro-F1
    f1_drop: float = 0.08
    label_shift_share: float = 0.1  # share of tags whose question rate changed significantly
    emerging_share: float = 0.05  # share of labelled questions with an emerging tag
    emerging_p_value: float = 1e-4  # one-sided exact test of a tag's rate, current vs reference
    emerging_min_count: int = 3
    # feature drift
    min_feature_feedback: int = 200
    top_features: int = 20  # per tag: the champion's features the quick model is compared on
    min_tag_positives: int = 20  # per side, for a tag to take part in the importance comparison
    importance_drop: float = 0.6  # largest per-tag drop of the cosine agreement with the champion
    feature_shift_share: float = 0.05  # share of the champion's important features whose rate changed
    # |z| of the two-proportion z-tests behind the "share changed significantly" signals (p < 0.001)
    shift_z: float = 3.29

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


# --- pure statistics -------------------------------------------------------------------------------------


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count or probability vectors."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"distributions of different shapes: {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("empty distribution")
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def rate_shifts(
    count_a: np.ndarray, n_a: int, count_b: np.ndarray, n_b: int, *, z: float, min_expected: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two-proportion z-tests of per-item rates (count / n) between samples a and b.

    Returns (z scores, eligible): an item is tested when the pooled sample expects at least ``min_expected``
    occurrences and non-occurrences (the normal approximation holds). ``z`` is only validated here; callers count
    ``abs(z_scores) > z`` among the eligible items.
    """
    if n_a <= 0 or n_b <= 0 or z <= 0:
        raise ValueError("rate_shifts needs two non-empty samples and z > 0")
    a = np.asarray(count_a, dtype=float)
    b = np.asarray(count_b, dtype=float)
    pooled = (a + b) / (n_a + n_b)
    total = n_a + n_b
    eligible = (pooled * total >= min_expected) & ((1 - pooled) * total >= min_expected)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    scores = np.zeros_like(pooled)
    ok = eligible & (se > 0)
    scores[ok] = (b[ok] / n_b - a[ok] / n_a) / se[ok]
    return scores, eligible


def _shifted_rates(
    key: str,
    names: Sequence[str] | np.ndarray,
    count_ref: np.ndarray,
    n_ref: int,
    count_cur: np.ndarray,
    n_cur: int,
    *,
    z: float,
) -> tuple[float | None, list[dict[str, Any]]]:
    """``rate_shifts`` summed up: the share of testable items whose rate changed significantly (None: none
    testable), and the 15 largest changes (item named under ``key``, both rates, z)."""
    scores, eligible = rate_shifts(count_ref, n_ref, count_cur, n_cur, z=z)
    shifted = eligible & (np.abs(scores) > z)
    share = float(shifted.sum() / eligible.sum()) if eligible.any() else None
    top = sorted(
        (
            {
                key: str(names[int(j)]),
                "reference_rate": count_ref[j] / n_ref,
                "current_rate": count_cur[j] / n_cur,
                "z": float(scores[j]),
            }
            for j in np.flatnonzero(shifted)
        ),
        key=lambda r: -abs(float(r["z"])),
    )[:15]
    return share, top


def label_free_estimate(scores: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Expected micro precision, recall and F1 of 0/1 ``predicted`` given calibrated ``scores`` (same shape).

    A predicted tag is right with probability = its score (expected TP), wrong otherwise (expected FP); a tag
    not predicted is a miss with probability = its score (expected FN). Summed over the window (micro average);
    the F1 is ``tagwatch.scoring.expected_micro_f1``, the number ``evaluate`` reports on the hold-out.
    """
    if scores.shape != predicted.shape:
        raise ValueError(f"scores {scores.shape} and predictions {predicted.shape} differ in shape")
    mask = predicted.astype(bool)
    n_pred = float(mask.sum())
    expected_tp = float(scores[mask].sum())
    expected_positive = float(scores.sum())
    return {
        "precision": expected_tp / n_pred if n_pred else 0.0,
        "recall": expected_tp / expected_positive if expected_positive else 0.0,
        "micro_f1": expected_micro_f1(scores, mask),
        "n_questions": int(scores.shape[0]),
    }


def observed_scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Micro precision/recall/F1 and samples Jaccard over the model's tags, as ``retrain.evaluate`` computes them
    (so that they compare with the champion's hold-out scores)."""
    precision, recall, f1 = micro_prf(true, predicted)
    return {
        "precision": precision,
        "recall": recall,
        "micro_f1": f1,
        "samples_jaccard": samples_jaccard(true, predicted),
        "n_questions": int(true.shape[0]),
    }


def micro_f1_standard_error(true: np.ndarray, predicted: np.ndarray, *, seed: int = 0, resamples: int = 200) -> float:
    """Bootstrap standard error of micro-F1 over questions (resampled with replacement)."""
    n = true.shape[0]
    if n < 2:
        return 0.0
    t, p = true.astype(bool), predicted.astype(bool)
    tp = (t & p).sum(axis=1).astype(float)
    n_pred = p.sum(axis=1).astype(float)
    n_true = t.sum(axis=1).astype(float)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    denominator = n_pred[idx].sum(axis=1) + n_true[idx].sum(axis=1)
    f1 = np.divide(2 * tp[idx].sum(axis=1), denominator, out=np.zeros(resamples), where=denominator > 0)
    return float(f1.std(ddof=1))


def emerging_tags(
    current: Sequence[tuple[str, ...]],
    reference: Sequence[tuple[str, ...]],
    known: set[str],
    *,
    p_value: float,
    min_count: int,
) -> list[tuple[str, int, int]]:
    """Tags outside ``known`` far more frequent in ``current`` than in ``reference``: (tag, count, ref count).

    Per tag, a one-sided exact test of equal rates: given its k questions over both sides, how likely are this
    many of them in the current window if each side got its share of k (binomial, p = n_cur / (n_cur + n_ref))?
    Conditioning on k counts the reference's own sampling noise: a tag the reference missed by chance is not
    new. Most frequent first.
    """
    from scipy.stats import binom

    if not current or not reference:
        return []
    cur = Counter(t for tags in current for t in set(tags) if t not in known)
    ref = Counter(t for tags in reference for t in set(tags) if t not in known)
    share = len(current) / (len(current) + len(reference))
    out = []
    for tag, count in cur.items():
        if count < min_count:
            continue
        if float(binom.sf(count - 1, count + ref[tag], share)) < p_value:
            out.append((tag, count, ref[tag]))
    return sorted(out, key=lambda x: (-x[1], x[0]))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0


def _centroid_difference(x: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """The quick model of one tag: mean feature vector of its questions minus that of the others."""
    pos = y.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    total = np.asarray(x.sum(axis=0)).ravel()
    pos_sum = np.asarray(x[pos].sum(axis=0)).ravel()
    return pos_sum / max(n_pos, 1) - (total - pos_sum) / max(n_neg, 1)


# --- preparing one side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionFeatures:
    """The champion's top features: per tag, columns into ``columns`` and their weights."""

    columns: np.ndarray  # global feature indices of the union of all tags' top features
    per_tag: dict[str, tuple[np.ndarray, np.ndarray]]  # tag -> (positions into ``columns``, weights)
    names: np.ndarray  # feature names of ``columns``

    @classmethod
    def of(cls, model: TagModel, k: int) -> ChampionFeatures:
        names = np.asarray(model.feature_names())
        index = {str(n): j for j, n in enumerate(names)}
        raw: dict[str, list[tuple[int, float]]] = {}
        for tag in model.tags:
            raw[tag] = [(index[f], float(w)) for f, w in model.top_features(tag, k) if w > 0 and f in index]
        columns = np.asarray(sorted({c for pairs in raw.values() for c, _ in pairs}), dtype=int)
        position = {int(c): p for p, c in enumerate(columns)}
        per_tag = {
            tag: (
                np.asarray([position[c] for c, _ in pairs], dtype=int),
                np.asarray([w for _, w in pairs], dtype=float),
            )
            for tag, pairs in raw.items()
        }
        return cls(columns=columns, per_tag=per_tag, names=names[columns] if columns.size else names[:0])


@dataclass
class Prepared:
    """One side ready for ``detect_drift``; the job prepares the reference once per champion and reuses it.

    Per-question model work (features, scores, decisions) is bounded, whatever the window's size: it runs on
    ``rows``, a uniform sample of at most ``max_rows`` questions (Evidently's text and descriptors, prediction
    drift, the label-free estimate, the feature values) joined with at most ``max_rows`` questions with feedback
    (micro-F1, the quick models), the ones in the uniform sample first. Their statistics are already precise
    there, and the model transforms about a thousand questions a second. True tags are kept for every question
    with feedback: label drift and emerging tags need no model.
    """

    role: str
    model_tags: tuple[str, ...]
    model_key: tuple[Any, ...]  # which model prepared it (see _model_key)
    n: int
    labelled: np.ndarray  # indices of the questions with true tags
    true_tags: list[tuple[str, ...]]  # of the labelled questions, in ``labelled`` order
    true: np.ndarray  # len(labelled) x T bool, within the model's tags
    rows: np.ndarray  # sorted indices of the questions the model worked on
    uniform: np.ndarray  # positions into ``rows`` of the uniform sample
    rows_labelled: np.ndarray  # positions into ``rows`` of the questions with true tags
    rows_true: np.ndarray  # len(rows_labelled) x T bool: their true tags
    scores: np.ndarray  # len(rows) x T calibrated scores
    predicted: np.ndarray  # len(rows) x T bool
    x: sparse.csr_matrix  # len(rows) x len(champion.columns): the champion's important features
    described: dict[str, list[Any]]  # text, length, code_share, oov_share of the uniform sample
    champion: ChampionFeatures
    max_rows: int
    text_chars: int
    seconds: float


def _model_key(model: TagModel) -> tuple[Any, ...]:
    # A registered model is known by its version; an unregistered one (tests, benchmarks) only by its identity.
    version = getattr(model, "version", None)
    return (version, len(model.feature_names()), tuple(model.tags), id(model) if version is None else None)


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of min(n, k) of range(n)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.asarray(random.Random(seed).sample(range(n), k), dtype=int))


_VOCABULARIES: dict[int, tuple[np.ndarray, frozenset[str]]] = {}


def _vocabulary(model: TagModel) -> frozenset[str]:
    """The single-word terms of the model's word blocks: what "a word the model knows" means."""
    names = model.feature_names()  # cached and read-only in the model: its id identifies the vocabulary
    cached = _VOCABULARIES.get(id(names))
    if cached is not None and cached[0] is names:
        return cached[1]
    prefixes = tuple(f"{b.name}:" for b in model.features.blocks if b.kind == "words")
    words = frozenset(str(n).split(":", 1)[1] for n in names if str(n).startswith(prefixes) and " " not in str(n))
    if len(_VOCABULARIES) >= 4:
        _VOCABULARIES.clear()
    _VOCABULARIES[id(names)] = (names, words)
    return words


def _describe(questions: Sequence[HasText], vocabulary: frozenset[str], text_chars: int) -> dict[str, list[Any]]:
    """The domain classifier's text and the descriptors of the chosen questions (each cleaned once)."""
    texts: list[str] = []
    lengths: list[float] = []
    code_shares: list[float] = []
    unknown: list[float] = []
    for q in questions:
        body = clean_body(q.body, q.body_format)
        full = f"{clean_title(q.title)} {body.text} {body.code}".strip()
        texts.append(full[:text_chars])
        lengths.append(float(len(full)))
        code_shares.append(body.code_share)
        words = tokenize(full)
        unknown.append(sum(w not in vocabulary for w in words) / len(words) if words else 0.0)
    return {"text": texts, "length": lengths, "code_share": code_shares, "oov_share": unknown}


def _true_labels(
    side: DriftInput, role: str, index: dict[str, int]
) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray]:
    """(indices of the questions with feedback, their tag tuples, their 0/1 matrix over the model's tags)."""
    labelled: list[int] = []
    true_tags: list[tuple[str, ...]] = []
    if side.true_tags is not None:
        if len(side.true_tags) != len(side.questions):
            raise ValueError(f"{role}: {len(side.true_tags)} tag sets for {len(side.questions)} questions")
        for i, t in enumerate(side.true_tags):
            if t is None:
                continue
            if isinstance(t, str) or not all(isinstance(x, str) and x.strip() for x in t):
                raise ValueError(f"{role}: true tags of question {i} must be a tuple of tag names: got {t!r}")
            if not t:
                raise ValueError(f"{role}: question {i} has an empty tag set (None means 'no feedback')")
            labelled.append(i)
            true_tags.append(tuple(dict.fromkeys(x.strip().lower() for x in t)))
    true = np.zeros((len(labelled), len(index)), dtype=bool)
    for r, t in enumerate(true_tags):
        for tag in t:
            j = index.get(tag)
            if j is not None:
                true[r, j] = True
    return np.asarray(labelled, dtype=int), true_tags, true


def _predicted_matrix(decided: Sequence[Sequence[tuple[str, float]]], index: dict[str, int], role: str) -> np.ndarray:
    predicted = np.zeros((len(decided), len(index)), dtype=bool)
    for i, row in enumerate(decided):
        for tag, _score in row:
            j = index.get(tag)
            if j is None:
                raise ValueError(f"{role}: question {i} has a predicted tag {tag!r} the model does not know")
            predicted[i, j] = True
    return predicted


def prepare(
    side: DriftInput,
    model: TagModel,
    thresholds: Thresholds | None = None,
    *,
    role: str = "reference",
    seed: int = 0,
    champion: ChampionFeatures | None = None,
) -> Prepared:
    """Score, clean and featurise one side (the work of ``detect_drift`` that does not depend on the other)."""
    started = time.perf_counter()
    th = thresholds or Thresholds()
    if role not in ("reference", "current"):
        raise ValueError(f"role must be 'reference' or 'current': got {role!r}")
    tags = list(model.tags)
    index = {t: j for j, t in enumerate(tags)}
    n = len(side.questions)
    scores: np.ndarray | None = None
    if side.scores is not None:
        scores = np.asarray(side.scores, dtype=float)
        if scores.shape != (n, len(tags)):
            raise ValueError(
                f"{role}: scores have shape {scores.shape}, expected ({n}, {len(tags)}) (questions x model tags)"
            )
        if not np.all(np.isfinite(scores)) or scores.min(initial=0.0) < 0 or scores.max(initial=0.0) > 1:
            raise ValueError(f"{role}: scores must be probabilities in [0, 1]")
    labelled, true_tags, true = _true_labels(side, role, index)
    if side.predicted is not None and len(side.predicted) != n:
        raise ValueError(f"{role}: {len(side.predicted)} predictions for {n} questions")
    champion = champion or ChampionFeatures.of(model, th.top_features)
    uniform = _sample(n, th.max_rows, seed + (0 if role == "reference" else 1))
    in_uniform = np.isin(labelled, uniform)
    # Questions with feedback: those of the uniform sample first, then others, up to max_rows in all.
    others = labelled[~in_uniform]
    extra = others[_sample(len(others), max(th.max_rows - int(in_uniform.sum()), 0), seed + 2)]
    rows = np.union1d(uniform, extra).astype(int)
    questions = [side.questions[int(i)] for i in rows]
    x = model.transform(questions) if rows.size else sparse.csr_matrix((0, len(model.feature_names())))
    if scores is not None:
        scores = scores[rows]
    elif rows.size:
        scores = model.calibrate(model.decision_function(x))
    else:
        scores = np.zeros((0, len(tags)))
    if side.predicted is not None:
        decided: Sequence[Sequence[tuple[str, float]]] = [side.predicted[int(i)] for i in rows]
    else:
        decided = model.decide(scores) if rows.size else []
    row_of = {int(i): r for r, i in enumerate(labelled)}
    rows_labelled = np.asarray([p for p, i in enumerate(rows) if int(i) in row_of], dtype=int)
    rows_true = (
        true[[row_of[int(rows[p])] for p in rows_labelled]]
        if rows_labelled.size
        else np.zeros((0, len(tags)), dtype=bool)
    )
    uniform_pos = np.searchsorted(rows, uniform)
    return Prepared(
        role=role,
        model_tags=tuple(tags),
        model_key=_model_key(model),
        n=n,
        labelled=labelled,
        true_tags=true_tags,
        true=true,
        rows=rows,
        uniform=uniform_pos,
        rows_labelled=rows_labelled,
        rows_true=rows_true,
        scores=scores,
        predicted=_predicted_matrix(decided, index, role),
        x=sparse.csr_matrix(x[:, champion.columns]),
        described=_describe([questions[int(p)] for p in uniform_pos], _vocabulary(model), th.text_chars),
        champion=champion,
        max_rows=th.max_rows,
        text_chars=th.text_chars,
        seconds=time.perf_counter() - started,
    )


# --- Evidently -------------------------------------------------------------------------------------------


_EVIDENTLY_TYPES: dict[str, Any] = {}


def _evidently_types() -> dict[str, Any]:
    """Our two Evidently metrics, defined once, when a drift run first needs them (Evidently imports slowly).

    ``TextDomainDrift`` is Evidently's text drift (the split, pipeline and ROC AUC of ``ValueDrift`` with
    ``abs_text_content_drift``) that keeps the characteristic words and examples of that one fit; ``ValueDrift``
    fits the classifier a second time to draw them, and does not return them. ``RunSummary`` puts the verdicts of
    the other kinds at the top of the report.
    """
    if _EVIDENTLY_TYPES:
        return _EVIDENTLY_TYPES
    import pandas as pd
    from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
    from evidently.legacy.calculations.data_drift import ColumnDataDriftMetrics, DriftStatsField
    from evidently.legacy.options import ColorOptions
    from evidently.legacy.options.base import Options
    from evidently.legacy.renderers.html_widgets import header_text, table_data
    from evidently.legacy.utils.data_drift_utils import (
        get_typical_examples,
        get_typical_words,
        roc_auc_domain_classifier,
    )
    from evidently.metrics.column_statistics import ValueDriftCalculation
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    class TextDomainDrift(SingleValueMetric):
        class Config:
            type_alias = "tagwatch:metric:TextDomainDrift"

        column: str
        threshold: float

    class TextDomainDriftCalculation(SingleValueCalculation[TextDomainDrift]):
        words: dict[str, list[str]]

        def calculate(self, context: Any, current_data: Any, reference_data: Any) -> SingleValue:
            if reference_data is None:
                raise ValueError("text drift needs reference data")
            ref = reference_data.column(self.metric.column).data
            cur = current_data.column(self.metric.column).data
            domain = pd.concat([pd.DataFrame({"text": ref, "target": 0}), pd.DataFrame({"text": cur, "target": 1})])
            # evidently's calculate_text_drift_score, step by step, keeping the fitted pipeline.
            x_train, x_test, y_train, y_test = train_test_split(
                domain["text"], domain["target"], test_size=0.5, random_state=42, shuffle=True
            )
            with warnings.catch_warnings():
                # Evidently's classifier stops at 50 SGD epochs (a ConvergenceWarning on larger windows) and
                # sorts filtered frames in place (SettingWithCopyWarning): both as in Evidently itself.
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", pd.errors.SettingWithCopyWarning)
                auc, proba, pipeline = roc_auc_domain_classifier(x_train, x_test, y_train, y_test)
                words_cur, words_ref = get_typical_words(pipeline)
                examples_cur, examples_ref = get_typical_examples(x_test, y_test, proba)
            self.words = {"reference": list(words_ref), "current": list(words_cur)}
            auc = float(auc)
            drift = ColumnDataDriftMetrics(
                column_name=self.metric.column,
                column_type="text",
                stattest_name="domain classifier ROC AUC (abs_text_content_drift)",
                drift_score=auc,
                drift_detected=auc > self.metric.threshold,
                stattest_threshold=self.metric.threshold,
                current=DriftStatsField(characteristic_examples=examples_cur, characteristic_words=words_cur),
                reference=DriftStatsField(characteristic_examples=examples_ref, characteristic_words=words_ref),
            )
            result = self.result(auc)
            result.widget = ValueDriftCalculation._render(self, drift, Options(), ColorOptions())
            return result

        def display_name(self) -> str:
            return f"Text drift of '{self.metric.column}' (domain classifier ROC AUC)"

    class RunSummary(SingleValueMetric):
        class Config:
            type_alias = "tagwatch:metric:RunSummary"

        title: str
        header: list[str]
        rows: list[list[str]]
        detected: int

    class RunSummaryCalculation(SingleValueCalculation[RunSummary]):
        def calculate(self, context: Any, current_data: Any, reference_data: Any) -> SingleValue:
            result = self.result(self.metric.detected)
            result.widget = [
                header_text(label=self.metric.title),
                table_data(title="", column_names=self.metric.header, data=self.metric.rows),
            ]
            return result

        def display_name(self) -> str:
            return "Concept and feature drift: kinds detected"

    _EVIDENTLY_TYPES.update(TextDomainDrift=TextDomainDrift, RunSummary=RunSummary)
    return _EVIDENTLY_TYPES


@dataclass
class _EvidentlyOutcome:
    auc: float
    words: dict[str, list[str]]
    descriptors: dict[str, float]
    prediction_top_js: float
    snapshot: Any


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, th: Thresholds, summary: dict[str, Any] | None
) -> _EvidentlyOutcome:
    """One Evidently report: text drift, descriptor drift, top-predicted-tag drift (and our summary table)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    types = _evidently_types()
    definition = DataDefinition(
        text_columns=["text"],
        numerical_columns=["length", "code_share", "oov_share"],
        categorical_columns=["predicted_tag"],
    )
    text = types["TextDomainDrift"](column="text", threshold=th.text_auc)
    # Methods set explicitly: Evidently's defaults change with the number of rows.
    descriptors = {
        c: ValueDrift(column=c, method="wasserstein", threshold=th.descriptor_wasserstein)
        for c in ("length", "code_share", "oov_share")
    }
    prediction = ValueDrift(column="predicted_tag", method="jensenshannon", threshold=th.prediction_js)
    metrics: list[Any] = [types["RunSummary"](**summary)] if summary is not None else []
    metrics += [text, *descriptors.values(), prediction]
    snapshot = Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    context = snapshot.context
    return _EvidentlyOutcome(
        auc=float(context.get_metric_result(text).value),
        words=dict(context.get_metric(text.metric_id).words),
        descriptors={c: float(context.get_metric_result(m).value) for c, m in descriptors.items()},
        prediction_top_js=float(context.get_metric_result(prediction).value),
        snapshot=snapshot,
    )


def _frame(side: Prepared, keep: set[str]) -> pd.DataFrame:
    import pandas as pd

    top = []
    for p in side.uniform:
        row = np.where(side.predicted[p], side.scores[p], -1.0)
        j = int(np.argmax(row))
        top.append(side.model_tags[j] if row[j] >= 0 and side.model_tags[j] in keep else OTHER)
    return pd.DataFrame({**side.described, "predicted_tag": top})


# --- the detector ----------------------------------------------------------------------------------------


def detect_drift(
    reference: DriftInput | Prepared,
    current: DriftInput | Prepared,
    model: TagModel,
    baseline: Baseline,
    thresholds: Thresholds | None = None,
    *,
    seed: int = 0,
    report: bool = True,
) -> DriftResult:
    """Measure data, concept and feature drift of ``current`` against ``reference`` for ``model``.

    ``reference``: labelled questions of the champion's training period it did not train on (``Prepared`` once
    per champion saves re-scoring it every window); ``baseline``: the champion's hold-out scores. ``report`` adds
    the concept/feature summary table to the Evidently snapshot kept in the result (for report.write_report).
    """
    started = time.perf_counter()
    th = thresholds or Thresholds()
    ref = reference if isinstance(reference, Prepared) else prepare(reference, model, th, role="reference", seed=seed)
    cur = (
        current
        if isinstance(current, Prepared)
        else prepare(current, model, th, role="current", seed=seed, champion=ref.champion)
    )
    for side in (ref, cur):
        if side.model_key != _model_key(model):
            raise ValueError(f"the {side.role} was prepared for another model: prepare it again for this one")
        if (side.max_rows, side.text_chars) != (th.max_rows, th.text_chars):
            raise ValueError(f"the {side.role} was prepared with other thresholds (max_rows, text_chars)")
    if ref.n == 0:
        raise ValueError("the reference is empty")
    if len(ref.labelled) == 0:
        raise ValueError("the reference has no true tags: concept and feature drift are measured against them")
    sizes = {
        "reference": ref.n,
        "current": cur.n,
        "feedback": len(cur.labelled),
        "reference_labelled": len(ref.labelled),
    }
    label_free = _label_free(ref, cur, baseline, th)
    concept, emerging = _concept(ref, cur, baseline, th, seed)
    feature = _feature(ref, cur, th, seed)
    data, outcome = _data(
        ref, cur, th, label_free, _summary(model, sizes, concept, feature, label_free, emerging) if report else None
    )
    return DriftResult(
        data=data,
        concept=concept,
        feature=feature,
        label_free=label_free,
        characteristic_words=outcome.words if outcome is not None else {"reference": [], "current": []},
        emerging_tags=[(t, c) for t, c, _ in emerging],
        sizes=sizes,
        thresholds=th,
        model_version=getattr(model, "version", None),
        duration_seconds=time.perf_counter() - started,
        snapshot=outcome.snapshot if outcome is not None else None,
    )


def _reasons(signals: list[Signal]) -> list[str]:
    out = []
    for s in signals:
        if s.value is None or not s.exceeded:
            continue
        text = f"{s.label}: {s.value:.3f} > {s.threshold:.3f}"
        if s.detected:
            out.append(text)
        elif s.deciding:
            out.append(f"{text}, on only {s.sample_size} questions (not enough data)")
        elif s.enough_data:
            out.append(f"also: {text}")
    return out


def _severity_kind(
    kind: str, signals: list[Signal], sample_size: int, details: dict[str, Any], reasons: list[str]
) -> KindResult:
    """score = max(value / threshold) over the deciding signals with enough data (else over all computed)."""
    deciding = [s for s in signals if s.deciding and s.value is not None]
    enough = [s for s in deciding if s.enough_data]
    pool = enough or deciding
    score = max((float(s.value) / s.threshold for s in pool if s.value is not None), default=None)
    details = {
        **details,
        "signals": {s.name: s.to_dict() for s in signals},
        "score_definition": "max(value / threshold) over the deciding signals",
    }
    return KindResult(
        kind=kind,
        score=score,
        threshold=1.0,
        detected=any(s.detected for s in signals),
        sample_size=sample_size,
        enough_data=bool(enough),
        reasons=_reasons(signals) + reasons,
        details=details,
    )


def _data(
    ref: Prepared, cur: Prepared, th: Thresholds, label_free: dict[str, Any], summary: dict[str, Any] | None
) -> tuple[KindResult, _EvidentlyOutcome | None]:
    enough = cur.n >= th.min_current and ref.n >= th.min_reference
    signals: list[Signal] = []
    details: dict[str, Any] = {"score_definition": "ROC AUC of the domain classifier telling the sides' text apart"}
    ref_pred, cur_pred = ref.predicted[ref.uniform], cur.predicted[cur.uniform]
    if ref_pred.any() and cur_pred.any():
        signals.append(
            Signal(
                "prediction_js",
                js_distance(ref_pred.sum(axis=0), cur_pred.sum(axis=0)),
                th.prediction_js,
                len(cur.uniform),
                enough,
                False,
                "predicted-tag distribution drift (JS)",
            )
        )
    if label_free["drop"] is not None:
        signals.append(
            Signal(
                "expected_f1_drop",
                label_free["drop"],
                th.expected_f1_drop,
                cur.n,
                enough,
                False,
                "label-free expected micro-F1 drop",
            )
        )
    outcome = None
    if len(cur.uniform) >= MIN_TEXT_ROWS and len(ref.uniform) >= MIN_TEXT_ROWS:
        freq = ref_pred.sum(axis=0)
        keep = {ref.model_tags[j] for j in np.argsort(-freq)[:REPORT_TOP_TAGS] if freq[j] > 0}
        ref_frame, cur_frame = _frame(ref, keep), _frame(cur, keep)
        outcome = _run_evidently(ref_frame, cur_frame, th, summary)
        for name, value in outcome.descriptors.items():
            signals.append(
                Signal(
                    f"{name}_drift",
                    value,
                    th.descriptor_wasserstein,
                    len(cur.uniform),
                    enough,
                    False,
                    f"{name.replace('_', ' ')} drift (normed Wasserstein)",
                )
            )
        details["descriptor_means"] = {
            c: {"reference": float(ref_frame[c].mean()), "current": float(cur_frame[c].mean())}
            for c in ("length", "code_share", "oov_share")
        }
        details["prediction_top_tag_js"] = outcome.prediction_top_js
        details["rows_used"] = {"reference": len(ref.uniform), "current": len(cur.uniform)}
    auc = outcome.auc if outcome is not None else None
    detected = bool(enough and auc is not None and auc > th.text_auc)
    reasons = []
    if auc is not None and auc > th.text_auc:
        reasons.append(
            f"text drift: domain classifier ROC AUC {auc:.3f} > {th.text_auc:.3f}"
            + ("" if enough else " (not enough data)")
        )
    if not enough:
        reasons.append(
            f"not enough data: {cur.n} current / {ref.n} reference questions "
            f"(minimum {th.min_current} / {th.min_reference})"
        )
    details["signals"] = {s.name: s.to_dict() for s in signals}
    result = KindResult(
        kind="data",
        score=auc,
        threshold=th.text_auc,
        detected=detected,
        sample_size=cur.n,
        enough_data=enough,
        reasons=reasons + _reasons(signals),
        details=details,
    )
    return result, outcome


def _label_free(ref: Prepared, cur: Prepared, baseline: Baseline, th: Thresholds) -> dict[str, Any]:
    reference = label_free_estimate(ref.scores[ref.uniform], ref.predicted[ref.uniform])
    expected = baseline.expected_micro_f1 if baseline.expected_micro_f1 is not None else reference["micro_f1"]
    current = label_free_estimate(cur.scores[cur.uniform], cur.predicted[cur.uniform]) if cur.n else None
    drop = expected - current["micro_f1"] if current is not None else None
    out: dict[str, Any] = {
        "reference": reference,
        "expected_reference_micro_f1": expected,
        "compared_with": "baseline hold-out" if baseline.expected_micro_f1 is not None else "reference",
        "current": current,
        "drop": drop,
        "threshold": th.expected_f1_drop,
        "detected": bool(cur.n >= th.min_current and drop is not None and drop > th.expected_f1_drop),
    }
    if len(cur.rows_labelled):
        # The estimate next to what the feedback says, on the same questions.
        p = cur.rows_labelled
        out["feedback_estimate"] = label_free_estimate(cur.scores[p], cur.predicted[p])
        out["feedback_observed"] = observed_scores(cur.rows_true, cur.predicted[p])
    return out


def _tag_presence(side: Prepared) -> tuple[np.ndarray, int]:
    # Questions carrying each model tag, plus one item for "any tag outside the model's vocabulary".
    known = set(side.model_tags)
    outside = sum(1 for t in side.true_tags if any(x not in known for x in t))
    return np.append(side.true.sum(axis=0), outside), len(side.true_tags)


def _concept(
    ref: Prepared, cur: Prepared, baseline: Baseline, th: Thresholds, seed: int
) -> tuple[KindResult, list[tuple[str, int, int]]]:
    n_fb = len(cur.labelled)
    enough = n_fb >= th.min_feedback
    known = set(ref.model_tags)
    details: dict[str, Any] = {"baseline": {"micro_f1": baseline.micro_f1, "samples_jaccard": baseline.samples_jaccard}}
    signals: list[Signal] = []
    reasons: list[str] = []
    emerging: list[tuple[str, int, int]] = []
    if n_fb:
        # micro-F1 on the labelled questions the model scored (all of them, up to max_rows)
        n_scored = len(cur.rows_labelled)
        observed = observed_scores(cur.rows_true, cur.predicted[cur.rows_labelled])
        details["observed"] = observed
        details["jaccard_drop"] = baseline.samples_jaccard - observed["samples_jaccard"]
        # The drop must be large (f1_drop) and beyond the window's own noise: a hundred questions move micro-F1
        # by +-0.03 (bootstrap standard error, the hold-out's added when its size is known).
        se = micro_f1_standard_error(cur.rows_true, cur.predicted[cur.rows_labelled], seed=seed)
        if baseline.n_questions:
            se = math.sqrt(se**2 * (1 + n_scored / baseline.n_questions))
        details["f1_standard_error"] = se
        signals.append(
            Signal(
                "f1_drop",
                baseline.micro_f1 - observed["micro_f1"],
                max(th.f1_drop, th.shift_z * se),
                n_scored,
                n_scored >= th.min_feedback,
                True,
                "micro-F1 drop below the hold-out",
            )
        )
        counts_ref, n_ref = _tag_presence(ref)
        counts_cur, _ = _tag_presence(cur)
        shift_share, details["label_shifts"] = _shifted_rates(
            "tag", [*ref.model_tags, OTHER], counts_ref, n_ref, counts_cur, n_fb, z=th.shift_z
        )
        signals.append(
            Signal(
                "label_shift_share",
                shift_share,
                th.label_shift_share,
                n_fb,
                enough,
                True,
                "true-tag drift (share of tags whose rate changed significantly)",
            )
        )
        emerging = emerging_tags(
            cur.true_tags, ref.true_tags, known, p_value=th.emerging_p_value, min_count=th.emerging_min_count
        )
        names = {t for t, _, _ in emerging}
        share = sum(1 for t in cur.true_tags if names.intersection(t)) / n_fb
        signals.append(
            Signal(
                "emerging_share",
                share,
                th.emerging_share,
                n_fb,
                enough,
                True,
                "share of feedback questions with an emerging tag",
            )
        )
        details["emerging_tags"] = [{"tag": t, "count": c, "reference_count": r} for t, c, r in emerging]
        details["unknown_tag_share"] = {
            "current": _unknown_share(cur.true_tags, known),
            "reference": _unknown_share(ref.true_tags, known),
        }
        if emerging:
            reasons.append("emerging tags: " + ", ".join(f"{t} ({c})" for t, c, _ in emerging[:10]))
    if not enough:
        reasons.append(f"not enough data: {n_fb} questions with feedback (minimum {th.min_feedback})")
    return _severity_kind("concept", signals, n_fb, details, reasons), emerging


def _unknown_share(true_tags: list[tuple[str, ...]], known: set[str]) -> float | None:
    # Share of tag occurrences the model cannot predict.
    total = sum(len(t) for t in true_tags)
    return sum(1 for t in true_tags for x in t if x not in known) / total if total else None


def _feature(ref: Prepared, cur: Prepared, th: Thresholds, seed: int) -> KindResult:
    champion = ref.champion
    signals: list[Signal] = []
    reasons: list[str] = []
    n_fb = len(cur.labelled)
    details: dict[str, Any] = {"n_feedback": n_fb, "important_features": int(champion.columns.size)}
    enough_values = cur.n >= th.min_current and ref.n >= th.min_reference
    if champion.columns.size and len(cur.uniform) and len(ref.uniform):
        n_ref, n_cur = len(ref.uniform), len(cur.uniform)
        present_ref = np.asarray((ref.x[ref.uniform] > 0).sum(axis=0)).ravel()
        present_cur = np.asarray((cur.x[cur.uniform] > 0).sum(axis=0)).ravel()
        shift_share, details["feature_shifts"] = _shifted_rates(
            "feature", champion.names, present_ref, n_ref, present_cur, n_cur, z=th.shift_z
        )
        signals.append(
            Signal(
                "feature_shift_share",
                shift_share,
                th.feature_shift_share,
                n_cur,
                enough_values,
                True,
                "share of the champion's important features whose rate changed significantly",
            )
        )
    enough_importance = n_fb >= th.min_feature_feedback
    n_match = min(len(cur.rows_labelled), len(ref.rows_labelled))
    if n_match:
        # The reference side is cut to the current's size: the quick model's noise depends on it.
        pick = ref.rows_labelled[_sample(len(ref.rows_labelled), n_match, seed + 5)]
        x_ref, y_ref = ref.x[pick], ref.rows_true[np.searchsorted(ref.rows_labelled, pick)]
        x_cur, y_cur = cur.x[cur.rows_labelled], cur.rows_true
        per_tag: list[dict[str, Any]] = []
        for j, tag in enumerate(ref.model_tags):
            cols, weights = champion.per_tag[tag]
            positives = (int(y_cur[:, j].sum()), int(y_ref[:, j].sum()))
            if not cols.size or min(positives) < th.min_tag_positives:
                continue
            agree_cur = _cosine(_centroid_difference(x_cur, y_cur[:, j])[cols], weights)
            agree_ref = _cosine(_centroid_difference(x_ref, y_ref[:, j])[cols], weights)
            per_tag.append(
                {
                    "tag": tag,
                    "agreement_current": agree_cur,
                    "agreement_reference": agree_ref,
                    "drop": agree_ref - agree_cur,
                    "positives": positives[0],
                }
            )
        per_tag.sort(key=lambda r: -float(r["drop"]))
        details["tags_compared"] = len(per_tag)
        details["importance_by_tag"] = per_tag[:10]
        top = float(per_tag[0]["drop"]) if per_tag else None
        signals.append(
            Signal(
                "importance_drop",
                top,
                th.importance_drop,
                n_fb,
                enough_importance and bool(per_tag),
                True,
                "largest per-tag drop of agreement with the champion's top features",
            )
        )
        changed = [str(r["tag"]) for r in per_tag if float(r["drop"]) > th.importance_drop]
        if changed:
            reasons.append("tags whose predictive features changed: " + ", ".join(changed[:10]))
    if not enough_importance:
        reasons.append(
            f"feature importance not compared: {n_fb} questions with feedback (minimum {th.min_feature_feedback})"
        )
    if not enough_values:
        reasons.append(f"feature values not compared: {cur.n} current questions (minimum {th.min_current})")
    return _severity_kind("feature", signals, cur.n, details, reasons)


def _summary(
    model: TagModel,
    sizes: dict[str, int],
    concept: KindResult,
    feature: KindResult,
    label_free: dict[str, Any],
    emerging: list[tuple[str, int, int]],
) -> dict[str, Any]:
    """The RunSummary table of the Evidently report: the kinds Evidently does not compute."""

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [
        [
            r.kind,
            fmt(r.score),
            fmt(r.threshold),
            "DRIFT" if r.detected else "ok",
            "yes" if r.enough_data else "no",
            str(r.sample_size),
            "; ".join(r.reasons) or "-",
        ]
        for r in (concept, feature)
    ]
    current = label_free.get("current") or {}
    rows.append(
        [
            "label-free expected micro-F1",
            fmt(current.get("micro_f1")),
            fmt(label_free["expected_reference_micro_f1"]),
            "DROP" if label_free["detected"] else "ok",
            "-",
            str(sizes["current"]),
            f"drop {fmt(label_free['drop'])} (max {fmt(label_free['threshold'])})",
        ]
    )
    if emerging:
        rows.append(
            [
                "emerging tags",
                "-",
                "-",
                "-",
                "-",
                str(sizes["feedback"]),
                ", ".join(f"{t} ({c})" for t, c, _ in emerging[:15]),
            ]
        )
    title = (
        f"tagwatch drift run: model {getattr(model, 'version', None) or '?'}, {sizes['current']} current / "
        f"{sizes['reference']} reference questions, {sizes['feedback']} with feedback"
    )
    return {
        "title": title,
        "header": ["kind", "score", "threshold", "verdict", "enough data", "sample", "reasons"],
        "rows": rows,
        "detected": int(concept.detected) + int(feature.detected),
    }

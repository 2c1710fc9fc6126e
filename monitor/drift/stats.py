"""The drift run's statistics: pure functions of arrays (no model, no Evidently, nothing read or written)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from tagwatch.scoring import expected_micro_f1, micro_prf, samples_jaccard


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


def shifted_rates(
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


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0


def centroid_difference(x: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """The quick model of one tag: mean feature vector of its questions minus that of the others."""
    pos = y.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    total = np.asarray(x.sum(axis=0)).ravel()
    pos_sum = np.asarray(x[pos].sum(axis=0)).ravel()
    return pos_sum / max(n_pos, 1) - (total - pos_sum) / max(n_neg, 1)


def sample_indices(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of min(n, k) of range(n)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.asarray(random.Random(seed).sample(range(n), k), dtype=int))

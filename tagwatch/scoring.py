"""Pure scoring functions: the decision rule and the quality metrics of multi-label tag predictions.

Everything works on matrices over one tag vocabulary (columns): 0/1 ``y_true`` / ``y_pred`` (n x n_tags) and
``scores`` (n x n_tags, calibrated probabilities). True tags outside the vocabulary are not columns, so they are
neither hits nor misses here (the evaluation reports how many there were separately). Questions without any true
tag in the vocabulary stay in: whatever is predicted for them is a false positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "binarize",
    "decision_matrix",
    "expected_micro_f1",
    "macro_f1",
    "micro_prf",
    "per_tag_f1",
    "precision_at_k",
    "rank_matrix",
    "recall_at_k",
    "samples_jaccard",
]


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{what}: expected two matrices of the same shape (n, n_tags), got {a.shape} and {b.shape}")


def binarize(tag_lists: Sequence[Sequence[str]], tags: Sequence[str]) -> np.ndarray:
    """0/1 matrix (n x len(tags)) of per-question tag lists; tags outside ``tags`` are ignored."""
    index = {t: j for j, t in enumerate(tags)}
    if len(index) != len(tags):
        raise ValueError("the tag vocabulary has duplicates")
    y = np.zeros((len(tag_lists), len(tags)), dtype=np.int8)
    for i, row in enumerate(tag_lists):
        for t in row:
            j = index.get(t)
            if j is not None:
                y[i, j] = 1
    return y


def rank_matrix(scores: np.ndarray) -> np.ndarray:
    """Per row, the rank of each column by score (0 = highest); ties broken by column order."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(scores.shape[1]), scores.shape), axis=1)
    return ranks


def decision_matrix(
    scores: np.ndarray, thresholds: np.ndarray | float, max_tags: int, min_top_score: float = 0.0
) -> np.ndarray:
    """The decision rule as a 0/1 matrix: tags whose score reaches their threshold, the top-1 tag whenever its
    score reaches ``min_top_score`` (0: always, so every question gets a tag), and at most the ``max_tags``
    best-scored ones. A question whose best score is below both gets no tag: none of the model's tags fits it."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be a matrix (n, n_tags), got shape {scores.shape}")
    if max_tags < 1:
        raise ValueError(f"max_tags must be >= 1, got {max_tags}")
    if not 0.0 <= min_top_score <= 1.0:
        raise ValueError(f"min_top_score must be in [0, 1], got {min_top_score}")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=float), (scores.shape[1],))
    chosen = scores >= thr
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        return chosen.astype(np.int8)
    ranks = rank_matrix(scores)
    chosen |= (ranks == 0) & (scores >= min_top_score)
    chosen &= ranks < max_tags
    return chosen.astype(np.int8)


def micro_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Micro-averaged (precision, recall, F1) over all questions and tags; 0.0 where undefined."""
    _check_pair(y_true, y_pred, "micro_prf")
    t, p = y_true.astype(bool), y_pred.astype(bool)
    tp = float((t & p).sum())
    n_pred, n_true = float(p.sum()), float(t.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0
    return precision, recall, f1


def per_tag_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 per column; 0.0 for a tag that is neither true nor predicted anywhere."""
    _check_pair(y_true, y_pred, "per_tag_f1")
    t, p = y_true.astype(bool), y_pred.astype(bool)
    tp = (t & p).sum(axis=0).astype(float)
    denom = t.sum(axis=0) + p.sum(axis=0)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the tags that occur in ``y_true`` (a tag absent from the questions has no F1 to average)."""
    support = y_true.sum(axis=0) > 0
    if not support.any():
        return 0.0
    return float(per_tag_f1(y_true, y_pred)[support].mean())


def samples_jaccard(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over questions of |true ∩ predicted| / |true ∪ predicted| (1.0 for a question with both empty)."""
    _check_pair(y_true, y_pred, "samples_jaccard")
    if y_true.shape[0] == 0:
        return 0.0
    t, p = y_true.astype(bool), y_pred.astype(bool)
    inter = (t & p).sum(axis=1).astype(float)
    union = (t | p).sum(axis=1).astype(float)
    return float(np.divide(inter, union, out=np.ones_like(inter), where=union > 0).mean())


def _top_k_hits(y_true: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    _check_pair(y_true, scores, "top-k")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = rank_matrix(scores) < k
    return (top & y_true.astype(bool)).sum(axis=1)


def precision_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over questions of (true tags among the k best-scored) / k."""
    if y_true.shape[0] == 0:
        return 0.0
    return float(_top_k_hits(y_true, scores, k).mean() / k)


def recall_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over questions with at least one true tag of (true tags among the k best-scored) / (true tags)."""
    n_true = y_true.sum(axis=1)
    has = n_true > 0
    if not has.any():
        return 0.0
    hits = _top_k_hits(y_true, scores, k)
    return float((hits[has] / n_true[has]).mean())


def expected_micro_f1(scores: np.ndarray, y_pred: np.ndarray) -> float:
    """Label-free micro-F1 expected from calibrated scores: a predicted tag is right with probability = its score,
    a tag not predicted is missed with probability = its score (the monitor's estimate, on a hold-out)."""
    _check_pair(scores, y_pred, "expected_micro_f1")
    mask = y_pred.astype(bool)
    denom = float(mask.sum()) + float(scores.sum())
    return 2 * float(scores[mask].sum()) / denom if denom else 0.0

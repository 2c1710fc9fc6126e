"""Decision thresholds: the global or per-tag thresholds that maximise micro-F1 under the model's decision rule
(the top tag if it reaches the minimum top score, then up to ``max_tags`` tags reaching their threshold), and that
minimum top score, chosen on validation scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from tagwatch.scoring import decision_matrix, rank_matrix

THRESHOLD_MODES = ("auto", "global", "per_tag")
THRESHOLD_GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)
# Tags with fewer validation positives keep the global threshold: a per-tag one would fit noise.
MIN_POSITIVES_PER_TAG_THRESHOLD = 5
# Candidates for the minimum top score: below it a question's best tag is not suggested unless it reaches its own
# threshold. 0 is the rule "always the best tag".
MIN_TOP_SCORE_GRID = np.round(np.arange(0.0, 0.31, 0.01), 2)


def _counts_by_threshold(
    scores: np.ndarray,
    y: np.ndarray,
    ranks: np.ndarray,
    max_tags: int,
    grid: np.ndarray,
    min_top_score: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """For each tag and grid threshold: (true positives, predictions) under the decision rule.

    Under the rule a tag is predicted for a question if it is ranked first with a score of at least
    ``min_top_score``, or if it is ranked below ``max_tags`` and reaches its threshold. Ranks do not depend on
    thresholds, so each tag's counts depend on its own threshold only: micro-F1 can be optimized one tag at a time,
    exactly.
    """
    forced = (ranks == 0) & (scores >= min_top_score)
    eligible = (ranks < max_tags) & ~forced
    pos = y.astype(bool)
    n_tags = scores.shape[1]
    tp = np.empty((n_tags, len(grid)))
    pp = np.empty((n_tags, len(grid)))
    for j in range(n_tags):
        s = scores[eligible[:, j], j]
        s_pos = scores[eligible[:, j] & pos[:, j], j]
        s.sort()
        s_pos.sort()
        # count of values >= g: len - searchsorted(left)
        pp[j] = forced[:, j].sum() + len(s) - np.searchsorted(s, grid, side="left")
        tp[j] = (forced[:, j] & pos[:, j]).sum() + len(s_pos) - np.searchsorted(s_pos, grid, side="left")
    return tp, pp


def _global_f1s(
    scores: np.ndarray, y: np.ndarray, ranks: np.ndarray, max_tags: int, grid: np.ndarray, min_top_score: float
) -> np.ndarray:
    tp, pp = _counts_by_threshold(scores, y, ranks, max_tags, grid, min_top_score)
    return np.asarray(2 * tp.sum(axis=0) / np.maximum(pp.sum(axis=0) + y.sum(), 1))


def global_threshold(
    scores: np.ndarray, y: np.ndarray, max_tags: int, grid: np.ndarray = THRESHOLD_GRID, min_top_score: float = 0.0
) -> float:
    """The one threshold for all tags that maximizes micro-F1 under the decision rule."""
    f1 = _global_f1s(scores, y, rank_matrix(scores), max_tags, grid, min_top_score)
    return float(grid[int(np.argmax(f1))])


def min_top_score(
    scores: np.ndarray, y: np.ndarray, max_tags: int, candidates: np.ndarray = MIN_TOP_SCORE_GRID
) -> float:
    """The minimum top score that maximizes micro-F1 together with its best global threshold (the smallest of
    equals: the rule suggests a tag as often as it can without losing F1).

    The best tag of a question that carries none of the model's tags is a sure false positive; a low best score
    says that is likely. Below the minimum, the best tag is suggested only if it reaches its own threshold.
    """
    ranks = rank_matrix(scores)
    best = [float(_global_f1s(scores, y, ranks, max_tags, THRESHOLD_GRID, float(m)).max()) for m in candidates]
    return float(candidates[int(np.argmax(best))])


def per_tag_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    max_tags: int,
    grid: np.ndarray = THRESHOLD_GRID,
    *,
    start: float | None = None,
    min_positives: int = MIN_POSITIVES_PER_TAG_THRESHOLD,
    rounds: int = 3,
    min_top_score: float = 0.0,
) -> np.ndarray:
    """Per-tag thresholds maximizing micro-F1 under the decision rule (coordinate ascent from the global one).
    Tags with fewer than ``min_positives`` positives keep the starting threshold."""
    tp, pp = _counts_by_threshold(scores, y, rank_matrix(scores), max_tags, grid, min_top_score)
    g = global_threshold(scores, y, max_tags, grid, min_top_score) if start is None else start
    k0 = int(np.argmin(np.abs(grid - g)))
    choice = np.full(scores.shape[1], k0)
    n_true = float(y.sum())
    active = np.flatnonzero(y.sum(axis=0) >= min_positives)
    cols = np.arange(scores.shape[1])
    for _ in range(rounds):
        changed = False
        for j in active:
            tp_rest = tp[cols, choice].sum() - tp[j, choice[j]]
            pp_rest = pp[cols, choice].sum() - pp[j, choice[j]]
            f1 = 2 * (tp_rest + tp[j]) / (pp_rest + pp[j] + n_true)
            best = int(np.argmax(f1))
            if f1[best] > f1[choice[j]] + 1e-12:
                choice[j] = best
                changed = True
        if not changed:
            break
    return np.asarray(grid[choice], dtype=np.float64)


def _rule_f1(
    scores: np.ndarray, y: np.ndarray, thresholds: np.ndarray, max_tags: int, min_top: float
) -> tuple[float, float]:
    """(2 TP, predictions + true) of the decision rule: summable over folds."""
    pred = decision_matrix(scores, thresholds, max_tags, min_top)
    return float(2 * (pred & y.astype(np.int8)).sum()), float(pred.sum() + y.sum())


def choose_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    *,
    max_tags: int,
    mode: str = "auto",
    seed: int = 0,
    min_top: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Thresholds for the decision rule, and its minimum top score, chosen on validation scores and labels.

    ``min_top`` None chooses the minimum top score (``min_top_score``), a number fixes it (0: always the best tag);
    the report's ``min_top_score`` is the one to use. ``auto`` then compares global vs per-tag thresholds by 2-fold
    cross-validation on these rows (each mode chosen on one half, scored on the other) and takes the better; the
    chosen mode is then fitted on all rows.
    """
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    if min_top is not None and not 0.0 <= min_top <= 1.0:
        raise ValueError(f"min_top_score must be in [0, 1], got {min_top}")
    m = min_top_score(scores, y, max_tags) if min_top is None else float(min_top)
    report: dict[str, Any] = {"min_top_score": m}
    if mode == "auto":
        halves = np.random.default_rng(seed).permutation(len(scores)) % 2
        sums = {"global": [0.0, 0.0], "per_tag": [0.0, 0.0]}
        for k in (0, 1):
            fit, held = halves != k, halves == k
            g = global_threshold(scores[fit], y[fit], max_tags, min_top_score=m)
            candidates = {
                "global": np.full(scores.shape[1], g),
                "per_tag": per_tag_thresholds(scores[fit], y[fit], max_tags, start=g, min_top_score=m),
            }
            for name, thr in candidates.items():
                num, den = _rule_f1(scores[held], y[held], thr, max_tags, m)
                sums[name][0] += num
                sums[name][1] += den
        cv = {name: num / den if den else 0.0 for name, (num, den) in sums.items()}
        report["threshold_cv_micro_f1"] = cv
        mode = "per_tag" if cv["per_tag"] > cv["global"] else "global"
    g = global_threshold(scores, y, max_tags, min_top_score=m)
    thresholds = (
        per_tag_thresholds(scores, y, max_tags, start=g, min_top_score=m)
        if mode == "per_tag"
        else np.full(scores.shape[1], g)
    )
    report.update(threshold_mode=mode, global_threshold=g)
    return thresholds, report

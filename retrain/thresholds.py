"""Decision thresholds: the global or per-tag thresholds that maximise micro-F1 under the model's decision rule
(the top tag always, then up to ``max_tags`` tags reaching their threshold), chosen on validation scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from tagwatch.scoring import decision_matrix, rank_matrix

THRESHOLD_MODES = ("auto", "global", "per_tag")
THRESHOLD_GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)
# Tags with fewer validation positives keep the global threshold: a per-tag one would fit noise.
MIN_POSITIVES_PER_TAG_THRESHOLD = 5


def _counts_by_threshold(
    scores: np.ndarray, y: np.ndarray, ranks: np.ndarray, max_tags: int, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each tag and grid threshold: (true positives, predictions) under the decision rule.

    Under the rule a tag is predicted for a question if it is ranked first (whatever its score), or if it is
    ranked below ``max_tags`` and reaches its threshold. Ranks do not depend on thresholds, so each tag's counts
    depend on its own threshold only: micro-F1 can be optimized one tag at a time, exactly.
    """
    forced = ranks == 0
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


def global_threshold(scores: np.ndarray, y: np.ndarray, max_tags: int, grid: np.ndarray = THRESHOLD_GRID) -> float:
    """The one threshold for all tags that maximizes micro-F1 under the decision rule."""
    tp, pp = _counts_by_threshold(scores, y, rank_matrix(scores), max_tags, grid)
    f1 = 2 * tp.sum(axis=0) / (pp.sum(axis=0) + y.sum())
    return float(grid[int(np.argmax(f1))])


def per_tag_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    max_tags: int,
    grid: np.ndarray = THRESHOLD_GRID,
    *,
    start: float | None = None,
    min_positives: int = MIN_POSITIVES_PER_TAG_THRESHOLD,
    rounds: int = 3,
) -> np.ndarray:
    """Per-tag thresholds maximizing micro-F1 under the decision rule (coordinate ascent from the global one).
    Tags with fewer than ``min_positives`` positives keep the starting threshold."""
    tp, pp = _counts_by_threshold(scores, y, rank_matrix(scores), max_tags, grid)
    g = global_threshold(scores, y, max_tags, grid) if start is None else start
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


def _rule_f1(scores: np.ndarray, y: np.ndarray, thresholds: np.ndarray, max_tags: int) -> tuple[float, float]:
    """(2 TP, predictions + true) of the decision rule: summable over folds."""
    pred = decision_matrix(scores, thresholds, max_tags)
    return float(2 * (pred & y.astype(np.int8)).sum()), float(pred.sum() + y.sum())


def choose_thresholds(
    scores: np.ndarray, y: np.ndarray, *, max_tags: int, mode: str = "auto", seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Thresholds for the decision rule, chosen on validation scores and labels.

    ``auto`` compares global vs per-tag thresholds by 2-fold cross-validation on these rows (each mode chosen on
    one half, scored on the other) and takes the better; the chosen mode is then fitted on all rows.
    """
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    report: dict[str, Any] = {}
    if mode == "auto":
        halves = np.random.default_rng(seed).permutation(len(scores)) % 2
        sums = {"global": [0.0, 0.0], "per_tag": [0.0, 0.0]}
        for k in (0, 1):
            fit, held = halves != k, halves == k
            g = global_threshold(scores[fit], y[fit], max_tags)
            candidates = {
                "global": np.full(scores.shape[1], g),
                "per_tag": per_tag_thresholds(scores[fit], y[fit], max_tags, start=g),
            }
            for name, thr in candidates.items():
                num, den = _rule_f1(scores[held], y[held], thr, max_tags)
                sums[name][0] += num
                sums[name][1] += den
        cv = {name: num / den if den else 0.0 for name, (num, den) in sums.items()}
        report["threshold_cv_micro_f1"] = cv
        mode = "per_tag" if cv["per_tag"] > cv["global"] else "global"
    g = global_threshold(scores, y, max_tags)
    thresholds = per_tag_thresholds(scores, y, max_tags, start=g) if mode == "per_tag" else np.full(scores.shape[1], g)
    report.update(threshold_mode=mode, global_threshold=g)
    return thresholds, report

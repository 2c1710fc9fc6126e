"""Calibration: turning the scorers' decision values into probabilities, per tag or one scale for all tags, and
the choice between the two on validation data.

Per-tag Platt scaling fits two numbers per tag on the validation part, a few dozen positives for most tags: it
follows each tag's noise, and its scores then cross one global threshold at points that do not compare across tags.
One Platt scaling for all tags keeps the SVMs' margins comparable (they share a loss and a regularization) and
fits two numbers on all validation pairs. Which is better is measured, not assumed: ``choose_calibration``
cross-validates both on the validation part under the full decision rule (bench/results/model_quality.md: one
scale for all won on every split, +1 point micro-F1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from retrain.scorers import fit_platt
from retrain.thresholds import global_threshold, min_top_score
from tagwatch.scoring import decision_matrix

CALIBRATION_MODES = ("auto", "per_tag", "global")


def fit_calibration(decisions: np.ndarray, y: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per tag (a, c) of ``sigmoid(a * d + c)``: fitted per column (``per_tag``) or one pair for all columns
    (``global``, repeated per tag)."""
    if mode == "per_tag":
        return fit_platt(decisions, y)
    if mode == "global":
        a, c = fit_platt(np.reshape(decisions, (-1, 1)), np.reshape(y, (-1, 1)))
        n_tags = decisions.shape[1]
        return np.full(n_tags, a[0]), np.full(n_tags, c[0])
    raise ValueError(f"calibration must be one of {CALIBRATION_MODES[1:]}, got {mode!r}")


def choose_calibration(
    decisions: np.ndarray,
    y: np.ndarray,
    *,
    max_tags: int,
    mode: str = "auto",
    seed: int = 0,
    min_top: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(a, c, report): the calibration of ``mode``; ``auto`` takes the mode whose micro-F1 is higher in 2-fold
    cross-validation on these rows (calibration, minimum top score unless ``min_top`` fixes it, and global
    threshold chosen on one half, the decision rule scored on the other), then fits it on all rows."""
    if mode not in CALIBRATION_MODES:
        raise ValueError(f"calibration must be one of {CALIBRATION_MODES}, got {mode!r}")
    report: dict[str, Any] = {}
    if mode == "auto":
        halves = np.random.default_rng(seed).permutation(len(decisions)) % 2
        cv: dict[str, float] = {}
        for candidate in CALIBRATION_MODES[1:]:
            hits = total = 0.0
            for k in (0, 1):
                fit, held = halves != k, halves == k
                a, c = fit_calibration(decisions[fit], y[fit], candidate)
                fit_scores = expit(decisions[fit] * a + c)
                top = min_top_score(fit_scores, y[fit], max_tags) if min_top is None else min_top
                g = global_threshold(fit_scores, y[fit], max_tags, min_top_score=top)
                pred = decision_matrix(expit(decisions[held] * a + c), g, max_tags, top)
                hits += 2.0 * float((pred.astype(bool) & y[held].astype(bool)).sum())
                total += float(pred.sum() + y[held].sum())
            cv[candidate] = hits / total if total else 0.0
        report["calibration_cv_micro_f1"] = cv
        mode = max(CALIBRATION_MODES[1:], key=lambda m: (cv[m], m == "global"))
    a, c = fit_calibration(decisions, y, mode)
    report["calibration"] = mode
    return a, c, report

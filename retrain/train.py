"""Training: fitting a ``TagModel`` whose every choice is made on its own training data.

``train_model`` splits the questions it is given into a fit part and a validation part (seeded). Vectorizers and
the per-tag linear scorers are fitted on the fit part; Platt calibration (per tag or one for all,
retrain/calibration.py), the decision thresholds and the minimum top score (retrain/thresholds.py) are chosen on
the validation part. Nothing else is seen, so hold-outs split off beforehand by ``retrain.split.split_holdouts`` stay
unseen.

The per-tag scorer (retrain/scorers.py) is a LinearSVC on NB-scaled features (NBSVM, Wang & Manning 2012); the
thresholds are chosen by retrain/thresholds.py. It gained +0.4 (random) and +2.7 (time
hold-out) micro-F1 points over the plain LinearSVC (bench/results/model_quality.md).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from retrain.calibration import CALIBRATION_MODES, choose_calibration
from retrain.scorers import fit_scorers, prune_weights
from retrain.thresholds import THRESHOLD_MODES, choose_thresholds
from tagwatch import progress
from tagwatch.data import Question
from tagwatch.model import ANALYZER_VERSION, FeatureSpace, LinearScorer, TagModel, default_blocks
from tagwatch.scoring import binarize, decision_matrix, micro_prf
from tagwatch.text import model_texts

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "C": 0.1,  # SVM regularization (0.1 and 0.2 validated alike; 0.5 and 1.0 lower)
    "nb_alpha": 0.1,  # smoothing of the NB log-ratios, in TF-IDF mass (0.03 and 0.3 validated lower)
    "title_weight": 0.4,
    "title_char_weight": 0.4,
    "body_weight": 1.0,
    "min_df": 2,
    "val_fraction": 0.15,  # of the training questions, for calibration and thresholds
    "weight_share": 0.2,  # of the non-zero weights kept (largest magnitudes): same F1, 1/5 of the size
    "threshold_mode": "auto",  # "global", "per_tag", or "auto" (the one that validates better)
    # Platt scaling "per_tag", one scale for all tags ("global"), or "auto" (the one that validates better).
    "calibration": "auto",
    # The best tag is suggested only if its score reaches this (or its threshold); "auto": chosen on validation,
    # 0: always (bench/results/model_quality.md: auto gave +2.3 / +0.7 points on the random / time hold-out).
    "min_top_score": "auto",
    "tol": 1e-3,
    "max_iter": 2000,
    "n_jobs": 2,  # worker processes fitting tags in parallel (same result for any value)
}
MIN_QUESTIONS = 20


def top_tags(tag_lists: Sequence[Sequence[str]], n: int) -> list[str]:
    """The ``n`` most frequent tags, most frequent first (ties by name)."""
    counts = Counter(t for tags in tag_lists for t in set(tags))
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _labels(questions: Sequence[Question], tags: Sequence[str]) -> np.ndarray:
    return binarize([q.tags for q in questions], tags)


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown training parameters {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    merged = {**DEFAULT_PARAMS, **params}
    if not 0 < merged["val_fraction"] < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {merged['val_fraction']}")
    if merged["C"] <= 0 or merged["nb_alpha"] < 0 or merged["min_df"] < 1 or merged["n_jobs"] < 1:
        raise ValueError(f"invalid training parameters: {merged}")
    if merged["threshold_mode"] not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {merged['threshold_mode']!r}")
    if merged["calibration"] not in CALIBRATION_MODES:
        raise ValueError(f"calibration must be one of {CALIBRATION_MODES}, got {merged['calibration']!r}")
    top = merged["min_top_score"]
    if top != "auto" and not (isinstance(top, int | float) and not isinstance(top, bool) and 0 <= top <= 1):
        raise ValueError(f"min_top_score must be 'auto' or a number in [0, 1], got {top!r}")
    return merged


def train_model(
    questions: Sequence[Question], *, top_n: int = 100, max_tags: int = 5, seed: int = 42, **params: Any
) -> TagModel:
    """Fit a TagModel on ``questions`` alone: vectorizers and scorers on a fit part, calibration and thresholds on
    a seeded validation part (``val_fraction``) of the same questions. ``params`` override ``DEFAULT_PARAMS``."""
    p = _check_params(params)
    if top_n < 1 or max_tags < 1:
        raise ValueError(f"top_n and max_tags must be >= 1, got {top_n} and {max_tags}")
    if len(questions) < MIN_QUESTIONS:
        raise ValueError(f"need at least {MIN_QUESTIONS} questions to train, got {len(questions)}")
    untagged = [q.id for q in questions if not q.tags]
    if untagged:
        raise ValueError(f"{len(untagged)} training questions have no tags (e.g. {untagged[:3]})")
    start = time.perf_counter()
    tags = top_tags([q.tags for q in questions], top_n)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(questions))
    n_val = max(1, round(len(questions) * p["val_fraction"]))
    val_rows, fit_rows = np.sort(order[:n_val]), np.sort(order[n_val:])

    with progress.task("computing features", total=None):
        texts = [model_texts(q) for q in questions]
        titles, bodies = [t for t, _ in texts], [b for _, b in texts]
        blocks = default_blocks(p["title_weight"], p["title_char_weight"], p["body_weight"])
        features = FeatureSpace.fit(titles, bodies, blocks, min_df=p["min_df"])
        x = features.transform(titles, bodies)
    y = _labels(questions, tags)
    t_features = time.perf_counter() - start

    dense_w, bias, not_converged = fit_scorers(
        x[fit_rows],
        y[fit_rows],
        C=p["C"],
        nb_alpha=p["nb_alpha"],
        tol=p["tol"],
        max_iter=p["max_iter"],
        seed=seed,
        n_jobs=p["n_jobs"],
    )
    weights = prune_weights(dense_w, p["weight_share"])
    del dense_w
    t_fit = time.perf_counter() - start - t_features

    # The scorer the model will use, so calibration sees exactly the decision values it will get.
    decisions = LinearScorer(weights, bias).decisions(x[val_rows])
    y_val = y[val_rows]
    fixed_top = None if p["min_top_score"] == "auto" else float(p["min_top_score"])
    calib_a, calib_b, calibration_report = choose_calibration(
        decisions, y_val, max_tags=max_tags, mode=p["calibration"], seed=seed, min_top=fixed_top
    )
    val_scores = expit(decisions * calib_a + calib_b)
    thresholds, threshold_report = choose_thresholds(
        val_scores,
        y_val,
        max_tags=max_tags,
        mode=p["threshold_mode"],
        seed=seed,
        min_top=fixed_top,
    )
    min_top = float(threshold_report["min_top_score"])
    _, _, val_f1 = micro_prf(y_val, decision_matrix(val_scores, thresholds, max_tags, min_top))
    info = {
        "n_questions": len(questions),
        "n_fit": len(fit_rows),
        "n_validation": len(val_rows),
        "n_features": features.n_features,
        "n_weights": int(weights.nnz),
        "validation_micro_f1": val_f1,
        "not_converged_tags": not_converged,
        "features_seconds": round(t_features, 2),
        "fit_seconds": round(t_fit, 2),
        "seconds": round(time.perf_counter() - start, 2),
        "tag_counts": {t: int(c) for t, c in zip(tags, y.sum(axis=0), strict=True)},
        **calibration_report,
        **threshold_report,
    }
    if not_converged:
        log.warning("%d of %d tag scorers did not converge in %d iterations", not_converged, len(tags), p["max_iter"])
    log.info(
        "trained on %d questions (%d tags) in %.1fs: validation micro-F1 %.3f (%s calibration, %s thresholds, "
        "minimum top score %.2f)",
        len(questions),
        len(tags),
        info["seconds"],
        val_f1,
        calibration_report["calibration"],
        threshold_report["threshold_mode"],
        min_top,
    )
    all_params = {"top_n": top_n, "max_tags": max_tags, "seed": seed, "analyzer_version": ANALYZER_VERSION, **p}
    return TagModel(
        tags=tags,
        features=features,
        weights=weights,
        bias=bias,
        calib_a=calib_a,
        calib_b=calib_b,
        thresholds=thresholds,
        max_tags=max_tags,
        min_top_score=min_top,
        params=all_params,
        info=info,
    )

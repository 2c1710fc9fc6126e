"""Training: hold-out splits, and fitting a ``TagModel`` whose every choice is made on its own training data.

``train_model`` splits the questions it is given into a fit part and a validation part (seeded). Vectorizers and
the per-tag linear scorers are fitted on the fit part; Platt calibration and the decision thresholds are chosen on
the validation part. Nothing else is seen, so hold-outs split off beforehand by ``split_holdouts`` stay unseen.

The per-tag scorer is a LinearSVC on NB-scaled features (NBSVM, Wang & Manning 2012): each feature is multiplied
by the log-ratio of its weight in the tag's questions vs the others before the SVM sees it; the ratio is folded
back into the weights afterwards, so scoring stays one ``X @ W.T``. It gained +0.4 (random) and +2.7 (time
hold-out) micro-F1 points over the plain LinearSVC (bench/results/model_quality.md).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from tagwatch.data import Question
from tagwatch.model import ANALYZER_VERSION, FeatureSpace, LinearScorer, TagModel, default_blocks
from tagwatch.scoring import binarize, decision_matrix, micro_prf, rank_matrix
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
    "tol": 1e-3,
    "max_iter": 2000,
    "n_jobs": 2,  # worker processes fitting tags in parallel (same result for any value)
}
THRESHOLD_MODES = ("auto", "global", "per_tag")
THRESHOLD_GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)
# Tags with fewer validation positives keep the global threshold: a per-tag one would fit noise.
MIN_POSITIVES_PER_TAG_THRESHOLD = 5
MIN_QUESTIONS = 20


# --- splitting ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Splits:
    train: list[Question]
    random_holdout: list[Question]
    time_holdout: list[Question]
    time_cutoff: datetime | None  # created_at of the oldest question in the time hold-out


def split_holdouts(
    questions: Sequence[Question], *, time_fraction: float = 0.2, random_fraction: float = 0.2, seed: int = 42
) -> Splits:
    """Two disjoint hold-outs and the training rest.

    Time hold-out: the newest ``time_fraction`` of the dated questions (by created_at, then id). Random hold-out:
    a seeded random ``random_fraction`` of the remaining, older questions (undated ones count as older). Each part
    keeps the input order.
    """
    if not 0 <= time_fraction < 1 or not 0 <= random_fraction < 1:
        raise ValueError(f"fractions must be in [0, 1): time {time_fraction}, random {random_fraction}")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"question ids must be unique (a duplicate could sit on both sides of a split): {dup!r}")
    dated = sorted(
        (i for i, q in enumerate(questions) if q.created_at is not None),
        key=lambda i: (questions[i].created_at, questions[i].id),
    )
    n_time = round(len(dated) * time_fraction)
    time_idx = set(dated[len(dated) - n_time :]) if n_time else set()
    rest = [i for i in range(len(questions)) if i not in time_idx]
    rng = np.random.default_rng(seed)
    n_random = round(len(rest) * random_fraction)
    random_idx = {rest[int(k)] for k in rng.permutation(len(rest))[:n_random]}
    cutoff = questions[dated[len(dated) - n_time]].created_at if n_time else None
    return Splits(
        train=[q for i, q in enumerate(questions) if i not in time_idx and i not in random_idx],
        random_holdout=[q for i, q in enumerate(questions) if i in random_idx],
        time_holdout=[q for i, q in enumerate(questions) if i in time_idx],
        time_cutoff=cutoff,
    )


# --- pure pieces of training ----------------------------------------------------------------------------------------
def top_tags(tag_lists: Sequence[Sequence[str]], n: int) -> list[str]:
    """The ``n`` most frequent tags, most frequent first (ties by name)."""
    counts = Counter(t for tags in tag_lists for t in set(tags))
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _log_ratio(pos: np.ndarray, total: np.ndarray, alpha: float) -> np.ndarray:
    p = pos + alpha
    q = (total - pos) + alpha
    return np.asarray(np.log(p / p.sum(axis=-1, keepdims=True)) - np.log(q / q.sum(axis=-1, keepdims=True)))


def nb_ratios(x: sp.csr_matrix, y: np.ndarray, alpha: float) -> np.ndarray:
    """Per tag (rows) and feature, log of the feature's share of the TF-IDF mass in the tag's questions over its
    share in the other questions, both smoothed by ``alpha``."""
    total = np.asarray(x.sum(axis=0)).ravel()
    pos = np.asarray((sp.csr_matrix(y.T.astype(np.float64)) @ x).toarray())  # tags x features
    return _log_ratio(pos, total, alpha)


def _fit_tag(
    x: sp.csr_matrix,
    labels: np.ndarray,
    total: np.ndarray,
    *,
    alpha: float,
    C: float,
    tol: float,
    max_iter: int,
    seed: int,
) -> tuple[np.ndarray | None, float, bool]:
    """One tag's NB-scaled LinearSVC: (weights or None for a constant scorer, intercept, converged)."""
    if labels.min() == labels.max():
        # A tag on every or no question of the fit part: a constant scorer, calibration does the rest.
        return None, (1.0 if labels[0] else -1.0), True
    if alpha > 0:
        ratio = _log_ratio(np.asarray(x.T @ labels.astype(np.float64)).ravel(), total, alpha)
    else:
        ratio = np.ones(x.shape[1])
    svc = LinearSVC(C=C, tol=tol, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svc.fit(x @ sp.diags(ratio), labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return svc.coef_[0] * ratio, float(svc.intercept_[0]), converged


def fit_scorers(
    x: sp.csr_matrix,
    y: np.ndarray,
    *,
    C: float,
    nb_alpha: float,
    tol: float,
    max_iter: int,
    seed: int,
    n_jobs: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One NB-scaled LinearSVC per tag; returns (W tags x features, b, number of tags that did not converge).

    ``n_jobs > 1`` fits tags in worker processes, not threads: liblinear draws from one process-wide random
    generator, so threads would make the result depend on scheduling. Any ``n_jobs`` gives the same bits.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    x.sort_indices()
    total = np.asarray(x.sum(axis=0)).ravel()
    fit_tag = partial(_fit_tag, alpha=nb_alpha, C=C, tol=tol, max_iter=max_iter, seed=seed)
    columns = [np.ascontiguousarray(y[:, j]) for j in range(y.shape[1])]
    if n_jobs > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, backend="loky")(delayed(fit_tag)(x, c, total) for c in columns)
    else:
        results = [fit_tag(x, c, total) for c in columns]
    weights = np.zeros((y.shape[1], x.shape[1]))
    bias = np.zeros(y.shape[1])
    not_converged = 0
    for j, (w, b, converged) in enumerate(results):
        if w is not None:
            weights[j] = w
        bias[j] = b
        not_converged += not converged
    return weights, bias, not_converged


def prune_weights(weights: np.ndarray, share: float) -> sp.csr_matrix:
    """Keep the ``share`` of non-zero weights with the largest magnitudes (over all tags), zero the rest."""
    if not 0 < share <= 1:
        raise ValueError(f"weight_share must be in (0, 1], got {share}")
    magnitudes = np.abs(weights[weights != 0])
    if share < 1 and magnitudes.size:
        cut = np.quantile(magnitudes, 1 - share)
        weights = np.where(np.abs(weights) >= cut, weights, 0.0)
    return sp.csr_matrix(weights)


def fit_platt(
    decisions: np.ndarray, y: np.ndarray, *, max_iter: int = 100, ridge: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Per column, (a, c) of ``sigmoid(a * d + c)`` fitted to 0/1 labels by Newton's method.

    Uses Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)) and a tiny ridge so that a column with no
    positive, or a constant decision, still gets a finite, sensible calibration (the prior) instead of failing.
    """
    d = np.asarray(decisions, dtype=np.float64)
    n, m = d.shape
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = n - n_pos
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a = np.zeros(m)
    c = np.log((n_pos + 1) / (n_neg + 1))

    def loss(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        z = d * a + c
        return np.asarray((np.logaddexp(0, z) - t * z).sum(axis=0) + 0.5 * ridge * (a * a + c * c))

    f = loss(a, c)
    for _ in range(max_iter):
        p = expit(d * a + c)
        w = p * (1 - p)
        ga = ((p - t) * d).sum(axis=0) + ridge * a
        gc = (p - t).sum(axis=0) + ridge * c
        if max(np.abs(ga).max(), np.abs(gc).max()) < 1e-7 * max(n, 1):
            break
        haa = (w * d * d).sum(axis=0) + ridge
        hac = (w * d).sum(axis=0)
        hcc = w.sum(axis=0) + ridge
        det = haa * hcc - hac * hac
        da = -(hcc * ga - hac * gc) / det
        dc = -(haa * gc - hac * ga) / det
        step = np.ones(m)
        slope = ga * da + gc * dc
        for _ in range(40):  # backtracking, per column
            f_new = loss(a + step * da, c + step * dc)
            ok = f_new <= f + 1e-4 * step * slope
            if ok.all():
                break
            step = np.where(ok, step, step / 2)
        else:
            step = np.where(ok, step, 0.0)
        a, c = a + step * da, c + step * dc
        f = loss(a, c)
    return a, c


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


# --- training -------------------------------------------------------------------------------------------------------
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
    calib_a, calib_b = fit_platt(decisions, y_val)
    val_scores = expit(decisions * calib_a + calib_b)
    thresholds, threshold_report = choose_thresholds(
        val_scores, y_val, max_tags=max_tags, mode=p["threshold_mode"], seed=seed
    )
    _, _, val_f1 = micro_prf(y_val, decision_matrix(val_scores, thresholds, max_tags))
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
        **threshold_report,
    }
    if not_converged:
        log.warning("%d of %d tag scorers did not converge in %d iterations", not_converged, len(tags), p["max_iter"])
    log.info(
        "trained on %d questions (%d tags) in %.1fs: validation micro-F1 %.3f (%s thresholds)",
        len(questions),
        len(tags),
        info["seconds"],
        val_f1,
        threshold_report["threshold_mode"],
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
        params=all_params,
        info=info,
    )

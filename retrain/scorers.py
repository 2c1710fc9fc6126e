"""The per-tag scorers and their calibration: NB-scaled LinearSVCs (NBSVM, Wang & Manning 2012), pruned, then
Platt-calibrated.

Each feature is multiplied by the log-ratio of its weight in the tag's questions vs the others before the SVM sees
it; the ratio is folded back into the weights afterwards, so scoring stays one ``X @ W.T``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from tagwatch import progress


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
    results: Iterable[tuple[np.ndarray | None, float, bool]]
    if n_jobs > 1:
        from joblib import Parallel, delayed

        # In order, each as soon as it and those before it are done: the progress moves while workers fit.
        results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(fit_tag)(x, c, total) for c in columns
        )
    else:
        results = (fit_tag(x, c, total) for c in columns)
    weights = np.zeros((y.shape[1], x.shape[1]))
    bias = np.zeros(y.shape[1])
    not_converged = 0
    with progress.task("fitting tag scorers", total=len(columns)) as fitted:
        for j, (w, b, converged) in enumerate(results):
            if w is not None:
                weights[j] = w
            bias[j] = b
            not_converged += not converged
            fitted.advance()
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

"""The per-tag scorers and their calibration: NB ratios, pruning, Platt scaling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit

from retrain.scorers import fit_platt, nb_ratios, prune_weights


def test_nb_ratios_by_hand() -> None:
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    y = np.array([[1], [0], [0]])
    r = nb_ratios(x, y, alpha=1.0)
    # positives: p = [1+1, 0+1] -> [2/3, 1/3]; negatives: q = [1+1, 2+1] -> [2/5, 3/5]
    assert r[0] == pytest.approx(np.log(np.array([2 / 3, 1 / 3]) / np.array([2 / 5, 3 / 5])))


def test_prune_keeps_the_largest_weights() -> None:
    w = np.array([[0.1, -5.0, 0.0, 2.0], [0.0, 0.3, -0.2, 4.0]])
    pruned = prune_weights(w, 0.5).toarray()
    assert pruned.tolist() == [[0.0, -5.0, 0.0, 2.0], [0.0, 0.0, 0.0, 4.0]]
    assert np.array_equal(prune_weights(w, 1.0).toarray(), w)
    with pytest.raises(ValueError, match="weight_share"):
        prune_weights(w, 0.0)


def test_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(size=(20_000, 2))
    y = (rng.random((20_000, 2)) < expit(d * np.array([2.0, 0.5]) + np.array([-1.0, 0.3]))).astype(np.int8)
    a, c = fit_platt(d, y)
    assert a == pytest.approx([2.0, 0.5], abs=0.08)
    assert c == pytest.approx([-1.0, 0.3], abs=0.08)


def test_platt_survives_degenerate_columns() -> None:
    d = np.column_stack([np.linspace(-1, 1, 50), np.zeros(50), np.linspace(-1, 1, 50)])
    y = np.zeros((50, 3), dtype=np.int8)
    y[:, 1] = 1  # all positive, constant decision
    a, c = fit_platt(d, y)
    p = expit(d * a + c)
    assert np.all(np.isfinite(a))
    assert np.all(np.isfinite(c))
    assert p[:, 0].max() < 0.1  # no positive: a small probability
    assert p[:, 1].min() > 0.9

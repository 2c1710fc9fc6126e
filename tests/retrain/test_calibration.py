"""Calibration per tag or for all tags, and the choice between them on validation data."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.calibration import choose_calibration, fit_calibration
from retrain.scorers import fit_platt


def _margins(rng: np.random.Generator, n: int, n_tags: int, rate: float, offsets: np.ndarray) -> tuple:
    y = (rng.random((n, n_tags)) < rate).astype(np.int8)
    d = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 1.0, (n, n_tags)) + offsets
    return d, y


def test_global_calibration_is_one_scale_for_every_tag() -> None:
    rng = np.random.default_rng(0)
    d, y = _margins(rng, 500, 4, 0.2, np.zeros(4))
    a, c = fit_calibration(d, y, "global")
    assert len(set(a.tolist())) == 1
    assert len(set(c.tolist())) == 1
    a1, c1 = fit_platt(d.reshape(-1, 1), y.reshape(-1, 1))
    assert a[0] == pytest.approx(a1[0])
    assert c[0] == pytest.approx(c1[0])
    a2, c2 = fit_calibration(d, y, "per_tag")
    assert np.array_equal(a2, fit_platt(d, y)[0])
    assert np.array_equal(c2, fit_platt(d, y)[1])
    with pytest.raises(ValueError, match="calibration"):
        fit_calibration(d, y, "isotonic")


def test_auto_takes_one_scale_when_tags_share_it_and_have_few_positives() -> None:
    rng = np.random.default_rng(1)
    d, y = _margins(rng, 400, 40, 0.03, np.zeros(40))  # ~12 positives a tag: per-tag fits follow noise
    _, _, report = choose_calibration(d, y, max_tags=3, mode="auto", seed=0)
    assert report["calibration"] == "global"
    cv = report["calibration_cv_micro_f1"]
    assert cv["global"] >= cv["per_tag"]


def test_auto_takes_per_tag_scales_when_tags_really_differ() -> None:
    rng = np.random.default_rng(2)
    offsets = np.array([-3.0, 0.0, 3.0, 1.5])  # margins on very different scales, many positives each
    d, y = _margins(rng, 3000, 4, 0.3, offsets)
    _, c, report = choose_calibration(d, y, max_tags=3, mode="auto", seed=0)
    assert report["calibration"] == "per_tag"
    assert report["calibration_cv_micro_f1"]["per_tag"] > report["calibration_cv_micro_f1"]["global"]
    assert len(set(np.round(c, 6).tolist())) == 4
    with pytest.raises(ValueError, match="calibration"):
        choose_calibration(d, y, max_tags=3, mode="best")

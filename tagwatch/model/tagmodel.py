"""The tag model: TF-IDF features of title and body, one linear scorer per tag, calibrated scores, a decision rule.

All tags are scored at once from one stacked weight matrix (``X @ W.T + b``, no loop over per-tag estimators),
then calibrated per tag by Platt scaling (``sigmoid(a * d + c)``), so a score estimates the probability that the
tag is right, and one threshold per tag (or one for all) decides.
Training lives in ``retrain.train``; this package holds what a fitted model is (``tagmodel``), its features
(``features``, ``vocabulary``, ``analyzers``, ``blocks``), how it scores (``scorer``) and how it is stored
(``persistence``: JSON + ``.npz``, no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from tagwatch.model import persistence
from tagwatch.model.features import FeatureSpace, ModelFormatError
from tagwatch.model.scorer import LinearScorer
from tagwatch.text import HasText, model_texts


class TagModel:
    """A fitted tag model. ``tags`` are ordered by training frequency, most frequent first."""

    def __init__(
        self,
        *,
        tags: Sequence[str],
        features: FeatureSpace,
        weights: sp.spmatrix | np.ndarray,
        bias: np.ndarray,
        calib_a: np.ndarray,
        calib_b: np.ndarray,
        thresholds: np.ndarray,
        max_tags: int,
        min_top_score: float = 0.0,
        params: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> None:
        n = len(tags)
        if n == 0 or len(set(tags)) != n:
            raise ValueError("tags must be a non-empty list of distinct tag names")
        w = sp.csr_matrix(weights, dtype=np.float64)
        if w.shape != (n, features.n_features):
            raise ValueError(f"weights must be {n} x {features.n_features} (tags x features), got {w.shape}")
        arrays = {"bias": bias, "calib_a": calib_a, "calib_b": calib_b, "thresholds": thresholds}
        for name, arr in arrays.items():
            if np.shape(arr) != (n,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be {n} finite numbers, got shape {np.shape(arr)}")
        if max_tags < 1:
            raise ValueError(f"max_tags must be >= 1, got {max_tags}")
        if not 0.0 <= min_top_score <= 1.0:
            raise ValueError(f"min_top_score must be in [0, 1], got {min_top_score}")
        self.tags: list[str] = list(tags)
        self.features = features
        self.weights: sp.csr_matrix = w
        self.bias = np.asarray(bias, dtype=np.float64)
        self.calib_a = np.asarray(calib_a, dtype=np.float64)
        self.calib_b = np.asarray(calib_b, dtype=np.float64)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.max_tags = int(max_tags)
        self.min_top_score = float(min_top_score)
        self.params: dict[str, Any] = dict(params or {})
        self.info: dict[str, Any] = dict(info or {})
        self.version = version
        self._scorer = LinearScorer(w, self.bias)
        self._tag_index = {t: j for j, t in enumerate(self.tags)}
        self._feature_names: np.ndarray | None = None

    # --- scoring --------------------------------------------------------------------------------------------------
    def transform(self, items: Sequence[HasText]) -> sp.csr_matrix:
        """The feature matrix (n x n_features) of the items' cleaned title and body."""
        texts = [model_texts(item) for item in items]
        return self.features.transform([t for t, _ in texts], [b for _, b in texts])

    def decision_function(self, x: sp.spmatrix) -> np.ndarray:
        """Raw linear scores ``X @ W.T + b`` (n x n_tags) of a feature matrix."""
        return self._scorer.decisions(x)

    def calibrate(self, decisions: np.ndarray) -> np.ndarray:
        """Per-tag Platt scaling of decision values into probabilities."""
        return np.asarray(expit(decisions * self.calib_a + self.calib_b))

    def predict_scores(self, items: Sequence[HasText]) -> np.ndarray:
        """Calibrated probabilities (n x n_tags), columns in ``tags`` order."""
        decisions = np.empty((len(items), len(self.tags)))
        for i, item in enumerate(items):
            decisions[i] = self._scorer.row(*self.features.encode(*model_texts(item)))
        return self.calibrate(decisions)

    def decide(self, scores: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per question, the chosen (tag, score) pairs, best first: the best tag if its score reaches its threshold
        or ``min_top_score`` (0: always), then the next ones (up to ``max_tags`` in all) whose score reaches their
        threshold. None when even the best tag is below both: no tag of the model fits the question. Same rule as
        ``scoring.decision_matrix``."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != len(self.tags):
            raise ValueError(f"scores must be (n, {len(self.tags)}), got shape {scores.shape}")
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.max_tags]
        best = np.take_along_axis(scores, order, axis=1)
        passing = best >= self.thresholds[order]
        passing[:, 0] |= best[:, 0] >= self.min_top_score
        tags = self.tags
        return [
            [(tags[j], float(v)) for j, v, ok in zip(o.tolist(), b.tolist(), p.tolist(), strict=True) if ok]
            for o, b, p in zip(order, best, passing, strict=True)
        ]

    def predict(self, items: Sequence[HasText]) -> list[list[tuple[str, float]]]:
        """``decide(predict_scores(items))``."""
        return self.decide(self.predict_scores(items))

    # --- introspection --------------------------------------------------------------------------------------------
    def feature_names(self) -> np.ndarray:
        """Names of the feature columns (``block:term``), in ``transform``'s column order."""
        if self._feature_names is None:
            names = self.features.feature_names()
            names.flags.writeable = False  # shared by every caller
            self._feature_names = names
        return self._feature_names

    def top_features(self, tag: str, n: int = 20) -> list[tuple[str, float]]:
        """The ``n`` features with the largest (most positive) weights for ``tag``, largest first."""
        j = self._tag_index.get(tag)
        if j is None:
            raise KeyError(f"unknown tag {tag!r}: not in the model's {len(self.tags)} tags")
        row = self.weights.getrow(j)
        idx, vals = row.indices, row.data
        order = np.lexsort((idx, -vals))[: max(n, 0)]
        names = self.feature_names()
        return [(str(names[idx[k]]), float(vals[k])) for k in order]

    # --- persistence ----------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the model as JSON + ``.npz`` files into ``directory`` (created if missing)."""
        meta = {
            "tags": self.tags,
            "max_tags": self.max_tags,
            "min_top_score": self.min_top_score,
            "blocks": self.features.describe(),
            "params": self.params,
            "info": self.info,
        }
        arrays: dict[str, np.ndarray] = {
            "bias": self.bias,
            "calib_a": self.calib_a,
            "calib_b": self.calib_b,
            "thresholds": self.thresholds,
            **self.features.idfs(),
        }
        persistence.write(
            directory,
            persistence.SavedModel(
                meta=meta, vocabularies=self.features.vocabularies(), arrays=arrays, weights=self.weights
            ),
        )

    @classmethod
    def load(cls, directory: Path) -> TagModel:
        """Read a model written by ``save``; ``ModelFormatError`` if it is incomplete or of another format."""
        saved = persistence.read(directory)
        meta, arrays = saved.meta, saved.arrays
        features = FeatureSpace.restore(meta["blocks"], saved.vocabularies, arrays)
        try:
            return cls(
                tags=meta["tags"],
                features=features,
                weights=saved.weights,
                bias=arrays["bias"],
                calib_a=arrays["calib_a"],
                calib_b=arrays["calib_b"],
                thresholds=arrays["thresholds"],
                max_tags=int(meta["max_tags"]),
                # Saved before the rule had it: the best tag always.
                min_top_score=float(meta.get("min_top_score", 0.0)),
                params=meta.get("params") or {},
                info=meta.get("info") or {},
            )
        except (KeyError, ValueError) as exc:
            raise ModelFormatError(f"{directory}: inconsistent model: {exc}") from exc

"""The tag model: TF-IDF features of title and body, one linear scorer per tag, calibrated scores, a decision rule.

All tags are scored at once from one stacked weight matrix (``X @ W.T + b``, no loop over per-tag estimators),
then calibrated per tag by Platt scaling (``sigmoid(a * d + c)``), so a score estimates the probability that the
tag is right, and one threshold per tag (or one for all) decides.
Training lives in ``retrain.train``; this module holds what a fitted model is, how it scores, and how it is
stored (JSON + ``.npz``, no pickle: a model directory can be loaded without running code from it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer

from tagwatch.text import HasText, model_texts, word_features

__all__ = [
    "ANALYZER_VERSION",
    "Block",
    "FeatureSpace",
    "HasText",
    "LinearScorer",
    "ModelFormatError",
    "TagModel",
    "default_blocks",
]

FORMAT = "tagwatch.TagModel"
FORMAT_VERSION = 1
# Bump when tagwatch.text's cleaning or word_features change the terms a text yields: a model saved by an older
# version was fitted on other terms and would score silently worse, so loading it fails instead.
ANALYZER_VERSION = 2
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
ARRAYS_FILE = "arrays.npz"
WEIGHTS_FILE = "weights.npz"

FIELDS = ("title", "body")
KINDS = ("words", "chars")
CHAR_NGRAMS = (2, 5)


class ModelFormatError(ValueError):
    """A model directory that is missing files, is of another format version, or is inconsistent."""


@dataclass(frozen=True, slots=True)
class Block:
    """One group of features: a TF-IDF vectorizer over one field, its rows scaled by ``weight``."""

    name: str
    field: str  # "title" | "body"
    kind: str  # "words" (word_features: tokens, pairs, dotted-name parts) | "chars" (char 2-5-grams in words)
    weight: float

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"block {self.name!r}: field must be one of {FIELDS}, got {self.field!r}")
        if self.kind not in KINDS:
            raise ValueError(f"block {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"block {self.name!r}: weight must be a positive number, got {self.weight!r}")


def default_blocks(title_weight: float = 0.4, title_char_weight: float = 0.4, body_weight: float = 1.0) -> list[Block]:
    # A separate title vectorizer lets the title count on its own; at 0.4 it validated better than 1.0 or 1.5
    # (the body, code included, carries more of the signal than its length-normalized share suggests).
    return [
        Block("title_words", "title", "words", title_weight),
        Block("title_chars", "title", "chars", title_char_weight),
        Block("body_words", "body", "words", body_weight),
    ]


def _vectorizer(kind: str, *, min_df: int | float = 1, vocabulary: list[str] | None = None) -> TfidfVectorizer:
    if kind == "words":
        return TfidfVectorizer(analyzer=word_features, sublinear_tf=True, min_df=min_df, vocabulary=vocabulary)
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True, min_df=min_df, vocabulary=vocabulary
    )


class FeatureSpace:
    """The fitted vectorizers of all blocks; ``transform`` stacks their weighted TF-IDF matrices side by side.

    scikit-learn fits the vocabularies and idf; the transform is done here, one question at a time, with the same
    formula as ``TfidfVectorizer(sublinear_tf=True)`` (tf -> 1 + log tf, times idf, L2-normalized per block):
    sklearn's transform costs ~1 ms of fixed overhead per call and block, ten times the work for one question,
    and going row by row makes a question's features the same bits alone or in any batch.
    """

    def __init__(self, blocks: Sequence[Block], vectorizers: Sequence[TfidfVectorizer]) -> None:
        if len(blocks) != len(vectorizers) or not blocks:
            raise ValueError("a feature space needs one fitted vectorizer per block, and at least one block")
        if len({b.name for b in blocks}) != len(blocks):
            raise ValueError(f"block names must be unique: {[b.name for b in blocks]}")
        self.blocks = list(blocks)
        self.vectorizers = list(vectorizers)
        self.sizes = [len(v.vocabulary_) for v in self.vectorizers]
        self.n_features = sum(self.sizes)
        self._offsets = np.cumsum([0, *self.sizes[:-1]]).tolist()
        self._vocabularies: list[dict[str, int]] = [v.vocabulary_ for v in self.vectorizers]
        self._idfs = [np.asarray(v.idf_, dtype=np.float64) for v in self.vectorizers]
        self._analyzers = [v.build_analyzer() for v in self.vectorizers]
        self._field_index = [FIELDS.index(b.field) for b in self.blocks]

    @classmethod
    def fit(cls, titles: Sequence[str], bodies: Sequence[str], blocks: Sequence[Block], *, min_df: int) -> FeatureSpace:
        """Fit one vectorizer per block (vocabulary and idf) on the cleaned training texts."""
        fields = {"title": titles, "body": bodies}
        vectorizers = []
        for block in blocks:
            docs = fields[block.field]
            vec = _vectorizer(block.kind, min_df=min_df)
            try:
                vec.fit(docs)
            except ValueError as exc:  # e.g. an empty vocabulary: no text at all in that field
                raise ValueError(f"cannot fit the {block.name!r} features on {len(docs)} texts: {exc}") from exc
            vectorizers.append(vec)
        return cls(blocks, vectorizers)

    def encode(self, title: str, body: str) -> tuple[np.ndarray, np.ndarray]:
        """One question's non-zero features: (column indices ascending, values)."""
        texts = (title, body)
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for k, block in enumerate(self.blocks):
            # Counter counts in C; each distinct term is then looked up once, also in C (map), -1 if unknown.
            counts = Counter(self._analyzers[k](texts[self._field_index[k]]))
            if not counts:
                continue
            idx = np.fromiter(map(self._vocabularies[k].get, counts, repeat(-1)), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            known = idx >= 0
            if not known.any():
                continue
            idx, tf = idx[known], tf[known]
            order = np.argsort(idx)
            idx, tf = idx[order], tf[order]
            v = (np.log(tf) + 1.0) * self._idfs[k][idx]
            v *= block.weight / np.sqrt(np.square(v).sum())
            cols.append(idx + self._offsets[k])
            vals.append(v)
        if not cols:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(cols), np.concatenate(vals)

    def transform(self, titles: Sequence[str], bodies: Sequence[str]) -> sp.csr_matrix:
        """The feature matrix (n x n_features) of cleaned titles and bodies."""
        if len(titles) != len(bodies):
            raise ValueError(f"{len(titles)} titles but {len(bodies)} bodies")
        rows = [self.encode(t, b) for t, b in zip(titles, bodies, strict=True)]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(c) for c, _ in rows])
        indices = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features))

    def feature_names(self) -> np.ndarray:
        """Column names, prefixed by block (``title_words:python``, ``body_words:import pandas``)."""
        return np.concatenate(
            [
                np.asarray([f"{block.name}:{term}" for term in vec.get_feature_names_out()], dtype=object)
                for block, vec in zip(self.blocks, self.vectorizers, strict=True)
            ]
        )

    # --- persistence ----------------------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": b.name, "field": b.field, "kind": b.kind, "weight": b.weight, "n_features": n}
            for b, n in zip(self.blocks, self.sizes, strict=True)
        ]

    def vocabularies(self) -> dict[str, list[str]]:
        return {
            b.name: [str(t) for t in v.get_feature_names_out()]
            for b, v in zip(self.blocks, self.vectorizers, strict=True)
        }

    def idfs(self) -> dict[str, np.ndarray]:
        return {
            f"idf_{b.name}": np.asarray(v.idf_, dtype=np.float64)
            for b, v in zip(self.blocks, self.vectorizers, strict=True)
        }

    @classmethod
    def restore(
        cls, described: list[dict[str, Any]], vocabularies: dict[str, list[str]], arrays: dict[str, np.ndarray]
    ) -> FeatureSpace:
        blocks, vectorizers = [], []
        for d in described:
            block = Block(str(d["name"]), str(d["field"]), str(d["kind"]), float(d["weight"]))
            terms = vocabularies.get(block.name)
            idf = arrays.get(f"idf_{block.name}")
            if terms is None or idf is None:
                raise ModelFormatError(f"block {block.name!r}: vocabulary or idf missing")
            if len(terms) != len(idf) or len(terms) != int(d["n_features"]):
                raise ModelFormatError(
                    f"block {block.name!r}: {len(terms)} terms, {len(idf)} idf values, {d['n_features']} expected"
                )
            vec = _vectorizer(block.kind, vocabulary=terms)
            vec.idf_ = idf
            blocks.append(block)
            vectorizers.append(vec)
        return cls(blocks, vectorizers)


class LinearScorer:
    """``X @ W.T + b`` for all tags at once, row by row, fast for one question.

    W is sparse after pruning, yet the features a question has are mostly frequent ones that carry a weight for
    nearly every tag: a question's row touches ~20k weights. A scipy sparse product spends ~0.2 ms of overhead on
    that, more than the rest of the prediction together. So the weights of features that many tags use are kept
    as a dense block (rows gathered with one indexing), and the long tail stays sparse (gathered and summed with
    ``bincount``). Each row is computed on its own, so a question scores the same bits alone or in a batch.
    """

    # Features with at least this many non-zero tag weights go into the dense block (~30k features at 100 tags).
    DENSE_MIN_TAGS = 16

    def __init__(self, weights: sp.csr_matrix, bias: np.ndarray) -> None:
        self.n_tags, self.n_features = weights.shape
        self.bias = np.asarray(bias, dtype=np.float64)
        by_feature = sp.csr_matrix(weights.T, dtype=np.float64)
        by_feature.sort_indices()
        per_feature = np.diff(by_feature.indptr)
        dense = per_feature >= min(self.DENSE_MIN_TAGS, self.n_tags)
        self._dense_pos = np.full(self.n_features, -1, dtype=np.int64)
        self._dense_pos[dense] = np.arange(int(dense.sum()))
        self._dense = np.ascontiguousarray(by_feature[np.flatnonzero(dense)].toarray())
        tail = sp.csr_matrix(sp.diags((~dense).astype(np.float64)) @ by_feature)
        tail.eliminate_zeros()
        self._tail_ptr, self._tail_tags, self._tail_weights = tail.indptr, tail.indices, tail.data

    def row(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Decision values (n_tags,) of one question's features (column indices, values)."""
        pos = self._dense_pos[cols]
        in_dense = pos >= 0
        # einsum, not BLAS: its summation order does not depend on memory alignment, so results are reproducible.
        out = np.einsum("i,ij->j", vals[in_dense], np.take(self._dense, pos[in_dense], axis=0)) + self.bias
        tail_cols, tail_vals = cols[~in_dense], vals[~in_dense]
        starts = self._tail_ptr[tail_cols]
        lengths = self._tail_ptr[tail_cols + 1] - starts
        total = int(lengths.sum())
        if total:
            at = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
            out += np.bincount(
                self._tail_tags[at],
                weights=self._tail_weights[at] * np.repeat(tail_vals, lengths),
                minlength=self.n_tags,
            )
        return np.asarray(out)

    def decisions(self, x: sp.spmatrix) -> np.ndarray:
        """Decision values (n x n_tags) of a feature matrix."""
        x = sp.csr_matrix(x, dtype=np.float64)
        if x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got {x.shape[1]}")
        out = np.empty((x.shape[0], self.n_tags))
        for i in range(x.shape[0]):
            lo, hi = x.indptr[i], x.indptr[i + 1]
            out[i] = self.row(x.indices[lo:hi].astype(np.int64), x.data[lo:hi])
        return out


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
        self.tags: list[str] = list(tags)
        self.features = features
        self.weights: sp.csr_matrix = w
        self.bias = np.asarray(bias, dtype=np.float64)
        self.calib_a = np.asarray(calib_a, dtype=np.float64)
        self.calib_b = np.asarray(calib_b, dtype=np.float64)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.max_tags = int(max_tags)
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
        """Per question, the chosen (tag, score) pairs, best first: the best tag always, then the next ones (up
        to ``max_tags`` in all) whose score reaches their threshold. Same rule as ``scoring.decision_matrix``."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != len(self.tags):
            raise ValueError(f"scores must be (n, {len(self.tags)}), got shape {scores.shape}")
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.max_tags]
        best = np.take_along_axis(scores, order, axis=1)
        passing = best >= self.thresholds[order]
        passing[:, :1] = True
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
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "analyzer_version": ANALYZER_VERSION,
            "tags": self.tags,
            "max_tags": self.max_tags,
            "blocks": self.features.describe(),
            "params": self.params,
            "info": self.info,
        }
        (directory / MODEL_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
        (directory / VOCABULARY_FILE).write_text(
            json.dumps(self.features.vocabularies(), ensure_ascii=False), encoding="utf-8"
        )
        arrays: dict[str, Any] = {
            "bias": self.bias,
            "calib_a": self.calib_a,
            "calib_b": self.calib_b,
            "thresholds": self.thresholds,
            **self.features.idfs(),
        }
        np.savez_compressed(directory / ARRAYS_FILE, allow_pickle=False, **arrays)
        sp.save_npz(directory / WEIGHTS_FILE, self.weights, compressed=True)

    @classmethod
    def load(cls, directory: Path) -> TagModel:
        """Read a model written by ``save``; ``ModelFormatError`` if it is incomplete or of another format."""
        directory = Path(directory)
        missing = [f for f in (MODEL_FILE, VOCABULARY_FILE, ARRAYS_FILE, WEIGHTS_FILE) if not (directory / f).is_file()]
        if missing:
            raise ModelFormatError(f"{directory} is not a saved TagModel: missing {missing}")
        try:
            meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
            vocabularies = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFormatError(f"{directory}: unreadable model files: {exc}") from exc
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{directory}: format {meta.get('format')!r} v{meta.get('format_version')!r}, "
                f"this code reads {FORMAT!r} v{FORMAT_VERSION}"
            )
        if meta.get("analyzer_version") != ANALYZER_VERSION:
            raise ModelFormatError(
                f"{directory}: fitted with text analyzer v{meta.get('analyzer_version')}, this code has "
                f"v{ANALYZER_VERSION}: the terms would differ, retrain the model"
            )
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        weights = sp.load_npz(directory / WEIGHTS_FILE)
        features = FeatureSpace.restore(meta["blocks"], vocabularies, arrays)
        try:
            return cls(
                tags=meta["tags"],
                features=features,
                weights=weights,
                bias=arrays["bias"],
                calib_a=arrays["calib_a"],
                calib_b=arrays["calib_b"],
                thresholds=arrays["thresholds"],
                max_tags=int(meta["max_tags"]),
                params=meta.get("params") or {},
                info=meta.get("info") or {},
            )
        except (KeyError, ValueError) as exc:
            raise ModelFormatError(f"{directory}: inconsistent model: {exc}") from exc

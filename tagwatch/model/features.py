"""The feature space: per block a vocabulary and its idf; ``encode`` turns one question into TF-IDF features.

scikit-learn fits the vocabularies and idf (``FeatureSpace.fit``, training only: it imports scikit-learn when
called); the transform is done here, one question at a time, with the same formula as
``TfidfVectorizer(sublinear_tf=True)`` (tf -> 1 + log tf, times idf, L2-normalized per block): sklearn's transform
costs ~1 ms of fixed overhead per call and block, ten times the work for one question, and going row by row makes a
question's features the same bits alone or in any batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from tagwatch.model.analyzers import analyzer
from tagwatch.model.blocks import CHAR_NGRAMS, FIELDS, Block
from tagwatch.model.vocabulary import Vocabulary

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer


class ModelFormatError(ValueError):
    """A model directory that is missing files, is of another format version, or is inconsistent."""


def _vectorizer(kind: str, *, min_df: int | float = 1) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind == "words":
        return TfidfVectorizer(analyzer=analyzer("words"), sublinear_tf=True, min_df=min_df)
    return TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True, min_df=min_df)


class FeatureSpace:
    """The fitted vocabularies and idf of all blocks; ``transform`` stacks their weighted TF-IDF matrices side by
    side."""

    def __init__(self, blocks: Sequence[Block], vocabularies: Sequence[Vocabulary], idfs: Sequence[np.ndarray]) -> None:
        if not (len(blocks) == len(vocabularies) == len(idfs)) or not blocks:
            raise ValueError("a feature space needs one vocabulary and idf per block, and at least one block")
        if len({b.name for b in blocks}) != len(blocks):
            raise ValueError(f"block names must be unique: {[b.name for b in blocks]}")
        for block, vocabulary, idf in zip(blocks, vocabularies, idfs, strict=True):
            if len(vocabulary) != len(idf):
                raise ValueError(f"block {block.name!r}: {len(vocabulary)} terms but {len(idf)} idf values")
        self.blocks = list(blocks)
        self.vocabs = list(vocabularies)
        self.sizes = [len(v) for v in self.vocabs]
        self.n_features = sum(self.sizes)
        self._offsets = np.cumsum([0, *self.sizes[:-1]]).tolist()
        self._idfs = [np.asarray(idf, dtype=np.float64) for idf in idfs]
        self._analyzers = [analyzer(b.kind) for b in self.blocks]
        self._field_index = [FIELDS.index(b.field) for b in self.blocks]

    @classmethod
    def fit(cls, titles: Sequence[str], bodies: Sequence[str], blocks: Sequence[Block], *, min_df: int) -> FeatureSpace:
        """Fit one vectorizer per block (vocabulary and idf) on the cleaned training texts."""
        fields = {"title": titles, "body": bodies}
        vocabularies, idfs = [], []
        for block in blocks:
            docs = fields[block.field]
            vec = _vectorizer(block.kind, min_df=min_df)
            try:
                vec.fit(docs)
            except ValueError as exc:  # e.g. an empty vocabulary: no text at all in that field
                raise ValueError(f"cannot fit the {block.name!r} features on {len(docs)} texts: {exc}") from exc
            vocabularies.append(Vocabulary([str(t) for t in vec.get_feature_names_out()]))
            idfs.append(np.asarray(vec.idf_, dtype=np.float64))
        return cls(blocks, vocabularies, idfs)

    def encode(self, title: str, body: str) -> tuple[np.ndarray, np.ndarray]:
        """One question's non-zero features: (column indices ascending, values)."""
        texts = (title, body)
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for k, block in enumerate(self.blocks):
            # Counter counts in C; the distinct terms are then looked up at once.
            counts = Counter(self._analyzers[k](texts[self._field_index[k]]))
            if not counts:
                continue
            idx = self.vocabs[k].columns(list(counts))
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
                np.asarray([f"{block.name}:{term}" for term in vocabulary.terms()], dtype=object)
                for block, vocabulary in zip(self.blocks, self.vocabs, strict=True)
            ]
        )

    # --- what a saved model holds ---------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": b.name, "field": b.field, "kind": b.kind, "weight": b.weight, "n_features": n}
            for b, n in zip(self.blocks, self.sizes, strict=True)
        ]

    def vocabularies(self) -> dict[str, list[str]]:
        return {b.name: v.terms() for b, v in zip(self.blocks, self.vocabs, strict=True)}

    def idfs(self) -> dict[str, np.ndarray]:
        return {f"idf_{b.name}": idf for b, idf in zip(self.blocks, self._idfs, strict=True)}

    @classmethod
    def restore(
        cls, described: list[dict[str, Any]], vocabularies: dict[str, list[str]], arrays: dict[str, np.ndarray]
    ) -> FeatureSpace:
        blocks, vocabs, idfs = [], [], []
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
            try:
                vocabs.append(Vocabulary(terms))
            except ValueError as exc:
                raise ModelFormatError(f"block {block.name!r}: {exc}") from exc
            blocks.append(block)
            idfs.append(idf)
        return cls(blocks, vocabs, idfs)

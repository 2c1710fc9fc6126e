"""The scikit-learn side of the model tests: the vectorizers a model's vocabularies and idf stand for, and the
dict-based encoding the model used before its vocabularies became compact."""

from __future__ import annotations

from collections import Counter
from itertools import repeat

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from tagwatch.model import TagModel
from tagwatch.model.blocks import CHAR_NGRAMS
from tagwatch.text import word_features


def sklearn_vectorizers(model: TagModel) -> list[TfidfVectorizer]:
    """One fitted ``TfidfVectorizer`` per block with the model's vocabulary and idf (as models were restored before)."""
    out = []
    for block, terms, idf in zip(
        model.features.blocks, model.features.vocabularies().values(), model.features.idfs().values(), strict=True
    ):
        if block.kind == "words":
            vec = TfidfVectorizer(analyzer=word_features, sublinear_tf=True, vocabulary=terms)
        else:
            vec = TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True, vocabulary=terms)
        vec.idf_ = idf
        out.append(vec)
    return out


class DictEncoder:
    """``FeatureSpace.encode`` as it was: scikit-learn's analyzers and ``vocabulary_`` dicts."""

    def __init__(self, model: TagModel) -> None:
        self.blocks = model.features.blocks
        self.vectorizers = sklearn_vectorizers(model)
        self.analyzers = [vec.build_analyzer() for vec in self.vectorizers]
        self.idfs = list(model.features.idfs().values())

    def encode(self, title: str, body: str) -> tuple[np.ndarray, np.ndarray]:
        texts = {"title": title, "body": body}
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        offset = 0
        for block, vec, analyze, idf in zip(self.blocks, self.vectorizers, self.analyzers, self.idfs, strict=True):
            vocabulary: dict[str, int] = vec.vocabulary_
            counts = Counter(analyze(texts[block.field]))
            if counts:
                idx = np.fromiter(map(vocabulary.get, counts, repeat(-1)), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                known = idx >= 0
                if known.any():
                    idx, tf = idx[known], tf[known]
                    order = np.argsort(idx)
                    idx, tf = idx[order], tf[order]
                    v = (np.log(tf) + 1.0) * idf[idx]
                    v *= block.weight / np.sqrt(np.square(v).sum())
                    cols.append(idx + offset)
                    vals.append(v)
            offset += len(vocabulary)
        if not cols:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(cols), np.concatenate(vals)

"""The linear scorer: decision values ``X @ W.T + b`` of all tags at once, computed row by row."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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
    _CHUNK = 4096  # dense rows converted at a time while loading

    def __init__(self, weights: sp.csr_matrix, bias: np.ndarray) -> None:
        self.n_tags, self.n_features = weights.shape
        self.bias = np.asarray(bias, dtype=np.float64)
        by_feature = sp.csr_matrix(weights.T, dtype=np.float64)
        by_feature.sort_indices()
        per_feature = np.diff(by_feature.indptr)
        dense = per_feature >= min(self.DENSE_MIN_TAGS, self.n_tags)
        self._dense_pos = np.full(self.n_features, -1, dtype=np.int64)
        self._dense_pos[dense] = np.arange(int(dense.sum()))
        # Built piece by piece, without intermediate matrices: a replica loading a model must not need much more
        # memory than the model.
        dense_rows = np.flatnonzero(dense)
        self._dense = np.empty((len(dense_rows), self.n_tags))
        for start in range(0, len(dense_rows), self._CHUNK):
            self._dense[start : start + self._CHUNK] = by_feature[dense_rows[start : start + self._CHUNK]].toarray()
        # The tail: the other features' rows, their non-zero weights only.
        keep = ~np.repeat(dense, per_feature) & (by_feature.data != 0)
        self._tail_ptr = np.concatenate(([0], np.cumsum(keep, dtype=by_feature.indptr.dtype)))[by_feature.indptr]
        self._tail_tags, self._tail_weights = by_feature.indices[keep], by_feature.data[keep]

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

"""A fitted vocabulary (term -> feature column) kept as a few numpy arrays and one string, not a dict.

A dict of ~420k terms costs ~200 bytes a term in Python objects; here a term costs 24 bytes plus its text: the
terms' hashes sorted (looked up with one ``searchsorted`` per question and block), the column of each, and the terms
themselves as one string with offsets. A hash match is confirmed by comparing the text, so a lookup answers exactly
what the dict did; vocabulary terms that share a hash (64 bits: ~1e-8 for a model) go to a small dict of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np


class Vocabulary:
    """Terms in column order; ``columns`` maps terms to their column (-1 when not in the vocabulary)."""

    __slots__ = ("_columns", "_hashes", "_offsets", "_shared", "_shared_hashes", "_text")

    def __init__(self, terms: Sequence[str]) -> None:
        n = len(terms)
        if len(set(terms)) != n:
            raise ValueError("a vocabulary's terms must be distinct")
        self._offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, terms), dtype=np.int64, count=n), out=self._offsets[1:])
        self._text = "".join(terms)
        # hash(str) is salted per process, so the index is built in the process that uses it, never stored.
        hashes = np.fromiter(map(hash, terms), dtype=np.int64, count=n)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        clash = np.zeros(n, dtype=bool)
        if n > 1:
            same = hashes[1:] == hashes[:-1]
            clash[1:] |= same
            clash[:-1] |= same
        self._shared = {terms[j]: int(j) for j in order[clash].tolist()}
        self._shared_hashes = np.unique(hashes[clash])
        self._hashes = hashes[~clash]
        self._columns = order[~clash].astype(np.int64)

    def __reduce__(self) -> tuple[type[Vocabulary], tuple[list[str]]]:
        # Copied or pickled, the index is built again: hashes of another process (another salt) would find nothing.
        return (Vocabulary, (self.terms(),))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays and the text (the dict of clashing terms aside)."""
        import sys

        return sys.getsizeof(self._text) + self._offsets.nbytes + self._hashes.nbytes + self._columns.nbytes

    def term(self, column: int) -> str:
        return self._text[self._offsets[column] : self._offsets[column + 1]]

    def terms(self) -> list[str]:
        """All terms, in column order."""
        text, offsets = self._text, self._offsets.tolist()
        return [text[a:b] for a, b in pairwise(offsets)]

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        """The column of each term (int64), -1 for a term not in the vocabulary."""
        n = len(terms)
        found = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return found
        hashes = np.fromiter(map(hash, terms), dtype=np.int64, count=n)
        if len(self._hashes):
            # Sorted needles: searchsorted then narrows each search from the previous one.
            order = np.argsort(hashes)
            pos = np.empty(n, dtype=np.int64)
            pos[order] = np.searchsorted(self._hashes, hashes[order])
            np.minimum(pos, len(self._hashes) - 1, out=pos)
            hit = np.flatnonzero(self._hashes[pos] == hashes)
            if len(hit):
                cols = self._columns[pos[hit]]
                # the hash matched: confirm the text
                text, starts, ends = self._text, self._offsets[cols].tolist(), self._offsets[cols + 1].tolist()
                same = [text[a:b] == terms[i] for a, b, i in zip(starts, ends, hit.tolist(), strict=True)]
                ok = np.fromiter(same, dtype=bool, count=len(same))
                found[hit[ok]] = cols[ok]
        if self._shared:
            for i in np.flatnonzero(np.isin(hashes, self._shared_hashes)).tolist():
                found[i] = self._shared.get(terms[i], -1)
        return found

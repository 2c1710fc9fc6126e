"""One side of a drift run made ready: the model's scores and decisions, the cleaned text and its descriptors, the
champion's important features, on a bounded sample of the side's questions.

``prepare`` runs the model (no Evidently): the monitor job prepares the reference once per champion and reuses it for
every window.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from monitor.drift.stats import sample_indices
from monitor.drift.types import DriftInput, Thresholds
from tagwatch.text import HasText, clean_body, clean_title, tokenize

if TYPE_CHECKING:
    from tagwatch.model import TagModel


@dataclass(frozen=True)
class ChampionFeatures:
    """The champion's top features: per tag, columns into ``columns`` and their weights."""

    columns: np.ndarray  # global feature indices of the union of all tags' top features
    per_tag: dict[str, tuple[np.ndarray, np.ndarray]]  # tag -> (positions into ``columns``, weights)
    names: np.ndarray  # feature names of ``columns``

    @classmethod
    def of(cls, model: TagModel, k: int) -> ChampionFeatures:
        names = np.asarray(model.feature_names())
        index = {str(n): j for j, n in enumerate(names)}
        raw: dict[str, list[tuple[int, float]]] = {}
        for tag in model.tags:
            raw[tag] = [(index[f], float(w)) for f, w in model.top_features(tag, k) if w > 0 and f in index]
        columns = np.asarray(sorted({c for pairs in raw.values() for c, _ in pairs}), dtype=int)
        position = {int(c): p for p, c in enumerate(columns)}
        per_tag = {
            tag: (
                np.asarray([position[c] for c, _ in pairs], dtype=int),
                np.asarray([w for _, w in pairs], dtype=float),
            )
            for tag, pairs in raw.items()
        }
        return cls(columns=columns, per_tag=per_tag, names=names[columns] if columns.size else names[:0])


@dataclass
class Prepared:
    """One side ready for ``detect_drift``; the job prepares the reference once per champion and reuses it.

    Per-question model work (features, scores, decisions) is bounded, whatever the window's size: it runs on
    ``rows``, a uniform sample of at most ``max_rows`` questions (Evidently's text and descriptors, prediction
    drift, the label-free estimate, the feature values) joined with at most ``max_rows`` questions with feedback
    (micro-F1, the quick models), the ones in the uniform sample first. Their statistics are already precise
    there, and the model transforms about a thousand questions a second. True tags are kept for every question
    with feedback: label drift and emerging tags need no model.
    """

    role: str
    model_tags: tuple[str, ...]
    model_key: tuple[Any, ...]  # which model prepared it (see model_key_of)
    n: int
    labelled: np.ndarray  # indices of the questions with true tags
    true_tags: list[tuple[str, ...]]  # of the labelled questions, in ``labelled`` order
    true: np.ndarray  # len(labelled) x T bool, within the model's tags
    rows: np.ndarray  # sorted indices of the questions the model worked on
    uniform: np.ndarray  # positions into ``rows`` of the uniform sample
    rows_labelled: np.ndarray  # positions into ``rows`` of the questions with true tags
    rows_true: np.ndarray  # len(rows_labelled) x T bool: their true tags
    scores: np.ndarray  # len(rows) x T calibrated scores
    predicted: np.ndarray  # len(rows) x T bool
    x: sparse.csr_matrix  # len(rows) x len(champion.columns): the champion's important features
    described: dict[str, list[Any]]  # text, length, code_share, oov_share of the uniform sample
    champion: ChampionFeatures
    max_rows: int
    text_chars: int
    seconds: float


class ModelIdentity:
    """Stands for one unregistered model object in a ``model_key``. Compared by identity and kept alive by every
    ``Prepared`` holding it, so it is never mistaken for a model created later (as an ``id()`` can be, once the
    object is freed and its address reused)."""

    __slots__ = ()


# The identity of each live unregistered model: an entry goes when its model is freed.
_IDENTITIES: weakref.WeakKeyDictionary[TagModel, ModelIdentity] = weakref.WeakKeyDictionary()
# The vocabulary of each live model, with the feature names it was built from.
_VOCABULARIES: weakref.WeakKeyDictionary[TagModel, tuple[np.ndarray, frozenset[str]]] = weakref.WeakKeyDictionary()


def model_key_of(model: TagModel) -> tuple[Any, ...]:
    """Which model a side was prepared for: a registered model by its version (a reloaded copy matches), an
    unregistered one (tests, benchmarks) by the object itself."""
    version = model.version
    identity = _IDENTITIES.setdefault(model, ModelIdentity()) if version is None else None
    return (version, len(model.feature_names()), tuple(model.tags), identity)


def _vocabulary(model: TagModel) -> frozenset[str]:
    """The single-word terms of the model's word blocks: what "a word the model knows" means."""
    names = model.feature_names()  # cached and read-only in the model
    cached = _VOCABULARIES.get(model)
    if cached is not None and cached[0] is names:
        return cached[1]
    prefixes = tuple(f"{b.name}:" for b in model.features.blocks if b.kind == "words")
    words = frozenset(str(n).split(":", 1)[1] for n in names if str(n).startswith(prefixes) and " " not in str(n))
    _VOCABULARIES[model] = (names, words)
    return words


def _describe(questions: Sequence[HasText], vocabulary: frozenset[str], text_chars: int) -> dict[str, list[Any]]:
    """The domain classifier's text and the descriptors of the chosen questions (each cleaned once)."""
    texts: list[str] = []
    lengths: list[float] = []
    code_shares: list[float] = []
    unknown: list[float] = []
    for q in questions:
        body = clean_body(q.body, q.body_format)
        full = f"{clean_title(q.title)} {body.text} {body.code}".strip()
        texts.append(full[:text_chars])
        lengths.append(float(len(full)))
        code_shares.append(body.code_share)
        words = tokenize(full)
        unknown.append(sum(w not in vocabulary for w in words) / len(words) if words else 0.0)
    return {"text": texts, "length": lengths, "code_share": code_shares, "oov_share": unknown}


def _true_labels(
    side: DriftInput, role: str, index: dict[str, int]
) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray]:
    """(indices of the questions with feedback, their tag tuples, their 0/1 matrix over the model's tags)."""
    labelled: list[int] = []
    true_tags: list[tuple[str, ...]] = []
    if side.true_tags is not None:
        if len(side.true_tags) != len(side.questions):
            raise ValueError(f"{role}: {len(side.true_tags)} tag sets for {len(side.questions)} questions")
        for i, t in enumerate(side.true_tags):
            if t is None:
                continue
            if isinstance(t, str) or not all(isinstance(x, str) and x.strip() for x in t):
                raise ValueError(f"{role}: true tags of question {i} must be a tuple of tag names: got {t!r}")
            if not t:
                raise ValueError(f"{role}: question {i} has an empty tag set (None means 'no feedback')")
            labelled.append(i)
            true_tags.append(tuple(dict.fromkeys(x.strip().lower() for x in t)))
    true = np.zeros((len(labelled), len(index)), dtype=bool)
    for r, t in enumerate(true_tags):
        for tag in t:
            j = index.get(tag)
            if j is not None:
                true[r, j] = True
    return np.asarray(labelled, dtype=int), true_tags, true


def _predicted_matrix(decided: Sequence[Sequence[tuple[str, float]]], index: dict[str, int], role: str) -> np.ndarray:
    predicted = np.zeros((len(decided), len(index)), dtype=bool)
    for i, row in enumerate(decided):
        for tag, _score in row:
            j = index.get(tag)
            if j is None:
                raise ValueError(f"{role}: question {i} has a predicted tag {tag!r} the model does not know")
            predicted[i, j] = True
    return predicted


def prepare(
    side: DriftInput,
    model: TagModel,
    thresholds: Thresholds,
    *,
    role: str = "reference",
    seed: int = 0,
    champion: ChampionFeatures | None = None,
) -> Prepared:
    """Score, clean and featurise one side (the work of ``detect_drift`` that does not depend on the other)."""
    started = time.perf_counter()
    th = thresholds
    if role not in ("reference", "current"):
        raise ValueError(f"role must be 'reference' or 'current': got {role!r}")
    tags = list(model.tags)
    index = {t: j for j, t in enumerate(tags)}
    n = len(side.questions)
    scores: np.ndarray | None = None
    if side.scores is not None:
        scores = np.asarray(side.scores, dtype=float)
        if scores.shape != (n, len(tags)):
            raise ValueError(
                f"{role}: scores have shape {scores.shape}, expected ({n}, {len(tags)}) (questions x model tags)"
            )
        if not np.all(np.isfinite(scores)) or scores.min(initial=0.0) < 0 or scores.max(initial=0.0) > 1:
            raise ValueError(f"{role}: scores must be probabilities in [0, 1]")
    labelled, true_tags, true = _true_labels(side, role, index)
    if side.predicted is not None and len(side.predicted) != n:
        raise ValueError(f"{role}: {len(side.predicted)} predictions for {n} questions")
    champion = champion or ChampionFeatures.of(model, th.top_features)
    uniform = sample_indices(n, th.max_rows, seed + (0 if role == "reference" else 1))
    in_uniform = np.isin(labelled, uniform)
    # Questions with feedback: those of the uniform sample first, then others, up to max_rows in all.
    others = labelled[~in_uniform]
    extra = others[sample_indices(len(others), max(th.max_rows - int(in_uniform.sum()), 0), seed + 2)]
    rows = np.union1d(uniform, extra).astype(int)
    questions = [side.questions[int(i)] for i in rows]
    x = model.transform(questions) if rows.size else sparse.csr_matrix((0, len(model.feature_names())))
    if scores is not None:
        scores = scores[rows]
    elif rows.size:
        scores = model.calibrate(model.decision_function(x))
    else:
        scores = np.zeros((0, len(tags)))
    if side.predicted is not None:
        decided: Sequence[Sequence[tuple[str, float]]] = [side.predicted[int(i)] for i in rows]
    else:
        decided = model.decide(scores) if rows.size else []
    row_of = {int(i): r for r, i in enumerate(labelled)}
    rows_labelled = np.asarray([p for p, i in enumerate(rows) if int(i) in row_of], dtype=int)
    rows_true = (
        true[[row_of[int(rows[p])] for p in rows_labelled]]
        if rows_labelled.size
        else np.zeros((0, len(tags)), dtype=bool)
    )
    uniform_pos = np.searchsorted(rows, uniform)
    return Prepared(
        role=role,
        model_tags=tuple(tags),
        model_key=model_key_of(model),
        n=n,
        labelled=labelled,
        true_tags=true_tags,
        true=true,
        rows=rows,
        uniform=uniform_pos,
        rows_labelled=rows_labelled,
        rows_true=rows_true,
        scores=scores,
        predicted=_predicted_matrix(decided, index, role),
        x=sparse.csr_matrix(x[:, champion.columns]),
        described=_describe([questions[int(p)] for p in uniform_pos], _vocabulary(model), th.text_chars),
        champion=champion,
        max_rows=th.max_rows,
        text_chars=th.text_chars,
        seconds=time.perf_counter() - started,
    )

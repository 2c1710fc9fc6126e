"""Challenger against champion: train on recent labelled data, compare on the newest hold-out, promote if it wins.

Feedback is not trusted: whoever posts it chooses what the challenger learns and what its recent hold-out calls
"better". Two checks stand between feedback and the champion alias:

- ``feedback_disagreement`` (before training): feedback that contradicts the champion's confident predictions on tags
  that did not drift, far more often than trusted labels do, is a reason to hold, not to learn.
- the guard set (after training): trusted labelled questions registered with the champion (``tagwatch train`` and
  ``tagwatch init`` keep their time hold-out) and inherited by each version; the challenger may not fall more than a
  tolerance below the champion on it, overall or on a frequent tag.

``compare`` (retrain/compare.py) and ``feedback_disagreement`` (retrain/gate.py) are the pure cores; ``retrain`` is
the job around them. A retrain that fails
or is interrupted anywhere before ``Registry.promote`` leaves the champion as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from retrain.compare import Comparison, HoldoutScores, compare, holdout_scores
from retrain.config import RetrainConfig
from retrain.gate import feedback_disagreement
from retrain.recent import mix_reference, split_recent
from tagwatch.data import Question
from tagwatch.registry import CHALLENGER, CHAMPION, PREVIOUS
from tagwatch.text import HasText

if TYPE_CHECKING:
    from tagwatch.model import TagModel

log = logging.getLogger(__name__)


class ChallengerRegistry(Protocol):
    """What a retrain asks of the registry (``tagwatch.registry.Registry``; the backtest's in-memory one)."""

    def champion_version(self) -> str | None: ...

    def load_model(self, version: str) -> TagModel: ...

    def load_reference(self, version: str) -> list[Question]: ...

    def load_guard(self, version: str) -> list[Question]: ...

    def register(
        self,
        model: TagModel,
        *,
        params: Mapping[str, Any],
        metrics: dict[str, Any],
        data_window: Mapping[str, Any],
        reference: Sequence[Question],
        holdout_ids: Mapping[str, Sequence[str]] | None = None,
        lineage: Mapping[str, Any] | None = None,
        guard: Sequence[Question] | None = None,
    ) -> str: ...

    def set_alias(self, alias: str, version: str, *, trigger: str, actor: str | None) -> None: ...

    def promote(self, version: str, *, trigger: str, actor: str | None) -> None: ...


class RollbackRegistry(Protocol):
    """What a rollback asks of the registry."""

    def champion_version(self) -> str | None: ...

    def get_alias(self, alias: str) -> str | None: ...

    def check_artifacts(self, version: str) -> None: ...

    def promote(self, version: str, *, trigger: str, actor: str | None) -> None: ...


def _predicted_tags(model: Any, questions: Sequence[HasText]) -> list[list[str]]:
    return _decided_tags(model, model.predict_scores(questions))


def _decided_tags(model: Any, scores: Any) -> list[list[str]]:
    """The tags ``model`` suggests for rows of scores it computed (``model.predict`` without scoring again)."""
    return [[t for t, _ in tags] for tags in model.decide(scores)]


@dataclass
class RetrainOutcome:
    result: str  # promoted | rejected | held | failed
    challenger_version: str | None
    champion_version: str | None  # the champion after the retrain
    parent_version: str | None
    comparison: dict[str, Any] | None
    seconds: float
    error: str | None = None
    data_window: dict[str, Any] = field(default_factory=dict)
    trigger: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_scores(n_tags: int) -> Any:
    import numpy as np

    return np.zeros((0, n_tags))


def retrain(
    registry: ChallengerRegistry,
    labelled: Sequence[Question],
    *,
    config: RetrainConfig,
    top_n: int,
    max_tags: int,
    seed: int,
    trigger: str,
    actor: str | None = None,
    feedback_sources: dict[str, int] | None = None,
) -> RetrainOutcome:
    """Train a challenger on recent labelled questions (+ part of the champion's reference), register it as
    ``challenger``, and promote it if it beats the champion on the newest hold-out and holds up on the trusted guard
    set. Feedback that contradicts the champion like poisoned labels do holds the retrain before any training
    (result ``held``). Never raises: a failure is reported in the outcome and leaves the champion untouched.

    ``actor``: who moves the aliases (default: the registry's own actor, e.g. ``monitor`` or ``cli:<user>``).
    ``feedback_sources``: how many of the labelled questions each API key sent (recorded in the lineage)."""
    from retrain.job import data_window
    from retrain.train import train_model

    start = time.perf_counter()
    actor = actor or getattr(registry, "actor", None) or "monitor"
    parent = registry.champion_version()
    try:
        train_recent, holdout = split_recent(labelled, config)
        reference = registry.load_reference(parent) if parent is not None else []
        guard = registry.load_guard(parent) if parent is not None else []
        champion = registry.load_model(parent) if parent is not None else None
        disagreement = None
        if champion is not None:
            recent = [*train_recent, *holdout]
            # The champion scores the recent questions and the guard set once: for the feedback check here and for
            # the comparisons after training.
            recent_raw = champion.predict_scores(recent)
            guard_raw = champion.predict_scores(guard) if guard else _no_scores(len(champion.tags))
            disagreement = feedback_disagreement(
                champion.tags, recent_raw, [q.tags for q in recent], guard_raw, [q.tags for q in guard], config
            )
            if disagreement.hold:
                log.warning("retrain (%s) held: %s", trigger, disagreement.reason())
                return RetrainOutcome(
                    result="held",
                    challenger_version=None,
                    champion_version=parent,
                    parent_version=parent,
                    comparison={
                        "promote": False,
                        "reasons": [disagreement.reason(), "keep the champion"],
                        "feedback": disagreement.to_dict(),
                    },
                    seconds=time.perf_counter() - start,
                    trigger=trigger,
                )
        # The guard set is never trained on (a reference question that is also a guard question stays out).
        guard_ids = {q.id for q in guard}
        reference = [q for q in reference if q.id not in guard_ids]
        train = mix_reference(
            [q for q in train_recent if q.id not in guard_ids], reference, ratio=config.reference_ratio, seed=seed
        )
        challenger = train_model(train, top_n=top_n, max_tags=max_tags, seed=seed)
        truth = [q.tags for q in holdout]
        challenger_scores = holdout_scores(_predicted_tags(challenger, holdout), truth)
        if champion is not None:
            # The hold-out is the tail of the recent questions the champion scored above.
            champion_scores = holdout_scores(_decided_tags(champion, recent_raw[len(train_recent) :]), truth)
            guard_scores: dict[str, HoldoutScores] = {}
            if guard:
                guard_truth = [q.tags for q in guard]
                guard_scores = {
                    "champion": holdout_scores(_decided_tags(champion, guard_raw), guard_truth),
                    "challenger": holdout_scores(_predicted_tags(challenger, guard), guard_truth),
                }
            comparison = compare(
                champion_scores,
                challenger_scores,
                config,
                guard_champion=guard_scores.get("champion"),
                guard_challenger=guard_scores.get("challenger"),
            )
        else:
            comparison = Comparison(True, challenger_scores, challenger_scores, ["no champion: promote"])
        if disagreement is not None:
            comparison.reasons.insert(0, disagreement.reason())
        from retrain.evaluate import evaluate

        window = data_window(train_recent)
        window.update(n_train=len(train), n_reference_mixed=len(train) - len(train_recent), n_holdout=len(holdout))
        compared = comparison.to_dict()
        if disagreement is not None:
            compared["feedback"] = disagreement.to_dict()
        version = registry.register(
            challenger,
            params=challenger.params,
            metrics={"holdout_recent": evaluate(challenger, holdout)},
            data_window=window,
            # The new reference: the newest questions of its own data window.
            reference=[*train_recent, *holdout][-config.reference_size :],
            holdout_ids={"recent": [q.id for q in holdout]},
            lineage={
                "trigger": trigger,
                "actor": actor,
                "parent_version": parent,
                "comparison": compared,
                "feedback_sources": dict(feedback_sources or {}),
            },
            # Inherited: the guard set stays the trusted one, whatever the feedback was.
            guard=guard,
        )
        registry.set_alias(CHALLENGER, version, trigger=trigger, actor=actor)
        if comparison.promote:
            registry.promote(version, trigger=trigger, actor=actor)
        result = "promoted" if comparison.promote else "rejected"
        log.info("retrain (%s): challenger %s %s; %s", trigger, version, result, "; ".join(comparison.reasons))
        return RetrainOutcome(
            result=result,
            challenger_version=version,
            champion_version=registry.champion_version(),
            parent_version=parent,
            comparison=compared,
            seconds=time.perf_counter() - start,
            data_window=window,
            trigger=trigger,
        )
    except Exception as exc:
        log.exception("retrain (%s) failed; the champion stays %s", trigger, parent)
        return RetrainOutcome(
            result="failed",
            challenger_version=None,
            champion_version=parent,
            parent_version=parent,
            comparison=None,
            seconds=time.perf_counter() - start,
            error=f"{type(exc).__name__}: {exc}",
            trigger=trigger,
        )


def rollback(
    registry: RollbackRegistry, to: str | int | None = None, *, trigger: str = "rollback", actor: str | None = None
) -> tuple[str | None, str]:
    """Put an earlier version back as champion; the champion it replaces becomes ``previous``. Returns (old, new).

    Without ``to``: the ``previous`` version (one step back). With ``to``: that version, however old. Nothing moves
    unless the target exists and its artifacts are all in place (``Registry.check_artifacts`` raises
    ``VersionNotFoundError`` / ``RegistryError`` first; a malformed ``to`` raises ``ValueError``). A target that is
    the champion already moves nothing and returns (champion, champion). ``LookupError``: nothing to roll back to
    (no ``previous`` or no champion, without ``to``). The moves go through ``Registry.promote`` (``previous`` first,
    then ``champion``) and are recorded with ``trigger`` and ``actor`` when the registry has a journal.
    """
    from tagwatch.registry import normalize_version

    current = registry.champion_version()
    if to is None:
        target = registry.get_alias(PREVIOUS)
        if target is None or current is None:
            raise LookupError(f"nothing to roll back to: the registry has no {PREVIOUS!r} (or no {CHAMPION!r}) alias")
    else:
        target = normalize_version(to)
    registry.check_artifacts(target)
    if target == current:
        return current, target
    registry.promote(target, trigger=trigger, actor=actor)
    return current, target

"""Challenger against champion: train on recent labelled data, compare on the newest hold-out, promote if it wins.

``compare`` is the pure core (a decision from two sets of hold-out scores); ``retrain`` is the job around it. A
retrain that fails or is interrupted anywhere before ``Registry.promote`` leaves the champion as it was.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tagwatch.data import Question
from tagwatch.text import HasText

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainConfig:
    # Labelled questions the retrain uses at the most (the newest), and at the least.
    window: int = 4_000
    min_labelled: int = 300
    # The newest share of them is the hold-out the challenger never sees (at least ``min_holdout`` questions, at
    # most ``max_holdout``: right after a shift the newest questions are the few that show it, and the challenger
    # must train on most of them).
    holdout_fraction: float = 0.25
    min_holdout: int = 100
    max_holdout: int | None = 250
    # Part of the champion's reference questions mixed into the challenger's training data, relative to the number
    # of recent questions: keeps what still holds from the old distribution.
    reference_ratio: float = 0.5
    # The promoted model's reference for the drift monitor: the newest questions of its data window (the tail of its
    # training part and the hold-out), at most this many. More than the hold-out alone, which is capped to keep
    # training data, and more than the monitor's minimum reference size.
    reference_size: int = 1_000
    # Promotion: micro-F1 must rise by this much, and no frequent tag may lose more F1 than ``max_tag_regression``.
    min_improvement: float = 0.01
    max_tag_regression: float = 0.15
    frequent_tag_support: int = 20


@dataclass
class HoldoutScores:
    """Scores of one model on a hold-out, over all true tags (tags the model cannot predict count as misses)."""

    micro_f1: float
    per_tag_f1: dict[str, float]
    support: dict[str, int]
    n_questions: int


@dataclass
class Comparison:
    promote: bool
    champion: HoldoutScores
    challenger: HoldoutScores
    reasons: list[str] = field(default_factory=list)
    regressions: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "champion_micro_f1": round(self.champion.micro_f1, 4),
            "challenger_micro_f1": round(self.challenger.micro_f1, 4),
            "n_holdout": self.champion.n_questions,
            "regressions": {t: [round(a, 4), round(b, 4)] for t, (a, b) in self.regressions.items()},
        }


def holdout_scores(predicted: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> HoldoutScores:
    """Micro-F1 and per-tag F1 of predicted tag sets against true tag sets, over every tag that occurs."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for pred, true in zip(predicted, truth, strict=True):
        p, t = set(pred), set(true)
        for tag in p & t:
            tp[tag] += 1
        for tag in p - t:
            fp[tag] += 1
        for tag in t - p:
            fn[tag] += 1
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    denom = 2 * all_tp + all_fp + all_fn
    per_tag = {}
    for tag in set(tp) | set(fp) | set(fn):
        d = 2 * tp[tag] + fp[tag] + fn[tag]
        per_tag[tag] = 2 * tp[tag] / d if d else 0.0
    support = {tag: tp[tag] + fn[tag] for tag in per_tag if tp[tag] + fn[tag]}
    return HoldoutScores(2 * all_tp / denom if denom else 0.0, per_tag, support, len(truth))


def compare(champion: HoldoutScores, challenger: HoldoutScores, config: RetrainConfig) -> Comparison:
    """Promote only if micro-F1 improves by the margin and no frequent tag regresses beyond the bound."""
    reasons = []
    gain = challenger.micro_f1 - champion.micro_f1
    improves = gain >= config.min_improvement
    reasons.append(
        f"micro-F1 {champion.micro_f1:.4f} -> {challenger.micro_f1:.4f} ({gain:+.4f}; "
        f"needs >= {config.min_improvement:+.4f})"
    )
    regressions = {}
    for tag, n in champion.support.items():
        if n < config.frequent_tag_support:
            continue
        before, after = champion.per_tag_f1.get(tag, 0.0), challenger.per_tag_f1.get(tag, 0.0)
        if before - after > config.max_tag_regression:
            regressions[tag] = (before, after)
    if regressions:
        worst = sorted(regressions.items(), key=lambda kv: kv[1][1] - kv[1][0])[:5]
        reasons.append(
            f"{len(regressions)} frequent tag(s) regress by more than {config.max_tag_regression}: "
            + ", ".join(f"{t} {a:.2f}->{b:.2f}" for t, (a, b) in worst)
        )
    promote = improves and not regressions
    reasons.append("promote" if promote else "keep the champion")
    return Comparison(promote, champion, challenger, reasons, regressions)


def split_recent(labelled: Sequence[Question], config: RetrainConfig) -> tuple[list[Question], list[Question]]:
    """(training part, hold-out): the newest ``holdout_fraction`` of the last ``window`` labelled questions."""
    recent = list(labelled)[-config.window :]
    n_holdout = max(config.min_holdout, int(len(recent) * config.holdout_fraction))
    if config.max_holdout is not None:
        n_holdout = max(config.min_holdout, min(n_holdout, config.max_holdout))
    if len(recent) < config.min_labelled or len(recent) - n_holdout < config.min_holdout:
        raise InsufficientData(
            f"{len(recent)} labelled questions; a retrain needs at least {config.min_labelled} "
            f"(and {config.min_holdout} beyond the hold-out of {n_holdout})"
        )
    return recent[:-n_holdout], recent[-n_holdout:]


class InsufficientData(ValueError):
    pass


def mix_reference(
    recent: Sequence[Question], reference: Sequence[Question], *, ratio: float, seed: int
) -> list[Question]:
    """Recent questions plus a seeded sample of the reference (``ratio`` x as many), for the challenger.

    Reference questions that are also recent are left out: a question twice in the training data would sit on both
    sides of the model's own validation split and skew its calibration and thresholds."""
    seen = {q.id for q in recent}
    others = [q for q in reference if q.id not in seen]
    k = min(len(others), int(len(recent) * ratio))
    return list(recent) + random.Random(seed).sample(others, k)


def _predicted_tags(model: Any, questions: Sequence[HasText]) -> list[list[str]]:
    return [[t for t, _ in tags] for tags in model.predict(questions)]


@dataclass
class RetrainOutcome:
    result: str  # promoted | rejected | failed
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


def retrain(
    registry: Any,
    labelled: Sequence[Question],
    *,
    config: RetrainConfig,
    top_n: int,
    max_tags: int,
    seed: int,
    trigger: str,
) -> RetrainOutcome:
    """Train a challenger on recent labelled questions (+ part of the champion's reference), register it as
    ``challenger``, and promote it if it beats the champion on the newest hold-out. Never raises: a failure is
    reported in the outcome and leaves the champion untouched."""
    from retrain.job import data_window
    from retrain.train import train_model

    start = time.perf_counter()
    parent = registry.champion_version()
    try:
        train_recent, holdout = split_recent(labelled, config)
        reference = registry.load_reference(parent) if parent is not None else []
        train = mix_reference(train_recent, reference, ratio=config.reference_ratio, seed=seed)
        challenger = train_model(train, top_n=top_n, max_tags=max_tags, seed=seed)
        truth = [q.tags for q in holdout]
        challenger_scores = holdout_scores(_predicted_tags(challenger, holdout), truth)
        if parent is not None:
            champion = registry.load_model(parent)
            champion_scores = holdout_scores(_predicted_tags(champion, holdout), truth)
            comparison = compare(champion_scores, challenger_scores, config)
        else:
            comparison = Comparison(True, challenger_scores, challenger_scores, ["no champion: promote"])
        from retrain.evaluate import evaluate

        window = data_window(train_recent)
        window.update(n_train=len(train), n_reference_mixed=len(train) - len(train_recent), n_holdout=len(holdout))
        version = registry.register(
            challenger,
            params=challenger.params,
            metrics={"holdout_recent": evaluate(challenger, holdout)},
            data_window=window,
            # The new reference: the newest questions of its own data window.
            reference=[*train_recent, *holdout][-config.reference_size :],
            holdout_ids={"recent": [q.id for q in holdout]},
            lineage={"trigger": trigger, "parent_version": parent, "comparison": comparison.to_dict()},
        )
        registry.set_alias("challenger", version)
        if comparison.promote:
            registry.promote(version)
        result = "promoted" if comparison.promote else "rejected"
        log.info("retrain (%s): challenger %s %s; %s", trigger, version, result, "; ".join(comparison.reasons))
        return RetrainOutcome(
            result=result,
            challenger_version=version,
            champion_version=registry.champion_version(),
            parent_version=parent,
            comparison=comparison.to_dict(),
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


def rollback(registry: Any) -> tuple[str, str]:
    """Make ``previous`` the champion again (and the rolled-back champion ``previous``). Returns (old, new)."""
    previous = registry.get_alias("previous")
    current = registry.champion_version()
    if previous is None or current is None:
        raise LookupError("nothing to roll back to: the registry has no 'previous' (or no 'champion') alias")
    # Same order as Registry.promote: whoever sees the new champion also sees the right "previous".
    registry.set_alias("previous", current)
    registry.set_alias("champion", previous)
    return current, previous

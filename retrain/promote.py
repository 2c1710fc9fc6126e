"""Challenger against champion: train on recent labelled data, compare on the newest hold-out, promote if it wins.

Feedback is not trusted: whoever posts it chooses what the challenger learns and what its recent hold-out calls
"better". Two checks stand between feedback and the champion alias:

- ``feedback_disagreement`` (before training): feedback that contradicts the champion's confident predictions on tags
  that did not drift, far more often than trusted labels do, is a reason to hold, not to learn.
- the guard set (after training): trusted labelled questions registered with the champion (``tagwatch train`` and
  ``tagwatch init`` keep their time hold-out) and inherited by each version; the challenger may not fall more than a
  tolerance below the champion on it, overall or on a frequent tag.

``compare`` and ``feedback_disagreement`` are the pure cores; ``retrain`` is the job around them. A retrain that fails
or is interrupted anywhere before ``Registry.promote`` leaves the champion as it was.
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
    # The trusted guard set: the challenger's micro-F1 on it may fall at most ``guard_tolerance`` below the
    # champion's, and, when ``guard_max_tag_drop`` is set, no tag with ``frequent_tag_support`` guard questions may
    # lose more than that F1. Legitimate drift moves the newest data away from the guard set, so these are looser than
    # the recent hold-out's bounds: on the chronological backtest (2018 -> 2024) the legitimate promotions lost 0.038,
    # 0.040, 0.046 and 0.096 micro-F1 on the guard set step by step, and one 2022 challenger 0.35 F1 on its python
    # questions (so the per-tag bound is off by default). The first line against poisoned labels is
    # ``feedback_disagreement``; this one catches what gets past it.
    guard_tolerance: float | None = 0.1
    guard_max_tag_drop: float | None = None
    # Feedback against the champion's confident predictions (score >= ``confident_score``): a tag is suspect when it
    # had at least ``suspect_min_confident`` of them in the feedback, its share of confident predictions did not
    # drift (within a factor ``stable_share_ratio`` of its share on the guard set), and the feedback contradicts them
    # at least ``suspect_contradiction`` of the time and ``suspect_margin`` more often than the guard set's labels do.
    # Any suspect tag holds the retrain (None: the check is off).
    confident_score: float = 0.9
    suspect_min_confident: int = 10
    stable_share_ratio: float = 2.0
    suspect_contradiction: float | None = 0.5
    suspect_margin: float = 0.3


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
    # The same two models on the trusted guard set (None: no guard set), and the guard tags that fell too far.
    guard_champion: HoldoutScores | None = None
    guard_challenger: HoldoutScores | None = None
    guard_regressions: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "promote": self.promote,
            "reasons": self.reasons,
            "champion_micro_f1": round(self.champion.micro_f1, 4),
            "challenger_micro_f1": round(self.challenger.micro_f1, 4),
            "n_holdout": self.champion.n_questions,
            "regressions": {t: [round(a, 4), round(b, 4)] for t, (a, b) in self.regressions.items()},
        }
        if self.guard_champion is not None and self.guard_challenger is not None:
            # The five frequent tags that lost most on the guard set, flagged or not (how close legitimate drift
            # comes to the bound is what the bound is set from).
            drops = _tag_regressions(self.guard_champion, self.guard_challenger, min_support=20, max_drop=0.0)
            out["guard"] = {
                "champion_micro_f1": round(self.guard_champion.micro_f1, 4),
                "challenger_micro_f1": round(self.guard_challenger.micro_f1, 4),
                "n_questions": self.guard_champion.n_questions,
                "regressions": {t: [round(a, 4), round(b, 4)] for t, (a, b) in self.guard_regressions.items()},
                "largest_tag_drops": {
                    t: [round(a, 4), round(b, 4)]
                    for t, (a, b) in sorted(drops.items(), key=lambda kv: kv[1][1] - kv[1][0])[:5]
                },
            }
        return out


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


def _tag_regressions(
    champion: HoldoutScores, challenger: HoldoutScores, *, min_support: int, max_drop: float
) -> dict[str, tuple[float, float]]:
    """Tags with at least ``min_support`` true occurrences whose F1 falls by more than ``max_drop``."""
    out = {}
    for tag, n in champion.support.items():
        if n < min_support:
            continue
        before, after = champion.per_tag_f1.get(tag, 0.0), challenger.per_tag_f1.get(tag, 0.0)
        if before - after > max_drop:
            out[tag] = (before, after)
    return out


def _worst(regressions: dict[str, tuple[float, float]]) -> str:
    worst = sorted(regressions.items(), key=lambda kv: kv[1][1] - kv[1][0])[:5]
    return ", ".join(f"{t} {a:.2f}->{b:.2f}" for t, (a, b) in worst)


def compare(
    champion: HoldoutScores,
    challenger: HoldoutScores,
    config: RetrainConfig,
    *,
    guard_champion: HoldoutScores | None = None,
    guard_challenger: HoldoutScores | None = None,
) -> Comparison:
    """Promote only if micro-F1 on the recent hold-out improves by the margin, no frequent tag regresses beyond the
    bound, and on the trusted guard set (when given) the challenger stays within the guard tolerance of the champion,
    overall and per frequent tag."""
    reasons = []
    gain = challenger.micro_f1 - champion.micro_f1
    improves = gain >= config.min_improvement
    reasons.append(
        f"micro-F1 {champion.micro_f1:.4f} -> {challenger.micro_f1:.4f} ({gain:+.4f}; "
        f"needs >= {config.min_improvement:+.4f})"
    )
    regressions = _tag_regressions(
        champion, challenger, min_support=config.frequent_tag_support, max_drop=config.max_tag_regression
    )
    if regressions:
        reasons.append(
            f"{len(regressions)} frequent tag(s) regress by more than {config.max_tag_regression}: "
            + _worst(regressions)
        )
    guard_ok = True
    guard_regressions: dict[str, tuple[float, float]] = {}
    if guard_champion is not None and guard_challenger is not None:
        drop = guard_champion.micro_f1 - guard_challenger.micro_f1
        line = (
            f"guard set ({guard_champion.n_questions} trusted questions): micro-F1 {guard_champion.micro_f1:.4f} -> "
            f"{guard_challenger.micro_f1:.4f} ({-drop:+.4f}"
        )
        if config.guard_tolerance is not None:
            line += f"; may fall by {config.guard_tolerance:.4f} at most"
            guard_ok = drop <= config.guard_tolerance
        reasons.append(line + ")")
        if config.guard_max_tag_drop is not None:
            guard_regressions = _tag_regressions(
                guard_champion,
                guard_challenger,
                min_support=config.frequent_tag_support,
                max_drop=config.guard_max_tag_drop,
            )
            if guard_regressions:
                guard_ok = False
                reasons.append(
                    f"guard set: {len(guard_regressions)} frequent tag(s) lose more than {config.guard_max_tag_drop} "
                    "F1: " + _worst(guard_regressions)
                )
    elif config.guard_tolerance is not None:
        reasons.append("no guard set registered with the champion: guard check skipped")
    promote = improves and not regressions and guard_ok
    reasons.append("promote" if promote else "keep the champion")
    return Comparison(
        promote,
        champion,
        challenger,
        reasons,
        regressions,
        guard_champion=guard_champion,
        guard_challenger=guard_challenger,
        guard_regressions=guard_regressions,
    )


@dataclass
class Disagreement:
    """How often feedback contradicts the champion's confident predictions, per tag, against trusted labels."""

    n_feedback: int
    n_guard: int
    # Per tag: confident predictions on the feedback questions, and how many of them the feedback lacks.
    confident: dict[str, int]
    contradicted: dict[str, int]
    # Per tag: the share of confident predictions the guard set's labels contradict (None: no confident one there).
    guard_rate: dict[str, float | None]
    # Tags whose share of confident predictions did not drift; the suspect ones among them, with their rate.
    stable: list[str]
    suspect: dict[str, float]
    checked: bool  # False: the check is off, or there was no guard set to compare with

    @property
    def hold(self) -> bool:
        return bool(self.suspect)

    def rate(self, tag: str) -> float:
        return self.contradicted.get(tag, 0) / self.confident[tag] if self.confident.get(tag) else 0.0

    def pooled(self) -> float:
        """Contradicted share of all confident predictions on stable tags."""
        n = sum(self.confident.get(t, 0) for t in self.stable)
        return sum(self.contradicted.get(t, 0) for t in self.stable) / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        top = sorted(self.confident, key=lambda t: -self.confident[t])[:10]
        return {
            "hold": self.hold,
            "checked": self.checked,
            "n_feedback": self.n_feedback,
            "n_guard": self.n_guard,
            "pooled_contradiction": round(self.pooled(), 4),
            "suspect": {t: round(r, 4) for t, r in self.suspect.items()},
            "top_tags": {
                t: {
                    "confident": self.confident[t],
                    "contradicted": self.contradicted.get(t, 0),
                    "guard_rate": _rounded(self.guard_rate.get(t)),
                    "stable": t in self.stable,
                }
                for t in top
            },
        }

    def reason(self) -> str:
        if not self.suspect:
            return (
                f"feedback agrees with the champion's confident predictions as trusted labels do "
                f"(contradicted {self.pooled():.1%} on stable tags)"
            )
        worst = sorted(self.suspect.items(), key=lambda kv: -kv[1])[:5]
        return (
            f"hold: feedback contradicts the champion's confident predictions on {len(self.suspect)} tag(s) that did "
            "not drift: "
            + ", ".join(
                f"{t} {r:.0%} of {self.confident[t]} (trusted labels {float(self.guard_rate.get(t) or 0.0):.0%})"
                for t, r in worst
            )
            + "; suspected poisoned feedback, not learned"
        )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def feedback_disagreement(
    tags: Sequence[str],
    feedback_scores: Any,
    feedback_tags: Sequence[Sequence[str]],
    guard_scores: Any,
    guard_tags: Sequence[Sequence[str]],
    config: RetrainConfig,
) -> Disagreement:
    """Per tag of the champion's vocabulary ``tags``: confident predictions (scores >= ``config.confident_score``,
    columns in ``tags`` order) that the feedback contradicts, against the same rate on the trusted guard set.

    A tag is stable when its share of confident predictions on the feedback is within a factor
    ``config.stable_share_ratio`` of its share on the guard set: its questions did not come or go, so labels that
    now contradict the champion most of the time are not a new topic but a new claim about old ones.
    """
    import numpy as np

    fb = np.asarray(feedback_scores) >= config.confident_score
    gd = np.asarray(guard_scores) >= config.confident_score if len(guard_tags) else None
    confident: dict[str, int] = {}
    contradicted: dict[str, int] = {}
    guard_rate: dict[str, float | None] = {}
    stable: list[str] = []
    suspect: dict[str, float] = {}
    checked = config.suspect_contradiction is not None and gd is not None and len(feedback_tags) > 0
    for j, tag in enumerate(tags):
        rows = np.flatnonzero(fb[:, j]) if len(feedback_tags) else np.array([], dtype=int)
        if not len(rows):
            continue
        confident[tag] = len(rows)
        contradicted[tag] = sum(1 for i in rows.tolist() if tag not in feedback_tags[i])
        if gd is None:
            continue
        guard_rows = np.flatnonzero(gd[:, j])
        guard_rate[tag] = (
            sum(1 for i in guard_rows.tolist() if tag not in guard_tags[i]) / len(guard_rows)
            if len(guard_rows)
            else None
        )
        share_fb = len(rows) / len(feedback_tags)
        share_guard = len(guard_rows) / len(guard_tags)
        if share_guard > 0 and 1 / config.stable_share_ratio <= share_fb / share_guard <= config.stable_share_ratio:
            stable.append(tag)
    if checked:
        assert config.suspect_contradiction is not None
        for tag in stable:
            if confident[tag] < config.suspect_min_confident:
                continue
            rate = contradicted[tag] / confident[tag]
            base = guard_rate.get(tag) or 0.0
            if rate >= config.suspect_contradiction and rate - base >= config.suspect_margin:
                suspect[tag] = rate
    return Disagreement(
        n_feedback=len(feedback_tags),
        n_guard=len(guard_tags),
        confident=confident,
        contradicted=contradicted,
        guard_rate=guard_rate,
        stable=stable,
        suspect=suspect,
        checked=checked,
    )


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
    registry: Any,
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
        registry.set_alias("challenger", version, trigger=trigger, actor=actor)
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
    registry: Any, to: str | int | None = None, *, trigger: str = "rollback", actor: str | None = None
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
        target = registry.get_alias("previous")
        if target is None or current is None:
            raise LookupError("nothing to roll back to: the registry has no 'previous' (or no 'champion') alias")
    else:
        target = normalize_version(to)
    registry.check_artifacts(target)
    if target == current:
        return current, target
    registry.promote(target, trigger=trigger, actor=actor)
    return current, target

"""The judgement of a challenger against the champion: scores on one hold-out, and the promotion rule.

``holdout_scores`` and ``compare`` are pure: ``retrain.promote.retrain`` computes the predictions and calls them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from retrain.config import RetrainConfig


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

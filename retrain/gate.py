"""The feedback gate: feedback that contradicts the champion's confident predictions like poisoned labels do.

Feedback is not trusted: whoever posts it chooses what the challenger learns. ``feedback_disagreement`` (pure, before
training) compares how often the feedback contradicts the champion's confident predictions on tags that did not drift
with how often the trusted guard set's labels do; any suspect tag holds the retrain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retrain.config import RetrainConfig


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

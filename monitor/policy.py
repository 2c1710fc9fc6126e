"""The retrain policy: when detected drift counts, and when it may trigger a retrain.

Pure functions over the history of window verdicts, so the monitor job, the demo and the backtest share one policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.drift.types import KINDS

if TYPE_CHECKING:
    from tagwatch.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The policy's parameters; their defaults are in ``Settings`` alone: build with ``from_settings``."""

    # A kind counts as drifted only after this many consecutive windows (with enough data) detected it.
    confirmations: int
    # After a retrain (promoted or not, interrupted by the end of its process included), wait this many windows and
    # this long before the next one.
    cooldown_windows: int
    cooldown_seconds: float
    # Labelled (feedback) questions a retrain needs at the least.
    min_labelled: int
    # Follow-up retrains: a challenger promoted on drift saw only the first few windows of the new distribution, so
    # after such a promotion the policy retrains ``max_followups`` more times, one every ``followup_windows``
    # windows, without waiting for drift (each challenger is still promoted only if it wins). A drift-triggered
    # retrain that was not promoted starts none; a stable stream never starts one.
    followup_windows: int
    max_followups: int
    # Which confirmed kinds may trigger a retrain (not a setting: every kind, unless a caller narrows it).
    retrain_on: frozenset[str] = frozenset(KINDS)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            confirmations=settings.drift_confirmations,
            cooldown_windows=settings.retrain_cooldown_windows,
            cooldown_seconds=settings.retrain_cooldown_seconds,
            min_labelled=settings.retrain_min_labelled,
            followup_windows=settings.retrain_followup_windows,
            max_followups=settings.retrain_max_followups,
        )


@dataclass(frozen=True)
class WindowVerdict:
    """What one monitor run found, as the policy sees it."""

    at: datetime
    model_version: str
    detected: Mapping[str, bool]
    enough_data: Mapping[str, bool]
    retrain_started: bool = False
    # What the retrain started in this window did (promoted, rejected, held, failed, or interrupted: its process ended
    # during it) and why it ran (drift, follow-up). Only "promoted" starts follow-ups; every result counts for the
    # cool-down.
    retrain_result: str | None = None
    retrain_trigger: str | None = None


FOLLOW_UP = "follow-up"


def retrain_label(result: str, challenger_version: str | None, trigger: str | None) -> str:
    """A retrain in one short phrase for timelines: ``promoted v3``, ``rejected v4 (follow-up)``, ``held``."""
    version = f" v{challenger_version}" if challenger_version is not None else ""
    return f"{result}{version}" + (f" ({FOLLOW_UP})" if trigger == FOLLOW_UP else "")


@dataclass(frozen=True)
class Decision:
    confirmed: dict[str, bool]
    retrain: bool
    reasons: list[str] = field(default_factory=list)
    # Why the retrain runs: "drift: <kinds>" or FOLLOW_UP.
    trigger: str | None = None


def confirmed_kinds(history: Sequence[WindowVerdict], policy: Policy) -> dict[str, bool]:
    """Per kind: detected in each of the last ``confirmations`` windows that had enough data for it.

    Only windows of the model in the newest verdict count: a new model has a new reference, so the detections made
    against the old one say nothing about it.
    """
    if not history:
        return dict.fromkeys(KINDS, False)
    version = history[-1].model_version
    mine = [v for v in history if v.model_version == version]
    out = {}
    for kind in KINDS:
        usable = [v.detected.get(kind, False) for v in mine if v.enough_data.get(kind, False)]
        recent = usable[-policy.confirmations :]
        # The newest window itself must have had enough data and detected the kind.
        newest_ok = mine[-1].enough_data.get(kind, False) and mine[-1].detected.get(kind, False)
        out[kind] = newest_ok and len(recent) == policy.confirmations and all(recent)
    return out


def decide(
    history: Sequence[WindowVerdict],
    *,
    policy: Policy,
    now: datetime,
    last_retrain_at: datetime | None,
    labelled_available: int,
) -> Decision:
    """Whether this window (the last of ``history``) starts a retrain, and why (or why not)."""
    confirmed = confirmed_kinds(history, policy)
    reasons: list[str] = []
    triggering = [k for k in KINDS if confirmed[k] and k in policy.retrain_on]
    for kind in KINDS:
        if confirmed[kind]:
            reasons.append(f"{kind} drift confirmed ({policy.confirmations} consecutive windows)")
    if not any(confirmed.values()):
        reasons.append("no drift confirmed")
    blocked = None
    if triggering:
        windows_since = _windows_since_retrain(history)
        if windows_since is not None and windows_since < policy.cooldown_windows:
            blocked = f"cool-down: {windows_since} of {policy.cooldown_windows} windows since the last retrain"
        elif last_retrain_at is not None and (now - last_retrain_at).total_seconds() < policy.cooldown_seconds:
            blocked = f"cool-down: last retrain at {last_retrain_at.isoformat()}, {policy.cooldown_seconds:.0f} s"
    # A due follow-up runs even in a drift cool-down: it has its own spacing and a bounded number.
    followup, why = _followup(history, policy)
    if triggering and blocked is None:
        trigger, reason = "drift: " + ", ".join(triggering), f"retrain: {', '.join(triggering)} drift"
    elif followup and why:
        trigger, reason = FOLLOW_UP, why
    else:
        reasons += [r for r in (blocked, why) if r]
        return Decision(confirmed, False, reasons)
    if labelled_available < policy.min_labelled:
        reasons.append(f"not enough labelled questions to retrain: {labelled_available} < {policy.min_labelled}")
        return Decision(confirmed, False, reasons)
    reasons.append(reason)
    return Decision(confirmed, True, reasons, trigger)


def _followup(history: Sequence[WindowVerdict], policy: Policy) -> tuple[bool, str | None]:
    """Whether a follow-up retrain is due in the newest window, and the reason worth logging (if any)."""
    retrains = [(i, v) for i, v in enumerate(history[:-1]) if v.retrain_started]
    drift = [(i, v) for i, v in retrains if v.retrain_trigger != FOLLOW_UP]
    if not drift or drift[-1][1].retrain_result != "promoted" or policy.max_followups <= 0:
        return False, None
    done = sum(1 for i, v in retrains if i > drift[-1][0])
    if done >= policy.max_followups:
        return False, None
    since = len(history) - 1 - retrains[-1][0]
    if since < policy.followup_windows:
        return (
            False,
            f"follow-up retrain {done + 1} of {policy.max_followups} in {policy.followup_windows - since} window(s)",
        )
    return True, f"retrain: follow-up {done + 1} of {policy.max_followups} after the drift-triggered promotion"


def _windows_since_retrain(history: Sequence[WindowVerdict]) -> int | None:
    """Windows after the newest one that started a retrain (None: no retrain in the history)."""
    for back, verdict in enumerate(reversed(history[:-1]), start=1):
        if verdict.retrain_started:
            return back
    return None

"""The backtest's scenarios (``tagwatch backtest``): a stable stream, poisoned feedback, and the real chronology.

- **stable**: windows drawn from the training period's own questions; tagwatch must not raise a confirmed alarm.
- **poisoned**: the same stable stream with feedback that lies (``swap_tags``: frequent tag pairs swapped, as an
  attacker steering the model would send; ``random_tags``: random labels); the promotion gate must hold every retrain.
- **chronological**: train on the questions up to 2018-05, replay the years after: the topics really move, and the
  policy arm should stay close to the oracle that retrains after every window.

Each runs ``commands.backtest.run_backtest`` (the same detection, policy and retrain code as production, offline).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from commands.backtest import BacktestResult, run_backtest, sample, train_initial, windows_of
from monitor.drift.types import KINDS
from monitor.policy import Policy
from tagwatch.data import Question

# Poisoned feedback: consistent relabelling of frequent tag pairs, as an attacker steering the model would send.
SWAPPED_PAIRS: tuple[tuple[str, str], ...] = (("python", "javascript"), ("java", "c#"), ("android", "ios"))
GUARD_SIZE = 2_000


def swap_tags(pairs: Sequence[tuple[str, str]] = SWAPPED_PAIRS) -> Callable[[Question], Question]:
    """Feedback that swaps each pair of tags (python <-> javascript, ...) and keeps the other tags."""
    mapping = {a: b for a, b in pairs} | {b: a for a, b in pairs}

    def relabel(q: Question) -> Question:
        return dataclasses.replace(q, tags=tuple(mapping.get(t, t) for t in q.tags))

    return relabel


def random_tags(vocabulary: Sequence[str], *, seed: int) -> Callable[[Question], Question]:
    """Feedback with as many tags as the truth, drawn at random from ``vocabulary`` and all wrong."""
    rng = random.Random(seed)
    pool = sorted(vocabulary)

    def relabel(q: Question) -> Question:
        wrong = [t for t in pool if t not in q.tags]
        return dataclasses.replace(q, tags=tuple(rng.sample(wrong, min(len(wrong), max(1, len(q.tags))))))

    return relabel


def _guard_from(candidates: Sequence[Question], training: Sequence[Question], seed: int) -> list[Question]:
    """Trusted questions of the training period that the first model did not train on: its guard set."""
    used = {q.id for q in training}
    return sample([q for q in candidates if q.id not in used], GUARD_SIZE, seed + 1)


def _poisoned_summary(result: BacktestResult) -> dict[str, Any]:
    labels = [w.retrain for w in result.windows if w.retrain]
    return {
        "windows": len(result.windows),
        "alarms": result.alarms(),
        "detections": {k: sum(k in w.detected for w in result.windows) for k in KINDS},
        "retrains": len(labels),
        "promotions": sum(1 for label in labels if label.startswith("promoted")),
        "held": sum(1 for label in labels if label.startswith("held")),
        "rejected": sum(1 for label in labels if label.startswith("rejected")),
        "mean_f1_true_labels": sum(w.f1["policy"] for w in result.windows) / len(result.windows)
        if result.windows
        else None,
        "result": result.to_dict(),
    }


def run_scenarios(
    questions: Sequence[Question],
    settings: Any,
    *,
    window: int = 500,
    max_train: int | None = 12_000,
    stable_windows: int = 20,
    poisoned_windows: int = 10,
    feedback_share: float = 1.0,
    seed: int = 0,
    scenarios: Sequence[str] = ("stable", "poisoned", "chronological"),
) -> dict[str, Any]:
    """The scenarios of the backtest: a shuffled stable stream, the same stream with poisoned feedback (consistent
    relabelling, random wrong tags), and the chronological stream into later years."""
    from monitor.drift.types import Thresholds
    from retrain.config import RetrainConfig

    common = {
        "thresholds": Thresholds.from_settings(settings),
        "policy": Policy.from_settings(settings),
        "retrain_config": RetrainConfig.from_settings(settings),
        "top_n": settings.top_n_tags,
        "max_tags": settings.max_tags,
        "seed": seed,
        "feedback_share": feedback_share,
    }
    out: dict[str, Any] = {"window": window, "max_train": max_train, "feedback_share": feedback_share}

    # Stable: train on a random half of all years, replay the other half shuffled.
    if "stable" in scenarios or "poisoned" in scenarios:
        shuffled = list(questions)
        random.Random(seed).shuffle(shuffled)
        half = len(shuffled) // 2
        training = sample(shuffled[:half], max_train, seed)
        model, reference, baseline = train_initial(
            training, top_n=settings.top_n_tags, max_tags=settings.max_tags, seed=seed
        )
        guard = _guard_from(shuffled[:half], training, seed)
        if "stable" in scenarios:
            stream = shuffled[half:][: window * stable_windows]
            stable = run_backtest(
                model, reference, baseline, windows_of(stream, window), arms=("policy",), guard=guard, **common
            )
            out["stable"] = {
                "windows": len(stable.windows),
                "alarms": stable.alarms(),
                "detections": {k: sum(k in w.detected for w in stable.windows) for k in KINDS},
                "retrains": sum(1 for w in stable.windows if w.retrain),
                "result": stable.to_dict(),
            }
        if "poisoned" in scenarios:
            # The same questions as the stable stream, every one with feedback that lies.
            stream = shuffled[half:][: window * poisoned_windows]
            attacks = {
                "swap": swap_tags(),
                "random": random_tags(model.tags, seed=seed),
            }
            out["poisoned"] = {"pairs": [list(p) for p in SWAPPED_PAIRS]}
            for name, relabel in attacks.items():
                poisoned = run_backtest(
                    model,
                    reference,
                    baseline,
                    windows_of(stream, window),
                    arms=("policy",),
                    guard=guard,
                    relabel=relabel,
                    **common,
                )
                out["poisoned"][name] = _poisoned_summary(poisoned)

    if "chronological" not in scenarios:
        return out
    # Chronological: train before May 2018, replay May 2018 (same crawl: stable), then 2019 and later.
    split_at = datetime(2018, 5, 1, tzinfo=UTC)
    drift_at = datetime(2019, 1, 1, tzinfo=UTC)
    early = [q for q in questions if q.created_at is None or q.created_at < split_at]
    calm = [q for q in questions if q.created_at is not None and split_at <= q.created_at < drift_at]
    later = [q for q in questions if q.created_at is not None and q.created_at >= drift_at]
    training = sample(early, max_train, seed)
    model, reference, baseline = train_initial(
        training, top_n=settings.top_n_tags, max_tags=settings.max_tags, seed=seed
    )
    guard = _guard_from(early, training, seed)
    calm_windows = windows_of(calm[: window * 4], window)
    windows = calm_windows + windows_of(later, window)
    chrono = run_backtest(model, reference, baseline, windows, guard=guard, **common)
    shift = len(calm_windows)
    first = chrono.first_confirmed(shift)
    after = [w for w in chrono.windows if w.index >= shift]

    def mean(arm: str) -> float:
        return sum(w.f1[arm] for w in after) / len(after) if after else float("nan")

    out["chronological"] = {
        "windows": len(chrono.windows),
        "shift_window": shift,
        "alarms_before_shift": sum(1 for w in chrono.windows if w.index < shift and w.confirmed),
        "first_confirmed_window": first,
        "detection_delay_windows": (first - shift + 1) if first is not None else None,
        "mean_f1_after_shift": {arm: mean(arm) for arm in ("frozen", "policy", "oracle")},
        "policy_vs_oracle": mean("policy") / mean("oracle") if after else None,
        "retrains": [w.retrain for w in chrono.windows if w.retrain],
        "result": chrono.to_dict(),
    }
    return out

"""Backtest: replay history through the same detection, policy and retrain code, offline.

Three arms see the same windows: ``frozen`` never retrains, ``policy`` retrains when tagwatch's policy says so (and
promotes only a challenger that wins), ``oracle`` retrains after every window. Each window is scored with the model
each arm had *before* the window (micro-F1 over all true tags), as production would have seen it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from monitor.drift.types import KINDS
from monitor.policy import Policy, WindowVerdict, decide, retrain_label
from tagwatch.data import Question
from tagwatch.registry import CHAMPION, PREVIOUS

log = logging.getLogger(__name__)

T0 = datetime(2000, 1, 1, tzinfo=UTC)


class MemoryRegistry:
    """An in-process registry with the surface of ``tagwatch.registry.Registry`` that the retrain job uses."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        model: Any,
        *,
        params: Any,
        metrics: dict[str, Any],
        data_window: Any,
        reference: Sequence[Question],
        holdout_ids: Any = None,
        lineage: Any = None,
        guard: Sequence[Question] | None = None,
    ) -> str:
        version = str(len(self._versions) + 1)
        model.version = version
        self._versions[version] = {
            "model": model,
            "metrics": metrics,
            "reference": list(reference),
            "guard": list(guard or ()),
            "lineage": lineage or {},
        }
        return version

    def champion_version(self) -> str | None:
        return self._aliases.get(CHAMPION)

    def get_alias(self, alias: str) -> str | None:
        return self._aliases.get(alias)

    def set_alias(self, alias: str, version: str, **_: Any) -> None:
        self._aliases[alias] = version

    def promote(self, version: str, **_: Any) -> None:
        current = self._aliases.get(CHAMPION)
        if current is not None and current != version:
            self._aliases[PREVIOUS] = current
        self._aliases[CHAMPION] = version

    def load_model(self, version: str) -> Any:
        return self._versions[version]["model"]

    def load_reference(self, version: str) -> list[Question]:
        return list(self._versions[version]["reference"])

    def load_guard(self, version: str) -> list[Question]:
        return list(self._versions[version]["guard"])

    def version_info(self, version: str) -> Any:
        return SimpleNamespace(metrics=self._versions[version]["metrics"])


@dataclass
class WindowRecord:
    index: int
    since: str | None
    until: str | None
    n: int
    f1: dict[str, float]
    detected: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    decision: str = ""
    retrain: str | None = None
    policy_version: str | None = None
    # The retrain's comparison (recent hold-out, guard set, feedback check), when one ran.
    retrain_detail: dict[str, Any] | None = None


@dataclass
class BacktestResult:
    windows: list[WindowRecord]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"windows": [w.__dict__ for w in self.windows], "seconds": round(self.seconds, 1)}

    def alarms(self) -> int:
        """Windows in which the policy confirmed drift of any kind."""
        return sum(1 for w in self.windows if w.confirmed)

    def first_confirmed(self, start: int = 0) -> int | None:
        return next((w.index for w in self.windows if w.index >= start and w.confirmed), None)


def windows_of(stream: Sequence[Question], size: int) -> list[list[Question]]:
    return [list(stream[i : i + size]) for i in range(0, len(stream) - size + 1, size)]


def _f1(model: Any, questions: Sequence[Question]) -> float:
    from retrain.compare import holdout_scores

    predicted = [[t for t, _ in tags] for tags in model.predict(questions)]
    return holdout_scores(predicted, [q.tags for q in questions]).micro_f1


def run_backtest(
    initial_model: Any,
    reference: Sequence[Question],
    baseline_metrics: dict[str, Any],
    windows: Sequence[Sequence[Question]],
    *,
    thresholds: Any,
    policy: Policy,
    retrain_config: Any,
    top_n: int,
    max_tags: int,
    seed: int = 0,
    feedback_share: float = 1.0,
    arms: Sequence[str] = ("frozen", "policy", "oracle"),
    guard: Sequence[Question] = (),
    relabel: Callable[[Question], Question] | None = None,
) -> BacktestResult:
    """Replay ``windows`` through the arms; the policy arm runs the real detection, policy and retrain code.

    ``guard``: the trusted guard set registered with the first model. ``relabel``: what the feedback says instead of
    the true tags (poisoned feedback); the arms are still scored on the true tags.
    """
    from monitor.drift.detect import detect_drift, prepare
    from monitor.drift.types import Baseline, DriftInput
    from retrain.promote import retrain
    from retrain.recent import mix_reference
    from retrain.train import train_model

    started = time.perf_counter()
    rng = random.Random(seed)
    registry = MemoryRegistry()
    v1 = registry.register(
        initial_model,
        params={},
        metrics={"holdout_random": baseline_metrics},
        data_window={},
        reference=reference,
        guard=guard,
    )
    registry.promote(v1)
    oracle_model = initial_model
    prepared: dict[str, Any] = {}
    history: list[WindowVerdict] = []
    labelled: list[Question] = []
    records: list[WindowRecord] = []

    for k, window in enumerate(windows):
        champion_version = registry.champion_version()
        assert champion_version is not None
        champion = registry.load_model(champion_version)
        dated = [q.created_at for q in window if q.created_at is not None]
        rec = WindowRecord(
            index=k,
            since=min(dated).date().isoformat() if dated else None,
            until=max(dated).date().isoformat() if dated else None,
            n=len(window),
            f1={},
            policy_version=champion_version,
        )
        if "frozen" in arms:
            rec.f1["frozen"] = _f1(initial_model, window)
        if "oracle" in arms:
            rec.f1["oracle"] = _f1(oracle_model, window)
        feedback = [rng.random() < feedback_share for _ in window]
        told = [relabel(q) for q in window] if relabel is not None else list(window)
        if "policy" in arms:
            rec.f1["policy"] = _f1(champion, window)
            if champion_version not in prepared:
                ref = registry.load_reference(champion_version)
                prepared[champion_version] = (
                    prepare(DriftInput(ref, true_tags=[q.tags for q in ref]), champion, thresholds, seed=seed),
                    Baseline.from_metrics(_baseline(registry.version_info(champion_version).metrics)),
                )
            ref_prepared, baseline = prepared[champion_version]
            current = DriftInput(
                window, true_tags=[q.tags if fb else None for q, fb in zip(told, feedback, strict=True)]
            )
            result = detect_drift(ref_prepared, current, champion, baseline, thresholds, seed=seed, report=False)
            rec.detected = result.detected_kinds
            rec.scores = {kind: r.score for kind, r in result.kinds.items()}
            verdict = WindowVerdict(
                at=T0 + timedelta(minutes=k),
                model_version=champion_version,
                detected={kind: r.detected for kind, r in result.kinds.items()},
                enough_data={kind: r.enough_data for kind, r in result.kinds.items()},
            )
        labelled.extend(q for q, fb in zip(told, feedback, strict=True) if fb)
        recent = labelled[-retrain_config.window :]
        if "policy" in arms:
            decision = decide(
                [*history, verdict], policy=policy, now=verdict.at, last_retrain_at=None, labelled_available=len(recent)
            )
            rec.confirmed = [kind for kind in KINDS if decision.confirmed[kind]]
            rec.decision = decision.reasons[-1] if decision.reasons else ""
            if decision.retrain:
                outcome = retrain(
                    registry,
                    recent,
                    config=retrain_config,
                    top_n=top_n,
                    max_tags=max_tags,
                    seed=seed + k,
                    trigger=f"backtest window {k}: {decision.trigger}",
                )
                verdict = dataclasses.replace(
                    verdict, retrain_started=True, retrain_result=outcome.result, retrain_trigger=decision.trigger
                )
                rec.retrain = retrain_label(outcome.result, outcome.challenger_version, decision.trigger)
                rec.retrain_detail = outcome.comparison
            history.append(verdict)
        if "oracle" in arms and len(recent) >= retrain_config.min_labelled:
            ref = registry.load_reference(v1)
            oracle_model = train_model(
                mix_reference(recent, ref, ratio=retrain_config.reference_ratio, seed=seed),
                top_n=top_n,
                max_tags=max_tags,
                seed=seed + k,
            )
        log.info(
            "window %d %s..%s f1 %s detected %s confirmed %s %s",
            k,
            rec.since,
            rec.until,
            {a: round(v, 3) for a, v in rec.f1.items()},
            rec.detected,
            rec.confirmed,
            rec.retrain or "",
        )
        records.append(rec)
    return BacktestResult(records, time.perf_counter() - started)


def _baseline(metrics: dict[str, Any]) -> dict[str, Any]:
    found = metrics.get("holdout_random") or metrics.get("holdout_recent")
    if found is None:
        raise ValueError("the model has no hold-out metrics")
    return dict(found)


def _train_initial(
    questions: Sequence[Question], *, top_n: int, max_tags: int, seed: int
) -> tuple[Any, list[Question], dict[str, Any]]:
    """Fit the first model on ``questions`` as ``tagwatch train`` does (minus the time hold-out)."""
    from retrain.evaluate import evaluate
    from retrain.split import split_holdouts
    from retrain.train import train_model

    splits = split_holdouts(questions, time_fraction=0.0, random_fraction=0.2, seed=seed)
    model = train_model(splits.train, top_n=top_n, max_tags=max_tags, seed=seed)
    return model, splits.random_holdout, evaluate(model, splits.random_holdout)


def _sample(questions: Sequence[Question], n: int | None, seed: int) -> list[Question]:
    if n is None or len(questions) <= n:
        return list(questions)
    keep = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in keep]


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
    return _sample([q for q in candidates if q.id not in used], GUARD_SIZE, seed + 1)


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
        training = _sample(shuffled[:half], max_train, seed)
        model, reference, baseline = _train_initial(
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
    training = _sample(early, max_train, seed)
    model, reference, baseline = _train_initial(
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

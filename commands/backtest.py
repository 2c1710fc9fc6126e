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
from tagwatch import progress
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

    stream = f"{', '.join(arms)}{'; poisoned feedback' if relabel is not None else ''}"
    with progress.task(f"backtest windows ({stream})", total=len(windows)) as replayed:
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
                    [*history, verdict],
                    policy=policy,
                    now=verdict.at,
                    last_retrain_at=None,
                    labelled_available=len(recent),
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
            replayed.advance()
    return BacktestResult(records, time.perf_counter() - started)


def _baseline(metrics: dict[str, Any]) -> dict[str, Any]:
    found = metrics.get("holdout_random") or metrics.get("holdout_recent")
    if found is None:
        raise ValueError("the model has no hold-out metrics")
    return dict(found)


def train_initial(
    questions: Sequence[Question], *, top_n: int, max_tags: int, seed: int
) -> tuple[Any, list[Question], dict[str, Any]]:
    """Fit the first model on ``questions`` as ``tagwatch train`` does (minus the time hold-out)."""
    from retrain.evaluate import evaluate
    from retrain.split import split_holdouts
    from retrain.train import train_model

    splits = split_holdouts(questions, time_fraction=0.0, random_fraction=0.2, seed=seed)
    model = train_model(splits.train, top_n=top_n, max_tags=max_tags, seed=seed)
    return model, splits.random_holdout, evaluate(model, splits.random_holdout)


def sample(questions: Sequence[Question], n: int | None, seed: int) -> list[Question]:
    if n is None or len(questions) <= n:
        return list(questions)
    keep = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in keep]

"""Jobs that tie the training stages to the data and the registry: load, split, train, evaluate, register."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tagwatch import progress
from tagwatch.data import Question
from tagwatch.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_SAMPLE_SIZE = 5_000
# The trusted guard set kept with a version trained from a data file (see retrain.promote): at most this many.
GUARD_SAMPLE_SIZE = 2_000


@dataclass
class TrainingRun:
    version: str
    champion: bool
    metrics: dict[str, Any]
    data_window: dict[str, Any]
    seconds: float


def select_window(questions: Sequence[Question], *, since: datetime | None, until: datetime | None) -> list[Question]:
    """Questions created in [since, until); undated questions count as old (they are kept unless ``since`` is set)."""
    out = []
    for q in questions:
        if q.created_at is None:
            if since is None:
                out.append(q)
            continue
        if since is not None and q.created_at < since:
            continue
        if until is not None and q.created_at >= until:
            continue
        out.append(q)
    return out


def data_window(questions: Sequence[Question]) -> dict[str, Any]:
    dated = [q.created_at for q in questions if q.created_at is not None]
    return {
        "since": min(dated).isoformat() if dated else None,
        "until": max(dated).isoformat() if dated else None,
        "n_questions": len(questions),
        "n_undated": len(questions) - len(dated),
    }


def reference_sample(questions: Sequence[Question], *, size: int, seed: int) -> list[Question]:
    """A seeded random sample of ``questions`` (at most ``size``)."""
    if len(questions) <= size:
        return list(questions)
    return random.Random(seed).sample(list(questions), size)


def load_data(path: Path) -> list[Question]:
    from tagwatch.data import load_questions

    # load_questions reports what it read and rejected (a warning when rows were bad).
    questions, _ = load_questions(path)
    return questions


def train_and_register(
    settings: Settings,
    questions: Sequence[Question],
    *,
    trigger: str = "manual",
    make_champion: bool | None = None,
    actor: str | None = None,
) -> TrainingRun:
    """Split off both hold-outs, train on the rest, evaluate, register; champion if the registry has none.

    ``actor``: who, recorded with the alias moves (default ``cli:<os user>``)."""
    from retrain.evaluate import evaluate
    from retrain.split import split_holdouts
    from retrain.train import train_model
    from tagwatch.history import local_actor
    from tagwatch.registry import Registry

    start = time.perf_counter()
    splits = split_holdouts(questions, seed=settings.seed)
    model = train_model(splits.train, top_n=settings.top_n_tags, max_tags=settings.max_tags, seed=settings.seed)
    holdouts = {"holdout_random": splits.random_holdout, "holdout_time": splits.time_holdout}
    metrics: dict[str, Any] = {}
    with progress.task("evaluating hold-outs", total=len(holdouts)) as evaluated:
        for name, holdout in holdouts.items():
            metrics[name] = evaluate(model, holdout)
            evaluated.advance()
    window = data_window(questions)
    window["n_train"] = len(splits.train)
    with progress.task("registering the model"):
        registry = Registry.from_settings(settings, actor=actor or local_actor())
        version = registry.register(
            model,
            params=model.params,
            metrics=metrics,
            data_window=window,
            # The drift reference: questions of the training period the model did not fit on (its random
            # hold-out), so predictions and scores on it are what the model does on unseen questions of its period.
            reference=reference_sample(splits.random_holdout, size=REFERENCE_SAMPLE_SIZE, seed=settings.seed),
            holdout_ids={
                "random": [q.id for q in splits.random_holdout],
                "time": [q.id for q in splits.time_holdout],
            },
            # Trusted labels the model never trained on, closest in time to the traffic it will see: the time
            # hold-out (disjoint from the reference above). Later versions inherit it; feedback never changes it.
            guard=reference_sample(
                splits.time_holdout or splits.random_holdout, size=GUARD_SAMPLE_SIZE, seed=settings.seed
            ),
            lineage={"trigger": trigger, "parent_version": registry.champion_version()},
        )
    champion = make_champion if make_champion is not None else registry.champion_version() is None
    if champion:
        registry.promote(version, trigger=trigger)
    return TrainingRun(
        version=version,
        champion=champion,
        metrics=metrics,
        data_window=window,
        seconds=time.perf_counter() - start,
    )

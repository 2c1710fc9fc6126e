"""The challenger's data: the newest labelled questions split into training part and hold-out, and the part of the
champion's reference mixed into its training data."""

from __future__ import annotations

import random
from collections.abc import Sequence

from retrain.config import RetrainConfig
from tagwatch.data import Question


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

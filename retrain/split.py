"""The hold-outs a first model is judged on: a time hold-out (the newest questions) and a random one (older)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from tagwatch.data import Question


@dataclass(frozen=True)
class Splits:
    train: list[Question]
    random_holdout: list[Question]
    time_holdout: list[Question]
    time_cutoff: datetime | None  # created_at of the oldest question in the time hold-out


def split_holdouts(
    questions: Sequence[Question], *, time_fraction: float = 0.2, random_fraction: float = 0.2, seed: int = 42
) -> Splits:
    """Two disjoint hold-outs and the training rest.

    Time hold-out: the newest ``time_fraction`` of the dated questions (by created_at, then id). Random hold-out:
    a seeded random ``random_fraction`` of the remaining, older questions (undated ones count as older). Each part
    keeps the input order.
    """
    if not 0 <= time_fraction < 1 or not 0 <= random_fraction < 1:
        raise ValueError(f"fractions must be in [0, 1): time {time_fraction}, random {random_fraction}")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"question ids must be unique (a duplicate could sit on both sides of a split): {dup!r}")
    dated = sorted(
        (i for i, q in enumerate(questions) if q.created_at is not None),
        key=lambda i: (questions[i].created_at, questions[i].id),
    )
    n_time = round(len(dated) * time_fraction)
    time_idx = set(dated[len(dated) - n_time :]) if n_time else set()
    rest = [i for i in range(len(questions)) if i not in time_idx]
    rng = np.random.default_rng(seed)
    n_random = round(len(rest) * random_fraction)
    random_idx = {rest[int(k)] for k in rng.permutation(len(rest))[:n_random]}
    cutoff = questions[dated[len(dated) - n_time]].created_at if n_time else None
    return Splits(
        train=[q for i, q in enumerate(questions) if i not in time_idx and i not in random_idx],
        random_holdout=[q for i, q in enumerate(questions) if i in random_idx],
        time_holdout=[q for i, q in enumerate(questions) if i in time_idx],
        time_cutoff=cutoff,
    )


def random_split(
    questions: Sequence[Question], *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Question], list[Question]]:
    """(train, test): a seeded random ``test_fraction`` of all questions, whatever their dates, is the test part.

    The anchors' protocol, the split the reference results for this data were measured on: easier than
    ``split_holdouts``, whose random hold-out holds only questions older than the time cut and whose model trains
    on 64 % of the data instead of 80 %. Each part keeps the input order.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(len(questions) * test_fraction)
    test = set(np.random.default_rng(seed).permutation(len(questions))[:n_test].tolist())
    return (
        [q for i, q in enumerate(questions) if i not in test],
        [q for i, q in enumerate(questions) if i in test],
    )

"""Question builders shared by the retrain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tagwatch.data import Question

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def question(i: int, *, dated: bool = True, tags: tuple[str, ...] = ("python",)) -> Question:
    """Question ``i``: created ``i`` hours after ``T0`` (or undated), with ``tags``."""
    return Question(
        id=str(1000 + i),
        created_at=T0 + timedelta(hours=i) if dated else None,
        title=f"question {i}",
        body="",
        body_format="none",
        tags=tags,
    )


def labelled(questions: list[Question], n: int, start: datetime) -> list[Question]:
    """The first ``n`` of ``questions`` as labelled requests, one a minute from ``start``."""
    return [
        Question(
            id=f"r:{i:032x}",
            created_at=start + timedelta(minutes=i),
            title=q.title,
            body=q.body,
            body_format=q.body_format,
            tags=q.tags,
        )
        for i, q in enumerate(questions[:n])
    ]

"""Questions as a pandas DataFrame and back (pandas is imported when used, not with the package)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tagwatch.data.parse import normalize_tags, parse_date
from tagwatch.data.records import Question
from tagwatch.text import detect_format

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = ("id", "created_at", "title", "body", "body_format", "tags", "score")


def to_frame(questions: Iterable[Question]) -> pd.DataFrame:
    """Questions as a DataFrame (``FRAME_COLUMNS``).

    created_at as UTC datetimes (NaT if none), tags space-joined, score as nullable Int64.
    """
    import pandas as pd

    qs = list(questions)
    return pd.DataFrame(
        {
            "id": pd.Series([q.id for q in qs], dtype=object),
            "created_at": pd.to_datetime(pd.Series([q.created_at for q in qs], dtype=object), utc=True),
            "title": pd.Series([q.title for q in qs], dtype=object),
            "body": pd.Series([q.body for q in qs], dtype=object),
            "body_format": pd.Series([q.body_format for q in qs], dtype=object),
            "tags": pd.Series([" ".join(q.tags) for q in qs], dtype=object),
            "score": pd.Series([q.score for q in qs], dtype="Int64"),
        }
    )


def _frame_date(value: object) -> datetime | None:
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return parse_date(value)
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        if value.tzinfo is None:
            raise ValueError(f"naive created_at {value!r}: expected UTC-aware datetimes")
        return (value.to_pydatetime() if isinstance(value, pd.Timestamp) else value).astimezone(UTC)
    raise ValueError(f"created_at {value!r} is not a date")


def _frame_score(value: object) -> int | None:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, int | float | str) or hasattr(value, "__int__"):
        number = float(value)  # type: ignore[arg-type]
        if number != int(number):
            raise ValueError(f"score {value!r} is not an integer")
        return int(number)
    raise ValueError(f"score {value!r} is not a number")


def from_frame(df: pd.DataFrame) -> list[Question]:
    """The inverse of ``to_frame``: one Question per row, in row order. Values that do not convert raise."""
    missing = [c for c in ("id", "created_at", "title", "body", "tags") if c not in df.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    n = len(df)
    formats = df["body_format"].tolist() if "body_format" in df.columns else [None] * n
    scores = df["score"].astype(object).tolist() if "score" in df.columns else [None] * n
    out: list[Question] = []
    rows = zip(
        df["id"].tolist(),
        df["created_at"].astype(object).tolist(),
        df["title"].tolist(),
        df["body"].tolist(),
        formats,
        df["tags"].tolist(),
        scores,
        strict=True,
    )
    for i, (qid, created, title, body, body_format, tags, score) in enumerate(rows):
        try:
            tag_list = tags.split() if isinstance(tags, str) else list(tags)
            body = "" if body is None or (isinstance(body, float) and body != body) else str(body)
            out.append(
                Question(
                    id=str(qid),
                    created_at=_frame_date(created),
                    title=str(title),
                    body=body,
                    body_format=str(body_format) if body_format is not None else detect_format(body),
                    tags=normalize_tags(tag_list) if tag_list else (),
                    score=_frame_score(score),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"frame row {i} (id {qid!r}): {exc}") from exc
    return out

"""A logged request to store in the database tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tagwatch.db import PredictionRequest, new_request_id

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def logged_request(i: int, *, at: datetime | None = None, request_id: str | None = None) -> PredictionRequest:
    return PredictionRequest(
        id=request_id or new_request_id(),
        created_at=at or T0 + timedelta(minutes=i),
        title=f"How do I merge two dicts? #{i}",
        body="<p>I have <code>a = {1: 2}</code> and ünïcödé</p>",
        body_format="html",
        predicted=[{"tag": "python", "score": 0.91}, {"tag": "dictionary", "score": 0.4}],
        model_version="3",
        latency_seconds=0.0042,
    )

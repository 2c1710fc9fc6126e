"""Rows, waits and look-ups shared by the request-log tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from service.metrics import ServiceMetrics
from service.requestlog import FeedbackRow, PredictionRow, legacy_feedback_id
from tagwatch.db import Feedback, PredictionRequest, make_engine

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MiB = 1_048_576


def prediction(i: int, *, prefix: str = "r") -> PredictionRow:
    return PredictionRow(
        id=f"{prefix}{i:031d}"[-32:],
        created_at=T0 + timedelta(seconds=i),
        title=f"Question {i}: how to sort a list of dicts by a value?",
        # Tabs, backslashes and newlines: COPY's text format must escape them.
        body=f"<p>body {i} <code>sorted(x, key=...)</code> ünïcödé \t tab \\ backslash\nnewline</p>",
        predicted=[{"tag": "python", "score": 0.9}, {"tag": "sorting", "score": 0.35 + i % 10 / 100}],
        model_version="7",
        latency_seconds=0.002 + i / 1e6,
        body_format="html",
    )


def feedback(
    request_id: str, tags: list[str], *, at: datetime = T0, key: str | None = None, record_id: str | None = None
) -> FeedbackRow:
    """A feedback record; its id is derived from its content unless given, so the same call gives the same record
    (as a replayed spill line would)."""
    return FeedbackRow(
        id=record_id or legacy_feedback_id(request_id, tags, at),
        request_id=request_id,
        tags=tags,
        received_at=at,
        key_name=key,
    )


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def spill_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spill-*.jsonl")) if directory.exists() else []


def read_jsonl(files: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(PredictionRequest.id)).scalars())


def stored_feedback(engine: Engine) -> dict[str, list[str]]:
    """The feedback that counts: the latest record of each request (as ``fetch_requests`` reads it)."""
    with engine.connect() as conn:
        records = conn.execute(
            select(Feedback.request_id, Feedback.tags).order_by(Feedback.received_at, Feedback.id)
        ).all()
    return {rid: tags for rid, tags in records}


def feedback_records(engine: Engine) -> list[tuple[str, str, list[str], str | None]]:
    """Every stored feedback record: (id, request_id, tags, key_name), by id."""
    with engine.connect() as conn:
        records = conn.execute(
            select(Feedback.id, Feedback.request_id, Feedback.tags, Feedback.key_name).order_by(Feedback.id)
        ).all()
    return [(i, rid, tags, key) for i, rid, tags, key in records]


@dataclass
class Outage:
    """A database the writer reaches at ``url`` and that the test can take down and bring back."""

    url: str
    check_engine: Engine  # reaches the database directly, also while the writer cannot
    down: Callable[[], None]
    up: Callable[[], None]
    options: dict[str, float]  # short timeouts for make_engine, so that failures are quick
    freeze: Callable[[], None]  # writes hang (until thaw, or for SQLite the busy timeout) instead of failing
    thaw: Callable[[], None]

    def writer_engine(self, **options: float) -> Engine:
        options = {"connect_timeout": 5.0, "busy_timeout": 5.0, **self.options, **options}
        return make_engine(self.url, **options)  # type: ignore[arg-type]


def big_prediction(i: int, *, chars: int = 60_000, char: str = "x", prefix: str = "g") -> PredictionRow:
    row = prediction(i, prefix=prefix)
    return PredictionRow(
        id=row.id,
        created_at=row.created_at,
        title=row.title,
        body=char * chars,
        predicted=row.predicted,
        model_version=row.model_version,
        latency_seconds=row.latency_seconds,
    )


def spilled_ids(directory: Path) -> list[str]:
    """Prediction ids in the spill files, as another process would read them (what survives a kill)."""
    return [d["id"] for d in read_jsonl(spill_files(directory)) if d["kind"] == "prediction"]

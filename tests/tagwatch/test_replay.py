"""The stream replayer against the real service on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tagwatch.data import Question
from tagwatch.demo import ServiceThread
from tagwatch.replay import order_stream, replay
from tagwatch.settings import Settings
from tests.support import InMemorySource


@pytest.fixture
def service(settings: Settings, small_model: Any) -> Any:
    source = InMemorySource()
    source.add("1", small_model)
    with ServiceThread(settings.model_copy(update={"log_flush_interval_seconds": 0.05}), source=source) as s:
        yield s


def test_order_stream(small_training_set: list[Question]) -> None:
    stream = small_training_set[:50]
    assert order_stream(stream, shuffle=False, seed=0, limit=None) == stream
    shuffled = order_stream(stream, shuffle=True, seed=1, limit=20)
    assert len(shuffled) == 20
    assert shuffled != stream[:20]
    assert shuffled == order_stream(stream, shuffle=True, seed=1, limit=20)


def test_replay_sends_questions_and_feedback(service: Any, small_training_set: list[Question]) -> None:
    from tagwatch.db import count_rows, make_engine

    stream = small_training_set[:120]
    summary = asyncio.run(
        replay(stream, url=service.url, concurrency=4, feedback_share=0.5, feedback_delay=0.05, seed=3)
    )
    assert summary.sent == summary.answered == 120
    assert summary.statuses == {"200": 120}
    assert 30 < summary.feedback_sent < 90
    assert summary.feedback_ok == summary.feedback_sent
    assert summary.errors == {}
    d = summary.to_dict()
    assert d["latency_p50_ms"] is not None
    assert d["latency_p50_ms"] <= d["latency_p99_ms"]
    settings = service.server.config.app.state.tagwatch.settings
    state = service.server.config.app.state.tagwatch
    state.writer.flush()
    engine = make_engine(settings.db_url)
    counts = count_rows(engine)
    engine.dispose()
    assert counts["prediction_requests"] == 120
    assert counts["feedback"] == summary.feedback_ok


def test_replay_rate_and_bounds(service: Any, small_training_set: list[Question]) -> None:
    summary = asyncio.run(
        replay(small_training_set[:500], url=service.url, rate=40, concurrency=2, feedback_share=0.0, max_seconds=1.0)
    )
    # Paced at 40/s and stopped after a second: about 40 sent, far fewer than 500.
    assert 20 <= summary.sent <= 60
    assert summary.feedback_sent == 0


def test_replay_reports_errors_instead_of_raising(small_training_set: list[Question]) -> None:
    summary = asyncio.run(replay(small_training_set[:3], url="http://127.0.0.1:9", concurrency=1))
    assert summary.sent == 3
    assert summary.answered == 0
    assert sum(summary.errors.values()) == 3
    with pytest.raises(ValueError, match="feedback_share"):
        asyncio.run(replay([], url="http://x", feedback_share=2.0))

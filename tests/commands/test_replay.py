"""The stream replayer against the real service on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from commands.polling import ServiceThread
from commands.replay import order_stream, replay
from tagwatch.data import Question
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


REPLAY_KEY = "cmVwbGF5LWtleS1mb3ItdGhlLXJlcGxheS10ZXN0"


@pytest.fixture
def keyed_service(settings: Settings, small_model: Any) -> Any:
    source = InMemorySource()
    source.add("1", small_model)
    keyed = Settings(
        **{**settings.model_dump(), "log_flush_interval_seconds": 0.05, "feedback_keys": f"replay={REPLAY_KEY}"}
    )
    with ServiceThread(keyed, source=source) as s:
        yield s


def _feedback_keys(service: Any) -> list[str | None]:
    from sqlalchemy import select

    from tagwatch.db import Feedback

    state = service.server.config.app.state.tagwatch
    state.writer.flush()
    with state.engine.connect() as conn:
        return list(conn.execute(select(Feedback.key_name)).scalars())


def test_replay_sends_the_key(keyed_service: Any, small_training_set: list[Question]) -> None:
    summary = asyncio.run(
        replay(small_training_set[:40], url=keyed_service.url, concurrency=4, feedback_share=1.0, api_key=REPLAY_KEY)
    )
    assert summary.answered == 40
    assert summary.feedback_ok == summary.feedback_sent == 40
    assert summary.refused == 0
    assert _feedback_keys(keyed_service) == ["replay"] * 40


def test_replay_without_the_key_counts_refusals(keyed_service: Any, small_training_set: list[Question]) -> None:
    stream = small_training_set[:10]
    missing = asyncio.run(replay(stream, url=keyed_service.url, concurrency=2, feedback_share=1.0))
    # Predictions are open; every feedback is refused, counted, never raised.
    assert missing.answered == 10
    assert (missing.feedback_sent, missing.feedback_ok) == (10, 0)
    assert missing.errors == {"feedback 401": 10}
    assert missing.refused == 10
    wrong = asyncio.run(replay(stream, url=keyed_service.url, concurrency=2, feedback_share=1.0, api_key="bm9wZQ"))
    assert wrong.errors == {"feedback 403": 10}
    assert _feedback_keys(keyed_service) == []


def test_replay_command_reads_the_key_from_the_environment(
    keyed_service: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import csv
    import gzip

    from typer.testing import CliRunner

    from commands.cli import app
    from tagwatch.settings import BUNDLED_DATA, get_settings

    # Twelve questions of the bundled file, in its format (reading all of it three times would take seconds).
    data = tmp_path / "questions.csv"
    with gzip.open(BUNDLED_DATA, "rt", newline="") as src, open(data, "w", newline="") as dst:
        reader = csv.reader(src)
        csv.writer(dst).writerows([next(reader) for _ in range(13)])
    monkeypatch.setenv("TAGWATCH_HOME", str(tmp_path / "cli-home"))
    args = ["replay", "--url", keyed_service.url, "--data", str(data), "--feedback-share", "1", "--feedback-delay", "0"]
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        monkeypatch.setenv("TAGWATCH_API_KEY", REPLAY_KEY)
        ok = runner.invoke(app, [*args, "--json"])
        assert ok.exit_code == 0, ok.output
        assert '"feedback_ok": 12' in ok.output
        assert REPLAY_KEY not in ok.output
        # Without a key: the predictions are answered, the feedback refused, and the command says why and fails.
        monkeypatch.delenv("TAGWATCH_API_KEY")
        refused = runner.invoke(app, args)
        assert refused.exit_code == 1
        assert "refused for their API key" in refused.output
        # --key takes the same secret on the command line.
        assert runner.invoke(app, [*args, "--key", REPLAY_KEY]).exit_code == 0
    finally:
        get_settings.cache_clear()
    assert _feedback_keys(keyed_service) == ["replay"] * 24

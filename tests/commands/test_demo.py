"""The embedded loop, end to end on a small plan: train, serve, replay, monitor, detect, retrain, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.demo import DemoPlan, plot_timeline, run_demo, split_stream
from tagwatch.data import Question
from tagwatch.settings import Settings


def test_split_stream(bundled_questions: list) -> None:  # type: ignore[type-arg]
    plan = DemoPlan(window=100, stable_windows=2, drift_windows=3, max_train=1000)
    train, stable, drift = split_stream(bundled_questions, plan)
    assert len(train) == 1000
    assert len(stable) == 200
    assert len(drift) == 300
    assert all(q.created_at is None or q.created_at < plan.train_until for q in train)
    assert all(plan.train_until <= q.created_at < plan.drift_since for q in stable)  # type: ignore[operator]
    assert all(q.created_at >= plan.drift_since for q in drift)  # type: ignore[operator]


@pytest.mark.slow
def test_demo_loop_catches_the_shift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        home=tmp_path / "demo",
        reload_interval_seconds=0.5,
        window_size=300,
        min_window=300,
        drift_min_current=250,
        drift_min_feedback=100,
        retrain_window=1500,
        retrain_min_labelled=300,
        log_flush_interval_seconds=0.1,
    )
    plan = DemoPlan(window=300, stable_windows=2, drift_windows=4, max_train=6000, feedback_share=0.8)
    result = run_demo(settings, plan, echo=print)
    phases = [r.phase for r in result.timeline]
    assert phases == ["stable"] * 2 + ["drift"] * 4
    # No alarm on the stable stretch; the shift is confirmed within two drifted windows.
    assert all(not r.confirmed for r in result.timeline[:2])
    first_confirmed = next(r.window for r in result.timeline if r.confirmed)
    assert first_confirmed - 2 <= 1
    assert any(r.retrain for r in result.timeline)
    assert result.plot is not None
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
    assert result.reports_index is not None
    index = result.reports_index.read_text()
    assert all(r.report in index for r in result.timeline if r.report)
    out = capsys.readouterr().out
    assert "[4/4]" in out


def test_demo_service_requires_a_key_generated_per_run(
    settings: Settings, small_model: Any, small_training_set: list[Question]
) -> None:
    import asyncio

    from sqlalchemy import select

    from commands.demo import DEMO_KEY_NAME, with_demo_key
    from commands.polling import ServiceThread
    from commands.replay import replay
    from tagwatch.db import Feedback
    from tests.support import InMemorySource

    served, secret = with_demo_key(settings)
    _, other = with_demo_key(settings)
    assert secret != other
    assert len(secret) >= 32
    assert [(k.name, k.secret.get_secret_value()) for k in served.feedback_keys] == [(DEMO_KEY_NAME, secret)]
    assert served.predict_keys == ()
    assert secret not in repr(served)
    source = InMemorySource()
    source.add("1", small_model)
    with ServiceThread(served.model_copy(update={"log_flush_interval_seconds": 0.05}), source=source) as service:
        stream = small_training_set[:20]
        keyed = asyncio.run(replay(stream, url=service.url, concurrency=4, feedback_share=1.0, api_key=secret))
        assert (keyed.answered, keyed.feedback_ok, keyed.refused) == (20, 20, 0)
        # Another run's key (or none) is refused.
        assert asyncio.run(replay(stream[:3], url=service.url, feedback_share=1.0, api_key=other)).refused == 3
        assert asyncio.run(replay(stream[:3], url=service.url, feedback_share=1.0)).refused == 3
        state = service.server.config.app.state.tagwatch
        state.writer.flush()
        with state.engine.connect() as conn:
            assert list(conn.execute(select(Feedback.key_name)).scalars()) == [DEMO_KEY_NAME] * 20


def test_plot_timeline(tmp_path: Path) -> None:
    from commands.demo import TimelineRow

    rows = [
        TimelineRow(
            window=i,
            phase="stable" if i < 2 else "drift",
            period="",
            requests=10,
            served_version="1",
            f1_served=0.6,
            f1_frozen=0.6 - 0.1 * i,
            scores={"data": 0.5 + i, "concept": None, "feature": 0.3},
            detected=[],
            confirmed=[],
            decision="",
            retrain="promoted v2" if i == 3 else None,
            report=None,
        )
        for i in range(5)
    ]
    path = plot_timeline(rows, tmp_path / "t.png")
    assert path.stat().st_size > 10_000

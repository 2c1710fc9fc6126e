"""Held feedback: written with its request, waiting for a request still spilled, orphans dropped loudly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service.requestlog import RequestLogWriter, encode_row
from tagwatch.db import count_rows
from tests.service.requestlog.support import (
    feedback,
    prediction,
    read_jsonl,
    spill_files,
    stored_feedback,
    stored_ids,
    wait_until,
)


def test_feedback_in_the_same_batch_as_its_request(
    engine: Engine, make_writer: Callable[..., RequestLogWriter]
) -> None:
    writer = make_writer(engine, flush_interval=0.5)
    writer.start()
    for i in range(30):
        row = prediction(i)
        writer.submit_prediction(row)
        assert writer.is_pending(row.id)
        writer.submit_feedback(feedback(row.id, [f"tag{i}"]))
    assert writer.flush(10)
    assert stored_feedback(engine) == {prediction(i).id: [f"tag{i}"] for i in range(30)}
    assert writer.stats.feedback_deferred == 0


def test_feedback_waits_for_a_request_still_in_a_spill_file(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # The request lands in a spill file (queue full), its feedback in the queue: the feedback comes out first
    # and must wait until the spill file has been replayed.
    first = make_writer(engine, queue_size=1)
    filler, req = prediction(1), prediction(2)
    first.submit_prediction(filler)
    first.submit_prediction(req)  # queue full: spilled
    assert first.stats.rows_spilled == 1
    first.stop(5.0)  # never started: the queued filler is spilled too
    assert len(spill_files(tmp_path / "spill")) == 1

    second = make_writer(engine, batch_size=1)
    second.submit_feedback(feedback(req.id, ["python"]))  # queued before the spill file is replayed
    second.start()
    assert second.flush(10)
    assert sorted(stored_ids(engine)) == sorted([filler.id, req.id])
    assert stored_feedback(engine) == {req.id: ["python"]}
    assert second.stats.feedback_deferred == 1
    assert not second.is_pending(req.id)
    assert spill_files(tmp_path / "spill") == []


def test_feedback_for_an_unknown_request_is_held_then_dropped_loudly(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_writer(engine, orphan_timeout=1.0)
    writer.start()
    writer.submit_feedback(feedback("f" * 32, ["python"]))
    writer.submit_prediction(prediction(1))
    assert writer.flush(10)  # an orphan does not block other rows nor a flush
    assert stored_ids(engine) == [prediction(1).id]
    assert writer.stats.feedback_held == 1
    wait_until(lambda: writer.stats.orphans_dropped == 1)
    assert count_rows(engine)["feedback"] == 0
    assert "f" * 32 in caplog.text


def test_held_orphan_feedback_is_spilled_on_stop(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    writer = make_writer(engine)
    writer.start()
    writer.submit_feedback(feedback("e" * 32, ["python"]))
    assert writer.flush(10)
    writer.stop(5.0)
    lines = read_jsonl(spill_files(tmp_path / "spill"))
    assert lines == [encode_row(feedback("e" * 32, ["python"]))]
    assert lines[0]["id"] == feedback("e" * 32, ["python"]).id

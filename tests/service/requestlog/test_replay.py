"""Replaying spill files: by the next writer, by one writer only, idempotent for old files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from service.requestlog import RequestLogWriter, encode_row, legacy_feedback_id
from tests.service.requestlog.support import (
    T0,
    feedback,
    feedback_records,
    prediction,
    read_jsonl,
    spill_files,
    stored_feedback,
    stored_ids,
)


def test_rows_after_stop_are_spilled_and_replayed_by_the_next_writer(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    writer = make_writer(engine)
    writer.start()
    writer.submit_prediction(prediction(1))
    writer.stop(5.0)
    writer.submit_prediction(prediction(2))  # e.g. a request finishing during shutdown
    writer.submit_feedback(feedback(prediction(2).id, ["late"]))
    assert stored_ids(engine) == [prediction(1).id]
    spilled = read_jsonl(spill_files(tmp_path / "spill"))
    assert [d["kind"] for d in spilled] == ["prediction", "feedback"]

    nxt = make_writer(engine)
    nxt.start()
    assert nxt.flush(10)
    assert sorted(stored_ids(engine)) == sorted([prediction(1).id, prediction(2).id])
    assert stored_feedback(engine) == {prediction(2).id: ["late"]}


def test_a_spill_file_is_replayed_by_one_writer_only(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # Two service processes sharing a spill dir start at once: a file locked by one is skipped by the other.
    old = make_writer(engine, queue_size=1)
    for i in range(50):
        old.submit_prediction(prediction(i))
    old.stop(5.0)
    assert len(spill_files(tmp_path / "spill")) == 1
    a, b = make_writer(engine), make_writer(engine)
    a.start()
    b.start()
    assert a.flush(10)
    assert b.flush(10)
    assert (a.stats.rows_replayed, b.stats.rows_replayed) in ((50, 0), (0, 50))
    assert sorted(stored_ids(engine)) == sorted(prediction(i).id for i in range(50))
    assert spill_files(tmp_path / "spill") == []


def test_an_old_spill_file_replayed_twice_stores_its_feedback_once(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # A spill file from before feedback records had ids, replayed, and then again (a crash before its deletion).
    req = prediction(1)
    old_line = {"kind": "feedback", "request_id": req.id, "tags": ["python"], "received_at": T0.isoformat()}
    spill = tmp_path / "spill"
    for run in range(2):
        spill.mkdir(exist_ok=True)
        lines = [json.dumps(encode_row(req)), json.dumps(old_line)]
        (spill / f"spill-{run:020d}-1-legacy.jsonl").write_text("\n".join(lines) + "\n")
        writer = make_writer(engine)
        writer.start()
        assert writer.flush(10)
        writer.stop(5.0)
        assert spill_files(spill) == []
    assert stored_ids(engine) == [req.id]
    assert feedback_records(engine) == [(legacy_feedback_id(req.id, ["python"], T0), req.id, ["python"], None)]

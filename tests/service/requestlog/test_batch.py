"""Writing batches on real SQLite and PostgreSQL: round trips, INSERT and SELECT only, COPY and its fallback,
append-only feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from service.metrics import ServiceMetrics
from service.requestlog import RequestLogWriter
from tagwatch.db import count_rows, fetch_requests, make_engine, upgrade_database
from tests.service.requestlog.support import (
    T0,
    feedback,
    feedback_records,
    prediction,
    sample,
    stored_feedback,
    stored_ids,
)


def test_rows_round_trip(engine: Engine, make_writer: Callable[..., RequestLogWriter]) -> None:
    metrics = ServiceMetrics()
    writer = make_writer(engine, metrics=metrics)
    writer.start()
    rows = [prediction(i) for i in range(250)]
    for row in rows:
        writer.submit_prediction(row)
    for row in rows[::10]:
        writer.submit_feedback(feedback(row.id, ["python", f"t{row.id[-2:]}"]))
    assert writer.flush(10)

    stored = {r.id: r for r in fetch_requests(engine)}
    assert set(stored) == {r.id for r in rows}
    for i, row in enumerate(rows):
        got = stored[row.id]
        assert got.created_at == row.created_at
        assert (got.title, got.body, got.body_format) == (row.title, row.body, row.body_format)
        assert got.predicted == tuple((p["tag"], p["score"]) for p in row.predicted)
        assert got.model_version == "7"
        assert got.latency_seconds == pytest.approx(row.latency_seconds)
        assert got.feedback_tags == (("python", f"t{row.id[-2:]}") if i % 10 == 0 else None)
    stats = writer.stats
    assert stats.predictions_written == 250
    assert stats.feedback_written == 25
    assert not any(writer.is_pending(r.id) for r in rows)
    assert writer.healthy
    assert sample(metrics, "tagwatch_request_log_rows_written_total", table="prediction_requests") == 250
    assert sample(metrics, "tagwatch_request_log_rows_written_total", table="feedback") == 25
    assert sample(metrics, "tagwatch_request_log_queue_capacity") == 1000
    assert sample(metrics, "tagwatch_request_log_queue_depth") == 0
    assert sample(metrics, "tagwatch_request_log_last_write_timestamp_seconds") > time.time() - 60
    # The method the writer used: COPY on PostgreSQL, INSERT on SQLite.
    if engine.dialect.name == "postgresql":
        assert (stats.method, stats.copy_rows, stats.insert_rows) == ("copy", 250, 0)
    else:
        assert (stats.method, stats.copy_rows, stats.insert_rows) == ("insert", 0, 250)


@pytest.mark.postgres
def test_the_writer_needs_only_insert_and_select(
    postgres_url: str, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # The API's database role may only INSERT and SELECT the request log: every path of the writer (COPY, its
    # fallback on stored ids, feedback records old and new, replayed spill files) must work with that alone.
    import uuid

    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    upgrade_database(postgres_url)
    admin = make_engine(postgres_url)
    role = f"tagwatch_api_test_{uuid.uuid4().hex[:8]}"
    database = make_url(postgres_url).database
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT ON prediction_requests, feedback TO "{role}"'))
    engine = make_engine(make_url(postgres_url).set(username=role, password=None))
    try:
        writer = make_writer(engine)
        writer.start()
        rows = [prediction(i) for i in range(30)]
        for row in rows[:20]:
            writer.submit_prediction(row)
        writer.submit_feedback(feedback(rows[0].id, ["first"], at=T0, key="replay"))
        assert writer.flush(10)
        # Stored ids again (COPY hits them and falls back), a replayed feedback record, a newer one.
        for row in rows[10:]:
            writer.submit_prediction(row)
        writer.submit_feedback(feedback(rows[0].id, ["first"], at=T0, key="replay"))
        writer.submit_feedback(feedback(rows[0].id, ["second"], at=T0 + timedelta(minutes=1), key="ops"))
        assert writer.flush(10)
        # An old spill file (feedback without id) replayed by the next writer.
        old_line = {"kind": "feedback", "request_id": rows[1].id, "tags": ["legacy"], "received_at": T0.isoformat()}
        (tmp_path / "spill").mkdir(exist_ok=True)
        (tmp_path / "spill" / f"spill-{1:020d}-1-legacy.jsonl").write_text(json.dumps(old_line) + "\n")
        nxt = make_writer(engine)
        nxt.start()
        assert nxt.flush(10)
        for w in (writer, nxt):
            w.stop(5.0)
            assert w.stats.write_failures == 0
            assert w.stats.rows_rejected == 0
        assert writer.stats.copy_fallbacks == 1
        assert sorted(stored_ids(admin)) == sorted(r.id for r in rows)
        assert stored_feedback(admin) == {rows[0].id: ["second"], rows[1].id: ["legacy"]}
        assert len(feedback_records(admin)) == 3
        # And the role really cannot change what is stored.
        with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as conn:
            conn.execute(text("UPDATE feedback SET tags = '[]'"))
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


@pytest.mark.postgres
def test_copy_falls_back_when_ids_are_already_stored(
    postgres_url: str, make_writer: Callable[..., RequestLogWriter]
) -> None:
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    try:
        writer = make_writer(engine)
        writer.start()
        for i in range(40):
            writer.submit_prediction(prediction(i))
        assert writer.flush(10)
        assert (writer.stats.copy_rows, writer.stats.copy_fallbacks) == (40, 0)
        # A retried batch whose commit had landed: 20 stored ids plus 10 new ones in one batch.
        for i in range(20, 50):
            writer.submit_prediction(prediction(i))
        assert writer.flush(10)
        stats = writer.stats
        assert stats.copy_fallbacks == 1
        assert stats.duplicates_skipped == 20
        assert stats.insert_rows == 10
        assert stats.predictions_written == 50
        assert sorted(stored_ids(engine)) == sorted(prediction(i).id for i in range(50))
        assert writer.healthy
    finally:
        engine.dispose()


def test_feedback_is_append_only_idempotent_and_the_latest_counts(
    engine: Engine, make_writer: Callable[..., RequestLogWriter]
) -> None:
    metrics = ServiceMetrics()
    writer = make_writer(engine, metrics=metrics)
    writer.start()
    req = prediction(1)
    writer.submit_prediction(req)
    # Same batch: several records for one request, each stored; the latest received_at counts.
    writer.submit_feedback(feedback(req.id, ["a"], at=T0, key="replay"))
    writer.submit_feedback(feedback(req.id, ["c"], at=T0 + timedelta(minutes=2), key="ops"))
    writer.submit_feedback(feedback(req.id, ["b"], at=T0 + timedelta(minutes=1)))
    # The same record twice in one batch (a spilled copy of a row in memory): stored once.
    writer.submit_feedback(feedback(req.id, ["b"], at=T0 + timedelta(minutes=1)))
    assert writer.flush(10)
    assert stored_feedback(engine) == {req.id: ["c"]}
    assert len(feedback_records(engine)) == 3
    # A replayed record (same id) is skipped; an older one is kept but does not count; a newer one counts.
    writer.submit_feedback(feedback(req.id, ["c"], at=T0 + timedelta(minutes=2), key="ops"))
    writer.submit_feedback(feedback(req.id, ["old"], at=T0 - timedelta(days=1)))
    assert writer.flush(10)
    assert stored_feedback(engine) == {req.id: ["c"]}
    writer.submit_feedback(feedback(req.id, ["python", "pandas"], at=T0 + timedelta(hours=1), key="replay"))
    assert writer.flush(10)
    assert stored_feedback(engine) == {req.id: ["python", "pandas"]}
    counts = count_rows(engine)
    assert (counts["prediction_requests"], counts["feedback"]) == (1, 5)
    records = feedback_records(engine)
    assert sorted((tags, key) for _, _, tags, key in records) == sorted(
        [(["a"], "replay"), (["c"], "ops"), (["b"], None), (["old"], None), (["python", "pandas"], "replay")]
    )
    (logged,) = fetch_requests(engine)
    assert (logged.feedback_tags, logged.feedback_key) == (("python", "pandas"), "replay")
    stats = writer.stats
    assert (stats.feedback_written, stats.feedback_duplicates_skipped) == (5, 2)
    assert sample(metrics, "tagwatch_request_log_rows_written_total", table="feedback") == 5

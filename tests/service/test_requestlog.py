"""The request-log writer against real SQLite and PostgreSQL, including real outages.

PostgreSQL outages: a TCP proxy between the writer and the server is killed (listener and every connection
closed) and restarted on the same port, or frozen (writes hang). SQLite outages: another connection holds the
write lock (writes fail after the busy timeout, or hang for as long as it is).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from service.metrics import ServiceMetrics
from service.requestlog import (
    FeedbackRow,
    PredictionRow,
    RequestLogWriter,
    decode_row,
    encode_row,
    legacy_feedback_id,
    row_bytes,
)
from tagwatch.db import Feedback, PredictionRequest, count_rows, fetch_requests, make_engine, upgrade_database
from tests.service.proxy import TcpProxy

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


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade_database(database_url)
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., RequestLogWriter]]:
    """Writers with fast test timings; every writer is stopped at the end of the test."""
    writers: list[RequestLogWriter] = []

    def factory(engine: Engine, **kwargs: object) -> RequestLogWriter:
        options: dict[str, object] = {
            "queue_size": 1000,
            "queue_bytes": 64 * MiB,
            "batch_size": 100,
            "flush_interval": 0.02,
            "spill_dir": tmp_path / "spill",
            "spill_max_bytes": 1024 * MiB,
            "metrics": ServiceMetrics(),
            "max_backoff": 0.2,
        }
        options.update(kwargs)
        writer = RequestLogWriter(engine, **options)  # type: ignore[arg-type]
        writers.append(writer)
        return writer

    yield factory
    for w in writers:
        w.stop(5.0)


# ------------------------------------------------------------------------------------------------ rows


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


def test_feedback_records_get_fresh_ids_and_old_spill_lines_a_stable_one() -> None:
    a = FeedbackRow(request_id="a" * 32, tags=["python"], received_at=T0)
    b = FeedbackRow(request_id="a" * 32, tags=["python"], received_at=T0)
    assert a.id != b.id
    assert len(a.id) == 32
    assert int(a.id, 16) >= 0
    # A line spilled before records had ids (no "id", no "key_name"): the same id every time it is read.
    old = {"kind": "feedback", "request_id": "a" * 32, "tags": ["python"], "received_at": T0.isoformat()}
    first, second = decode_row(dict(old)), decode_row(json.loads(json.dumps(old)))
    assert isinstance(first, FeedbackRow)
    assert isinstance(second, FeedbackRow)
    assert first.id == second.id == legacy_feedback_id("a" * 32, ["python"], T0)
    assert first.key_name is None
    # Another instant or other tags: another record.
    assert decode_row({**old, "tags": ["java"]}).id != first.id  # type: ignore[union-attr]
    later = (T0 + timedelta(seconds=1)).isoformat()
    assert decode_row({**old, "received_at": later}).id != first.id  # type: ignore[union-attr]
    # The same instant written in another timezone is the same record.
    paris = T0.astimezone(timezone(timedelta(hours=1))).isoformat()
    assert decode_row({**old, "received_at": paris}).id == first.id  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="key_name"):
        FeedbackRow(request_id="a" * 32, tags=["python"], received_at=T0, key_name="k" * 65)


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


def test_burst_bigger_than_the_queue_spills_and_is_written_later(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    metrics = ServiceMetrics()
    writer = make_writer(engine, queue_size=20, batch_size=10, metrics=metrics)
    writer.start()
    rows = [prediction(i) for i in range(600)]
    start = time.perf_counter()
    for i, row in enumerate(rows):
        writer.submit_prediction(row)
        if i % 7 == 0:
            writer.submit_feedback(feedback(row.id, ["burst"]))
    submit_seconds = time.perf_counter() - start
    stats = writer.stats
    assert stats.rows_spilled > 0
    assert sample(metrics, "tagwatch_request_log_rows_spilled_total") == stats.rows_spilled
    assert submit_seconds < 10  # never blocked on the database
    assert writer.flush(30)
    assert sorted(stored_ids(engine)) == sorted(r.id for r in rows)
    assert set(stored_feedback(engine)) == {r.id for r in rows[::7]}
    assert spill_files(tmp_path / "spill") == []
    assert writer.spill_pending == 0
    assert sample(metrics, "tagwatch_request_log_spill_pending_rows") == 0
    assert not any(writer.is_pending(r.id) for r in rows)


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


def test_damaged_spill_file_is_replayed_and_bad_lines_kept_aside(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # A process killed mid-write leaves a torn last line; a damaged line may sit anywhere.
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    good = [prediction(i) for i in range(5)]
    lines = [json.dumps(encode_row(r)) for r in good]
    torn = json.dumps(encode_row(prediction(99)))[:60]
    text = "\n".join([*lines[:2], '{"kind": "prediction", "id": 17}', *lines[2:], torn])
    (spill_dir / "spill-00000000000000000001-1-abcdef01.jsonl").write_text(text)
    metrics = ServiceMetrics()
    writer = make_writer(engine, metrics=metrics)
    writer.start()
    assert writer.is_pending(good[0].id)
    assert writer.flush(10)
    assert sorted(stored_ids(engine)) == sorted(r.id for r in good)
    assert writer.stats.rows_rejected == 2
    assert spill_files(spill_dir) == []
    rejected = read_jsonl(sorted(spill_dir.glob("rejected-*.jsonl")))
    assert [r["line"].strip() for r in rejected] == ['{"kind": "prediction", "id": 17}', torn]
    assert not writer.is_pending(prediction(99).id)
    assert sample(metrics, "tagwatch_request_log_spill_pending_rows") == 0


def test_spill_dir_failure_never_raises(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    writer = make_writer(engine, queue_size=1, spill_dir=blocker / "spill")
    for i in range(3):
        writer.submit_prediction(prediction(i))  # two of them cannot be queued nor spilled
    assert writer.stats.rows_lost == 2
    assert "LOST" in caplog.text
    assert not writer.is_pending(prediction(2).id)


def test_rows_are_validated_in_the_caller() -> None:
    with pytest.raises(ValueError, match="naive"):
        PredictionRow(
            id="a" * 32,
            created_at=datetime(2025, 1, 1),
            title="t",
            body="",
            predicted=[],
            model_version=None,
            latency_seconds=0.1,
        )
    with pytest.raises(ValueError, match="NUL"):
        PredictionRow(
            id="a" * 32, created_at=T0, title="t\x00", body="", predicted=[], model_version=None, latency_seconds=0.1
        )
    with pytest.raises(ValueError, match="Unicode"):
        PredictionRow(
            id="a" * 32, created_at=T0, title="t", body="\ud800", predicted=[], model_version=None, latency_seconds=0.1
        )
    with pytest.raises(ValueError, match="score"):
        PredictionRow(
            id="a" * 32,
            created_at=T0,
            title="t",
            body="",
            model_version=None,
            latency_seconds=0.1,
            predicted=[{"tag": "python", "score": float("nan")}],
        )
    with pytest.raises(ValueError, match="keys"):
        PredictionRow(
            id="a" * 32,
            created_at=T0,
            title="t",
            body="",
            model_version=None,
            latency_seconds=0.1,
            predicted=[{"tag": "python"}],
        )
    with pytest.raises(ValueError, match="latency"):
        PredictionRow(
            id="a" * 32, created_at=T0, title="t", body="", predicted=[], model_version=None, latency_seconds=-1
        )
    with pytest.raises(ValueError, match="at most 64"):
        PredictionRow(
            id="a" * 65, created_at=T0, title="t", body="", predicted=[], model_version=None, latency_seconds=0
        )
    with pytest.raises(ValueError, match="body_format"):
        PredictionRow(
            id="a" * 32,
            created_at=T0,
            title="t",
            body="",
            predicted=[],
            model_version=None,
            latency_seconds=0,
            body_format="pdf",
        )
    with pytest.raises(TypeError, match="list of str"):
        FeedbackRow(request_id="a" * 32, tags="python", received_at=T0)
    with pytest.raises(ValueError, match="empty"):
        FeedbackRow(request_id="a" * 32, tags=["python", " "], received_at=T0)
    # What a model hands back: numpy scalars, stored as plain floats.
    np_row = PredictionRow(
        id="a" * 32,
        created_at=T0,
        title="t",
        body="",
        model_version=None,
        latency_seconds=np.float64(0.25),
        predicted=[{"tag": "python", "score": np.float32(0.5)}],
    )
    assert np_row.predicted == [{"tag": "python", "score": 0.5}]
    assert type(np_row.predicted[0]["score"]) is float
    assert type(np_row.latency_seconds) is float
    row = prediction(3)
    assert decode_row(json.loads(json.dumps(encode_row(row)))) == row
    fb = feedback(row.id, ["a", "b"])
    assert decode_row(json.loads(json.dumps(encode_row(fb)))) == fb
    keyed = FeedbackRow(request_id=row.id, tags=["a"], received_at=T0, key_name="replay")
    assert decode_row(json.loads(json.dumps(encode_row(keyed)))) == keyed


# ------------------------------------------------------------------------------------------------ outages


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "postgres":
        direct: str = request.getfixturevalue("postgres_url")
        upgrade_database(direct)
        target = make_url(direct)
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        proxy.start()
        via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        check = make_engine(direct)
        yield Outage(via_proxy, check, proxy.kill, proxy.start, {"connect_timeout": 2.0}, proxy.freeze, proxy.thaw)
        proxy.kill()
        check.dispose()
        return
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    upgrade_database(url)
    holder: list[sqlite3.Connection] = []

    def down() -> None:  # another process holding the write lock: writes fail with "database is locked"
        conn = sqlite3.connect(tmp_path / "outage.db", isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        holder.append(conn)

    def up() -> None:
        conn = holder.pop()
        conn.execute("ROLLBACK")
        conn.close()

    check = make_engine(url)
    yield Outage(url, check, down, up, {"busy_timeout": 0.05}, down, up)
    while holder:
        up()
    check.dispose()


def test_outage_loses_nothing_and_duplicates_nothing(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    engine = outage.writer_engine()
    try:
        metrics = ServiceMetrics()
        writer = make_writer(engine, queue_size=50, batch_size=20, metrics=metrics)
        writer.start()
        before = [prediction(i, prefix="a") for i in range(30)]
        for row in before:
            writer.submit_prediction(row)
        assert writer.flush(10)
        assert len(stored_ids(outage.check_engine)) == 30

        outage.down()
        during = [prediction(i, prefix="b") for i in range(300)]
        for n, row in enumerate(during):
            writer.submit_prediction(row)  # never raises, never blocks
            if n % 3 == 0:
                writer.submit_feedback(feedback(row.id, ["during"]))
            if n % 50 == 0:
                writer.submit_feedback(feedback(before[n // 50].id, ["before"]))
            if n == 20:
                wait_until(lambda: writer.stats.write_failures > 0)
        assert writer.stats.rows_spilled > 0  # more than the queue holds
        assert not writer.healthy
        assert sample(metrics, "tagwatch_request_log_write_failures_total") > 0
        assert sample(metrics, "tagwatch_request_log_rows_spilled_total") > 0
        assert sample(metrics, "tagwatch_request_log_spill_pending_rows") > 0
        assert writer.is_pending(during[-1].id)
        # A flush while down makes everything durable in the spill file instead of waiting for the database.
        assert writer.flush(10)
        assert sample(metrics, "tagwatch_request_log_queue_depth") == 0
        assert len(stored_ids(outage.check_engine)) == 30

        outage.up()
        assert writer.flush(30)
        assert writer.healthy
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 330  # every row, once
        assert set(ids) == {r.id for r in before + during}
        fb = stored_feedback(outage.check_engine)
        assert len(fb) == 100 + 6
        assert all(fb[r.id] == ["during"] for r in during[::3])
        assert all(fb[r.id] == ["before"] for r in before[:6])
        assert spill_files(tmp_path / "spill") == []
        assert sample(metrics, "tagwatch_request_log_spill_pending_rows") == 0
        assert not any(writer.is_pending(r.id) for r in during)
    finally:
        engine.dispose()


def test_stop_while_down_then_restart_replays_without_loss_or_duplicates(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    engine = outage.writer_engine()
    try:
        writer = make_writer(engine, queue_size=1000, batch_size=50)
        writer.start()
        written = [prediction(i, prefix="a") for i in range(20)]
        for row in written:
            writer.submit_prediction(row)
        assert writer.flush(10)

        outage.down()
        pending = [prediction(i, prefix="b") for i in range(120)]
        for row in pending:
            writer.submit_prediction(row)
        writer.submit_feedback(feedback(written[0].id, ["x"]))
        writer.submit_feedback(feedback(pending[0].id, ["y"]))
        wait_until(lambda: writer.stats.write_failures > 0)
        writer.stop(5.0)  # the database is still down: everything in memory goes to the spill file
        files = spill_files(spill_dir)
        assert files
        lines = read_jsonl(files)
        assert {d["id"] for d in lines if d["kind"] == "prediction"} == {r.id for r in pending}
        assert len(lines) == 122
        assert len(stored_ids(outage.check_engine)) == 20
        copies = {f.name: f.read_bytes() for f in files}
    finally:
        engine.dispose()
    outage.up()

    # The next process, on a reachable database, replays the spill file on start.
    engine = outage.writer_engine()
    try:
        nxt = make_writer(engine)
        nxt.start()
        assert nxt.is_pending(pending[5].id)
        assert nxt.flush(30)
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 140
        assert stored_feedback(outage.check_engine) == {written[0].id: ["x"], pending[0].id: ["y"]}
        assert spill_files(spill_dir) == []
        assert nxt.stats.spill_files_replayed == len(copies)

        # Crash after the commit, before the file was deleted: replayed again, it stores nothing twice.
        for name, data in copies.items():
            (spill_dir / name).write_bytes(data)
        again = make_writer(engine)
        again.start()
        assert again.flush(30)
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 140
        assert again.stats.duplicates_skipped == 120
        assert again.stats.predictions_written == 0
        if engine.dialect.name == "postgresql":
            assert again.stats.copy_fallbacks >= 1
        assert count_rows(outage.check_engine)["feedback"] == 2
        assert spill_files(spill_dir) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_repeated_kills_while_writing_store_every_row_once(
    postgres_url: str, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # Kills land at arbitrary points: between batches, mid-COPY, mid-commit.
    upgrade_database(postgres_url)
    target = make_url(postgres_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    engine = make_engine(target.set(host="127.0.0.1", port=proxy.port), connect_timeout=2.0)
    check = make_engine(postgres_url)
    try:
        writer = make_writer(engine, queue_size=200, batch_size=50, flush_interval=0.01, max_backoff=0.05)
        writer.start()
        rows = [prediction(i) for i in range(3000)]
        for n, row in enumerate(rows):
            writer.submit_prediction(row)
            if n % 10 == 0:
                writer.submit_feedback(feedback(row.id, [f"n{n}"]))
            if n % 600 == 300:
                proxy.kill()
            elif n % 600 == 450:
                proxy.start()
            if n % 20 == 0:
                time.sleep(0.002)  # a steady stream, so that kills fall in the middle of writes
        assert writer.flush(30)
        ids = stored_ids(check)
        assert len(ids) == len(set(ids)) == 3000
        fb = stored_feedback(check)
        assert fb == {rows[n].id: [f"n{n}"] for n in range(0, 3000, 10)}
        assert writer.stats.write_failures > 0
        assert spill_files(tmp_path / "spill") == []
    finally:
        proxy.kill()
        engine.dispose()
        check.dispose()


# ---------------------------------------------------------------------------------------- bounds and write-ahead


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


def test_row_size_estimate_follows_real_memory() -> None:
    import tracemalloc

    # ASCII (1 byte a character), Latin-1 beyond ASCII (1), CJK (2), emoji (4): Python stores a str by its widest
    # character, and so does the estimate.
    for char in ("x", "é", "中", "😀"):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            rows = [big_prediction(i, chars=5_000 + i, char=char) for i in range(200)]
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        estimated = sum(row_bytes(r) for r in rows)
        assert 0.8 * used <= estimated <= 1.3 * used, (char, used, estimated)
    assert row_bytes(big_prediction(1, chars=1_000, char="😀")) >= 4_000
    assert row_bytes(feedback("a" * 32, ["python"])) < 1_000


def test_queue_is_bounded_in_bytes_big_rows_go_to_the_spill_file(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    metrics = ServiceMetrics()
    writer = make_writer(engine, queue_size=1000, queue_bytes=1 * MiB, metrics=metrics)
    rows = [big_prediction(i) for i in range(30)] + [
        big_prediction(i, chars=15_000, char="😀", prefix="e") for i in range(10)
    ]
    for row in rows:  # the writer is not started: whatever is queued stays in memory
        writer.submit_prediction(row)
    held = writer.memory_bytes
    assert 0.9 * MiB <= held <= 1 * MiB  # ~60 KB a row: 17 rows fit
    queued = int(sample(metrics, "tagwatch_request_log_queue_depth"))
    assert 15 <= queued <= 17
    assert writer.stats.rows_spilled == len(rows) - queued
    assert set(spilled_ids(tmp_path / "spill")) == {r.id for r in rows[queued:]}
    assert sample(metrics, "tagwatch_request_log_queue_bytes") == held
    assert sample(metrics, "tagwatch_request_log_queue_capacity_bytes") == 1 * MiB

    writer.start()
    assert writer.flush(30)
    assert sorted(stored_ids(engine)) == sorted(r.id for r in rows)
    assert writer.memory_bytes == 0
    assert spill_files(tmp_path / "spill") == []
    assert writer.stats.rows_lost == 0


def test_the_retried_batch_counts_in_the_memory_bound(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # While the database is down the retried batch is read back from the spill file, within the bound.
    engine = outage.writer_engine()
    try:
        bound = 512 * 1024
        writer = make_writer(engine, queue_bytes=bound, batch_size=100, max_backoff=0.05)
        writer.start()
        outage.down()
        rows = [big_prediction(i) for i in range(40)]
        for row in rows:
            writer.submit_prediction(row)
        wait_until(lambda: writer.stats.write_failures >= 3)
        biggest = max(row_bytes(r) for r in rows)
        peak = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # the writer keeps retrying meanwhile
            peak = max(peak, writer.memory_bytes)
            time.sleep(0.005)
        assert 0 < peak <= bound + biggest
        assert len(stored_ids(outage.check_engine)) == 0
        outage.up()
        assert writer.flush(30)
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 40
        assert writer.memory_bytes == 0
        assert spill_files(tmp_path / "spill") == []
    finally:
        engine.dispose()


def test_write_ahead_while_the_database_is_down(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill_dir = tmp_path / "spill"
    fsyncs: list[tuple[float, str]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        fsyncs.append((time.monotonic(), os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    engine = outage.writer_engine()
    try:
        metrics = ServiceMetrics()
        flush_interval = 0.05
        # A queue that never overflows here: the rows go to the spill file because the database is down.
        writer = make_writer(engine, queue_size=1000, batch_size=20, flush_interval=flush_interval, metrics=metrics)
        writer.start()
        for i in range(10):
            writer.submit_prediction(prediction(i, prefix="a"))
        assert writer.flush(10)

        outage.down()
        first = prediction(0, prefix="b")
        writer.submit_prediction(first)  # in memory until the writer tries to write it
        wait_until(lambda: not writer.healthy)
        assert writer.flush(10)  # durable without the database: the failed batch went to the spill file
        assert first.id in spilled_ids(spill_dir)

        during = [prediction(i, prefix="c") for i in range(50)]
        for n, row in enumerate(during):
            before = writer.stats.rows_spilled
            writer.submit_prediction(row)
            # On disk (readable by another process) as soon as submit returns: a kill now loses nothing.
            assert row.id in spilled_ids(spill_dir)
            assert writer.stats.rows_spilled == before + 1
            if n % 10 == 0:
                writer.submit_feedback(feedback(row.id, ["during"]))
            assert sample(metrics, "tagwatch_request_log_queue_depth") == 0
        last_append = time.monotonic()
        # fsync'd by the watchdog within about a flush interval of the last append.
        wait_until(
            lambda: any(t > last_append and "/spill-" in path for t, path in fsyncs), timeout=20 * flush_interval
        )
        assert not writer.healthy
        assert len(stored_ids(outage.check_engine)) == 10

        outage.up()
        assert writer.flush(30)
        assert writer.healthy
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 61
        assert stored_feedback(outage.check_engine) == {row.id: ["during"] for row in during[::10]}
        assert spill_files(spill_dir) == []
        # Back on the in-memory path.
        spilled = writer.stats.rows_spilled
        writer.submit_prediction(prediction(1, prefix="d"))
        assert writer.flush(10)
        assert writer.stats.rows_spilled == spilled
        assert len(stored_ids(outage.check_engine)) == 62
        assert writer.stats.rows_lost == 0
    finally:
        engine.dispose()


def test_a_hung_write_switches_to_write_ahead(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    # A database that vanished without closing its connections: the write neither succeeds nor fails.
    spill_dir = tmp_path / "spill"
    engine = outage.writer_engine(busy_timeout=3.0, connect_timeout=10.0)
    try:
        writer = make_writer(engine, batch_size=50, flush_interval=0.05, stall_timeout=0.3)
        writer.start()
        writer.submit_prediction(prediction(0, prefix="a"))
        assert writer.flush(10)
        outage.freeze()
        stuck = [prediction(i, prefix="b") for i in range(30)]
        for row in stuck:
            writer.submit_prediction(row)
        wait_until(lambda: writer.stats.stalls == 1)
        assert not writer.healthy
        assert set(spilled_ids(spill_dir)) == {r.id for r in stuck}  # copies of the batch that hangs
        later = [prediction(i, prefix="c") for i in range(20)]
        for row in later:
            writer.submit_prediction(row)
            assert row.id in spilled_ids(spill_dir)
        outage.thaw()
        assert writer.flush(30)
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 51
        assert writer.healthy
        assert spill_files(spill_dir) == []
    finally:
        engine.dispose()


def test_spill_dir_failing_during_an_outage_keeps_rows_in_memory(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    engine = outage.writer_engine()
    try:
        writer = make_writer(engine, spill_dir=blocker / "spill", batch_size=20)
        writer.start()
        outage.down()
        rows = [prediction(i) for i in range(60)]
        for row in rows:
            writer.submit_prediction(row)
        wait_until(lambda: writer.stats.write_failures >= 2)
        for i in range(60):  # write-ahead finds the spill dir failing: memory, within its bounds
            writer.submit_prediction(prediction(1000 + i))
        assert writer.stats.rows_lost == 0
        assert writer.memory_bytes > 0
        outage.up()
        assert writer.flush(30)
        assert len(stored_ids(outage.check_engine)) == 120
        assert writer.memory_bytes == 0
    finally:
        engine.dispose()


def test_spill_cap_drops_rows_counts_and_logs_them(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()

    # A leftover of an earlier process counts against the cap.
    def line(row: PredictionRow) -> bytes:  # as the writer spills it
        return json.dumps(encode_row(row), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    leftover = [prediction(i, prefix="l") for i in range(10, 20)]
    (spill_dir / "spill-00000000000000000001-1-abcdef01.jsonl").write_bytes(b"".join(map(line, leftover)))
    rows = [prediction(i) for i in range(10, 40)]
    expected_bytes = sum(len(line(r)) for r in leftover + rows[1:11])
    cap = expected_bytes + min(len(line(r)) for r in rows) - 1  # the leftover's rows and 10 more
    metrics = ServiceMetrics()
    writer = make_writer(engine, queue_size=1, spill_max_bytes=cap, metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="service.requestlog"):
        for row in rows:  # the writer is not started: the first is queued, the others overflow
            writer.submit_prediction(row)
    stats = writer.stats
    assert stats.rows_spilled == 10
    assert stats.rows_dropped_spill_full == stats.rows_lost == 19
    assert sample(metrics, "tagwatch_request_log_rows_dropped_total", reason="spill_full") == 19
    assert sample(metrics, "tagwatch_request_log_rows_dropped_total", reason="spill_error") == 0
    on_disk = sum(f.stat().st_size for f in spill_files(spill_dir))
    assert sample(metrics, "tagwatch_request_log_spill_bytes") == writer.spill_bytes == on_disk == expected_bytes
    assert sample(metrics, "tagwatch_request_log_spill_capacity_bytes") == cap
    dropped = rows[11:]
    assert not any(writer.is_pending(r.id) for r in dropped)
    assert writer.is_pending(rows[5].id)
    assert len([r for r in caplog.records if "DROPPED" in r.getMessage()]) == 1  # at most one log every 10 s
    writer.stop(5.0)  # the queued row: no room left either
    assert writer.stats.rows_dropped_spill_full == 20

    nxt = make_writer(engine, queue_size=1, spill_max_bytes=cap, metrics=ServiceMetrics())
    nxt.start()
    assert nxt.flush(30)
    assert sorted(stored_ids(engine)) == sorted(r.id for r in leftover + rows[1:11])
    assert spill_files(spill_dir) == []
    assert nxt.spill_bytes == 0
    # Room again: overflow is spilled, not dropped.
    nxt.stop(5.0)
    nxt.submit_prediction(prediction(99))
    assert nxt.stats.rows_lost == 0
    assert spilled_ids(spill_dir) == [prediction(99).id]


def test_stop_does_not_wait_for_a_hung_write_once_every_row_is_on_disk(
    outage: Outage, make_writer: Callable[..., RequestLogWriter], tmp_path: Path
) -> None:
    engine = outage.writer_engine(busy_timeout=5.0, connect_timeout=10.0)
    try:
        writer = make_writer(engine, batch_size=50, flush_interval=0.05, stall_timeout=0.3)
        writer.start()
        outage.freeze()
        rows = [prediction(i) for i in range(80)]
        for row in rows:
            writer.submit_prediction(row)
        wait_until(lambda: writer.stats.stalls == 1)
        started = time.monotonic()
        writer.stop(20.0)
        assert time.monotonic() - started < 2.0
        assert set(spilled_ids(tmp_path / "spill")) == {r.id for r in rows}
    finally:
        outage.thaw()
        engine.dispose()
    engine = outage.writer_engine()
    try:
        nxt = make_writer(engine)
        nxt.start()
        assert nxt.flush(30)
        ids = stored_ids(outage.check_engine)
        assert len(ids) == len(set(ids)) == 80
    finally:
        engine.dispose()

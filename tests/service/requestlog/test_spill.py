"""Spill files: bursts and stops spill, a failing spill dir never raises, the spill cap drops rows loudly."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service.metrics import ServiceMetrics
from service.requestlog import PredictionRow, RequestLogWriter, encode_row
from tests.service.requestlog.support import (
    feedback,
    prediction,
    sample,
    spill_files,
    spilled_ids,
    stored_feedback,
    stored_ids,
)


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


def test_spill_usage_counts_the_spill_files_only(tmp_path: Path) -> None:
    from service.requestlog.spill import SpillUsage, spill_usage

    assert spill_usage(tmp_path / "missing") == SpillUsage(files=0, bytes=0)
    (tmp_path / "spill-00000000000000000001-1-abcdef01.jsonl").write_bytes(b"x" * 100)
    (tmp_path / "spill-00000000000000000002-2-abcdef02.jsonl").write_bytes(b"x" * 23)
    (tmp_path / "rejected-1.jsonl").write_bytes(b"y" * 1000)  # rows the database refused: not capped here
    (tmp_path / "notes.txt").write_bytes(b"z")
    assert spill_usage(tmp_path) == SpillUsage(files=2, bytes=123)


def test_the_spill_gauges_are_read_without_scanning_the_directory(
    engine: Engine, make_writer: Callable[..., RequestLogWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.requestlog.spill as spill

    scans: list[Path] = []
    real = spill.spill_usage
    monkeypatch.setattr(spill, "spill_usage", lambda directory: scans.append(directory) or real(directory))
    metrics = ServiceMetrics()
    writer = make_writer(engine, queue_size=1, spill_max_bytes=10_000, metrics=metrics)
    for i in range(5):  # the writer is not started: the first is queued, the others spill
        writer.submit_prediction(prediction(i))
    counted = len(scans)
    assert counted <= 1  # the first append counts what earlier processes left
    for _ in range(50):  # scrapes of /metrics
        assert sample(metrics, "tagwatch_request_log_spill_bytes") == writer.spill_bytes > 0
        assert sample(metrics, "tagwatch_request_log_spill_capacity_bytes") == 10_000
    assert len(scans) == counted
    writer.stop(5.0)

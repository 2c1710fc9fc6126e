"""The intake: memory bounded in bytes, big rows to the spill file, the retried batch counted."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from service.metrics import ServiceMetrics
from service.requestlog import RequestLogWriter, row_bytes
from tests.service.requestlog.support import (
    MiB,
    Outage,
    big_prediction,
    sample,
    spill_files,
    spilled_ids,
    stored_ids,
    wait_until,
)


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

"""The request-log writer against real SQLite and PostgreSQL, including real outages.

PostgreSQL outages: a TCP proxy between the writer and the server is killed (listener and every connection
closed) and restarted on the same port, or frozen (writes hang). SQLite outages: another connection holds the
write lock (writes fail after the busy timeout, or hang for as long as it is).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from service.metrics import ServiceMetrics
from service.requestlog import RequestLogWriter
from tagwatch.db import count_rows, make_engine, upgrade_database
from tests.service.proxy import TcpProxy
from tests.service.requestlog.support import (
    Outage,
    feedback,
    prediction,
    read_jsonl,
    sample,
    spill_files,
    spilled_ids,
    stored_feedback,
    stored_ids,
    wait_until,
)


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

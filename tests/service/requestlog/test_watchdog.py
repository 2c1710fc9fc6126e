"""The watchdog: a hung write switches the writer to write-ahead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from service.requestlog import RequestLogWriter
from tests.service.requestlog.support import Outage, prediction, spill_files, spilled_ids, stored_ids, wait_until


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

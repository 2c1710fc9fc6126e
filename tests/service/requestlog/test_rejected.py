"""Rejected rows: a damaged spill file is replayed, its bad lines kept aside."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from service.metrics import ServiceMetrics
from service.requestlog import RequestLogWriter, encode_row
from tests.service.requestlog.support import prediction, read_jsonl, sample, spill_files, stored_ids


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

"""Rows: validated in the caller, their spill-file codec, feedback ids, the memory estimate."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from service.requestlog import FeedbackRow, PredictionRow, decode_row, encode_row, legacy_feedback_id, row_bytes
from tests.service.requestlog.support import T0, big_prediction, feedback, prediction


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

"""The request-log scale benchmark (bench/requestlog_scale.py) in small: its mechanics, not its times."""

from __future__ import annotations

from datetime import datetime

import pytest

from bench.requestlog_scale import _questions, report, run


@pytest.mark.postgres
def test_the_scale_benchmark_loads_queries_prunes_and_reports(postgres_admin_url: str) -> None:
    result = run(postgres_admin_url, rows=20_000, runs=2, convert_rows=2_000, questions=_questions(300))

    assert result.sizes["prediction_requests"]["rows"] == 20_000
    assert result.sizes["feedback"]["rows"] == result.feedback_rows
    assert 0.15 < result.feedback_rows / result.rows < 0.25
    assert all(s["total_bytes"] > s["index_bytes"] > 0 for s in result.sizes.values())

    assert result.window_rows == 1_000
    assert len(result.window_seconds) == 2
    # 20k rows evenly over the span: the newest 1,000 are its last 1/20 (~18 days), in exactly the months those
    # days fall in; every other month is pruned.
    start, end = (datetime.fromisoformat(t) for t in result.span)
    first = end - (end - start) * result.window_rows / result.rows
    expected = sorted({f"{first:%Y_%m}", f"{end:%Y_%m}"})
    months = sorted({name[-7:] for name in result.window_partitions if not name.endswith("_default")})
    assert months == expected
    assert len(result.legacy_window_seconds) == 3

    start_month = result.span[0][:7].replace("-", "_")
    assert result.retention_dropped == [f"feedback_p{start_month}", f"prediction_requests_p{start_month}"]
    assert result.writer["rows_written"] > 0
    assert result.writer["rows_per_second_before"] > 0

    assert result.convert["rows"] == 2_000
    assert result.convert["seconds"] > 0
    text = report(result)
    assert "## Window query" in text
    assert "## Retention" in text
    assert f"prediction_requests_p{start_month}" in text

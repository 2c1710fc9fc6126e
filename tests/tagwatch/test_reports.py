from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tagwatch.reports import latest_report_name, report_filename


def test_report_filename() -> None:
    at = datetime(2024, 5, 1, 14, 30, 5, 123, tzinfo=UTC)
    assert report_filename(at) == "drift-20240501T143005.000123Z.html"
    with pytest.raises(ValueError, match="timezone"):
        report_filename(datetime(2024, 5, 1))


def test_latest_report_name_is_the_newest_by_time(tmp_path: Path) -> None:
    assert latest_report_name(tmp_path / "missing") is None
    assert latest_report_name(tmp_path) is None
    at = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    for delta in (timedelta(0), timedelta(days=3), timedelta(hours=2)):
        (tmp_path / report_filename(at + delta)).write_text("report")
    (tmp_path / "index.html").write_text("index")  # not a report
    assert latest_report_name(tmp_path) == report_filename(at + timedelta(days=3))


def test_report_time_reads_the_start_back_from_the_name() -> None:
    from tagwatch.reports import report_time

    at = datetime(2024, 5, 1, 14, 30, 5, 123, tzinfo=UTC)
    assert report_time(report_filename(at)) == at
    for name in ("index.html", "drift-20240501T143005Z.html", "drift-20240501T143005.000123Z.html.tmp", ""):
        assert report_time(name) is None

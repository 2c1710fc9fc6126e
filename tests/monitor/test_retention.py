"""Drift-report retention: the pure choice of expired reports, then the prune on a real request log (SQLite and
PostgreSQL): rows stop naming deleted files, the files go, the index reads "expired", a second run finds nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.job import write_reports_index
from monitor.retention import expired_reports, prune_reports
from tagwatch.db import DriftRun
from tagwatch.reports import INDEX_NAME, report_filename
from tagwatch.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_expired_reports_are_the_reports_of_runs_before_the_cutoff() -> None:
    old, edge, new = NOW - timedelta(days=20), NOW - timedelta(days=14), NOW - timedelta(days=1)
    names = [report_filename(new), report_filename(old), INDEX_NAME, "drift-notatime.html", report_filename(edge)]
    assert expired_reports(names, cutoff=NOW - timedelta(days=14)) == [report_filename(old)]
    assert expired_reports(names, cutoff=NOW) == [report_filename(old), report_filename(edge), report_filename(new)]
    assert expired_reports([], cutoff=NOW) == []
    with pytest.raises(ValueError, match="timezone"):
        expired_reports(names, cutoff=datetime(2026, 1, 1))


SUMMARY = {"kinds": {}, "sizes": {"current": 300, "feedback": 200}, "model_version": "1"}


def _runs(engine: Engine, reports_dir: Path, ages_days: list[float]) -> list[str]:
    """One measured run per age, with its report file (of ~1 KB); returns the report names, oldest first."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    names = []
    with Session(engine) as session:
        for age in sorted(ages_days, reverse=True):
            at = NOW - timedelta(days=age)
            name = report_filename(at)
            (reports_dir / name).write_text("x" * 1000)
            session.add(
                DriftRun(started_at=at, status="ok", model_version="1", report_path=name, summary=SUMMARY, reasons=[])
            )
            names.append(name)
        session.commit()
    return names


def _report_paths(engine: Engine) -> list[str | None]:
    with Session(engine) as session:
        return list(session.scalars(select(DriftRun.report_path).order_by(DriftRun.started_at)))


def test_prune_reports_deletes_old_files_and_unlinks_their_runs(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    reports = settings.reports_dir
    names = _runs(engine, reports, [30, 20, 15, 13, 1])
    stray = reports / f".{names[0]}.abc123.tmp"  # left by a monitor killed while writing
    stray.write_text("half")
    os.utime(stray, (0, 0))
    cutoff = NOW - timedelta(days=14)

    dry = prune_reports(engine, reports, older_than=cutoff, dry_run=True)
    assert dry.deleted == (*names[:3], stray.name)
    assert dry.runs_unlinked == 3
    assert dry.bytes_deleted == 3000 + 4
    assert all((reports / n).is_file() for n in names)
    assert _report_paths(engine) == names

    done = prune_reports(engine, reports, older_than=cutoff)
    assert done.deleted == dry.deleted
    assert (done.runs_unlinked, done.reports_kept) == (3, 2)
    assert sorted(p.name for p in reports.iterdir()) == sorted(names[3:])
    assert _report_paths(engine) == [None, None, None, *names[3:]]

    again = prune_reports(engine, reports, older_than=cutoff)  # idempotent
    assert (again.deleted, again.runs_unlinked, again.reports_kept) == ((), 0, 2)

    write_reports_index(engine, settings)
    page = (reports / INDEX_NAME).read_text(encoding="utf-8")
    assert page.count(">report</a>") == 2
    assert page.count("<td>expired</td>") == 3
    for name in names[:3]:
        assert name not in page
    assert "kept 14 days" in page


def test_a_report_removed_by_hand_reads_expired_not_a_dead_link(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    (name,) = _runs(engine, settings.reports_dir, [1])
    (settings.reports_dir / name).unlink()
    write_reports_index(engine, settings)
    page = (settings.reports_dir / INDEX_NAME).read_text(encoding="utf-8")
    assert name not in page
    assert "<td>expired</td>" in page


def test_prune_reports_without_a_reports_dir(engine: Engine, tmp_path: Path) -> None:
    done = prune_reports(engine, tmp_path / "none", older_than=NOW)
    assert (done.deleted, done.runs_unlinked, done.reports_kept) == ((), 0, 0)
    assert done.to_dict()["deleted"] == 0

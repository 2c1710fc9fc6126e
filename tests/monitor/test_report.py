"""Drift reports: the Evidently HTML of a real run, the plain page of a tiny window, the index of runs."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.drift.detect import detect_drift, prepare
from monitor.drift.types import Baseline, DriftInput, DriftResult, Thresholds
from monitor.report import RunEntry, write_index, write_report
from tagwatch.data import Question
from tagwatch.history import AliasMoveRecord
from tagwatch.model import TagModel
from tagwatch.reports import INDEX_NAME, report_filename
from tagwatch.settings import Settings
from tests.support import unseen_questions

BASELINE = Baseline(micro_f1=0.5, samples_jaccard=0.4)
THRESHOLDS = Thresholds.from_settings(Settings())


@pytest.fixture(scope="module")
def questions(bundled_questions: list[Question], small_training_set: list[Question]) -> list[Question]:
    return unseen_questions(bundled_questions, small_training_set, seed=5)


@pytest.fixture(scope="module")
def drifted(questions: list[Question], small_model: TagModel) -> DriftResult:
    """A real run: an all-years reference against questions from 2022 on, with feedback."""
    reference = questions[:800]
    recent = [q for q in questions[800:] if q.created_at is not None and q.created_at.year >= 2022][:300]
    return detect_drift(
        prepare(DriftInput(reference, [q.tags for q in reference]), small_model, THRESHOLDS),
        DriftInput(recent, [q.tags for q in recent]),
        small_model,
        BASELINE,
        THRESHOLDS,
    )


@pytest.fixture(scope="module")
def tiny(questions: list[Question], small_model: TagModel) -> DriftResult:
    reference = questions[:300]
    return detect_drift(
        DriftInput(reference, [q.tags for q in reference]),
        DriftInput(questions[300:305]),
        small_model,
        BASELINE,
        THRESHOLDS,
    )


def test_report_is_the_evidently_run(drifted: DriftResult, tmp_path: Path) -> None:
    path = write_report(drifted, tmp_path / "reports" / "run.html")
    assert path == tmp_path / "reports" / "run.html"
    page = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 100_000  # Evidently's self-contained page (scripts inlined)
    assert "domain classifier ROC AUC" in page
    assert "tagwatch drift run" in page  # the summary of the other kinds, at the top
    for word in drifted.characteristic_words["current"][:5]:
        assert word in page
    # nothing but the report in the directory (the temporary file was moved into place)
    assert [p.name for p in path.parent.iterdir()] == ["run.html"]


def test_tiny_window_gets_a_plain_page(tiny: DriftResult, tmp_path: Path) -> None:
    assert tiny.snapshot is None
    page = write_report(tiny, tmp_path / "tiny.html").read_text(encoding="utf-8")
    assert "too small for the Evidently report" in page
    assert "not enough data" in page


def test_report_path_must_be_html(tiny: DriftResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.html"):
        write_report(tiny, tmp_path / "run.json")


def test_index_lists_runs_newest_first(drifted: DriftResult, tiny: DriftResult, tmp_path: Path) -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    entries = []
    for i, result in enumerate([tiny, drifted]):
        at = start + timedelta(hours=i)
        path = write_report(result, tmp_path / report_filename(at))
        entries.append(
            RunEntry.from_result(
                result, started_at=at, report=path, decision="retrain" if result.detected_kinds else None
            )
        )
    index = write_index(entries, tmp_path)
    assert index == tmp_path / INDEX_NAME
    page = index.read_text(encoding="utf-8")
    body = page.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    assert len(rows) == 2
    # newest first, each linking its report
    assert "2024-05-01 13:00:00 UTC" in rows[0]
    assert report_filename(start + timedelta(hours=1)) in rows[0]
    assert "2024-05-01 12:00:00 UTC" in rows[1]
    assert report_filename(start) in rows[1]
    assert "DRIFT" in rows[0]
    assert "retrain" in rows[0]
    assert "DRIFT" not in rows[1]
    assert "little data" in rows[1]
    for entry in entries:
        assert entry.report is not None
        assert (tmp_path / entry.report).is_file()


def test_index_escapes_and_tolerates_missing_reports(tiny: DriftResult, tmp_path: Path) -> None:
    entry = RunEntry(
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        result={**tiny.to_dict(), "model_version": "<script>x</script>"},
        report=None,
        decision="a & b",
    )
    page = write_index([entry], tmp_path).read_text(encoding="utf-8")
    assert "<script>x" not in page
    assert "&lt;script&gt;x" in page
    assert "a &amp; b" in page
    assert write_index([], tmp_path).read_text(encoding="utf-8").count("<tr>") == 1  # the header only


def test_index_says_expired_for_a_deleted_report(tiny: DriftResult, tmp_path: Path) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [
        RunEntry(started_at=at, result=tiny.to_dict(), report=None, expired=True),
        RunEntry(started_at=at + timedelta(days=20), result=tiny.to_dict(), report=report_filename(at)),
        RunEntry(started_at=at + timedelta(days=21), result=tiny.to_dict(), report=None),
    ]
    page = write_index(entries, tmp_path, retention_days=14).read_text(encoding="utf-8")
    cells = re.findall(r"<td>(expired|-|<a href=[^<]*>report</a>)</td></tr>", page)
    assert cells == ["-", f'<a href="{report_filename(at)}">report</a>', "expired"]  # newest first
    assert "Reports are kept 14 days" in page
    assert "kept" not in write_index(entries, tmp_path).read_text(encoding="utf-8")


# --- the model history section -------------------------------------------------------------------------------

HOSTILE = "</td></table><script>alert(1)</script><img src=x onerror=alert(2)>\"'&<!--"


def _move(i: int, alias: str, old: str | None, new: str | None, trigger: str, actor: str) -> AliasMoveRecord:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(hours=i)
    return AliasMoveRecord(i, at, "tagwatch", alias, old, new, trigger, actor)


def test_index_shows_the_champion_history_escaped(tmp_path: Path) -> None:
    moves = [
        _move(1, "champion", None, "1", "init", "cli:alice"),
        _move(2, "challenger", None, "2", "drift: data", "monitor"),
        _move(3, "previous", None, "1", "drift: data", "monitor"),
        _move(4, "champion", "1", "2", HOSTILE, "key" + HOSTILE),
        _move(5, "champion", "2", "1", "rollback", "cli:bob"),
    ]
    page = write_index([], tmp_path, moves=moves).read_text(encoding="utf-8")
    section = page.split("<b>Model history</b>", 1)[1].split("drift runs", 1)[0]
    assert "3 champion move(s), newest first" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1], flags=re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, flags=re.S) for row in rows]
    escaped = html.escape(HOSTILE, quote=True)
    assert cells == [
        ["2024-05-01 17:00:00 UTC", "2 → 1", "rollback", "cli:bob"],
        ["2024-05-01 16:00:00 UTC", "1 → 2", escaped, "key" + escaped],
        ["2024-05-01 13:00:00 UTC", "- → 1", "init", "cli:alice"],
    ]
    # Only the champion's moves; nothing of the hostile strings became markup.
    assert "challenger" not in section
    for raw in ("<script", "<img", "<!--", "</table><script"):
        assert raw not in page
    assert page.count("<table>") == 2  # the history and the runs


def test_index_history_when_there_is_none(tmp_path: Path) -> None:
    page = write_index([], tmp_path, moves=[]).read_text(encoding="utf-8")
    assert "<b>Model history</b>: no champion move recorded yet." in page
    assert page.count("<tr>") == 1  # the runs' header only
    assert "Model history" not in write_index([], tmp_path).read_text(encoding="utf-8")


def test_monitor_index_lists_the_recorded_champion_moves(settings: Settings, sqlite_url: str) -> None:
    from monitor.job import Monitor
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.history import record_move

    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        for model_name, alias, new in (
            ("tagwatch", "champion", "1"),
            ("other", "champion", "9"),
            ("tagwatch", "previous", "1"),
        ):
            record_move(
                engine, model_name=model_name, alias=alias, from_version=None, to_version=new, trigger="init", actor="x"
            )
        monitor = Monitor(settings, engine=engine, registry=None)
        monitor._write_index()
    finally:
        engine.dispose()
    page = (settings.reports_dir / INDEX_NAME).read_text(encoding="utf-8")
    assert "1 champion move(s)" in page
    assert "- → 1" in page
    assert "→ 9" not in page


def test_monitor_index_marks_the_retrains_runs_filed() -> None:
    from monitor.job import _retrain_mark
    from tagwatch.db import DriftRun

    assert _retrain_mark(DriftRun(retrain=None, retrain_triggered=False)) is None
    assert _retrain_mark(DriftRun(retrain=None, retrain_triggered=True)) == "filed"
    promoted = {"result": "promoted", "challenger_version": "3", "trigger": "drift: data"}
    assert _retrain_mark(DriftRun(retrain=promoted, retrain_triggered=True)) == "promoted v3"
    pending = {"result": "pending", "trigger": "follow-up"}
    assert _retrain_mark(DriftRun(retrain=pending, retrain_triggered=True)) == "pending (follow-up)"


def test_index_links_the_grafana_dashboard(tmp_path: Path) -> None:
    page = write_index([], tmp_path, grafana_url="https://grafana.example/").read_text(encoding="utf-8")
    assert '<a href="https://grafana.example/d/tagwatch-model-drift">' in page
    assert "tagwatch-model-drift" not in write_index([], tmp_path).read_text(encoding="utf-8")

"""Loading: streaming with a report, duplicate ids, settings, and the real bundled files."""

from __future__ import annotations

import csv
import gzip
import time
from pathlib import Path

import pandas as pd
import pytest

from tagwatch.data import (
    DUPLICATE_ID,
    LoadReport,
    Question,
    from_frame,
    iter_questions,
    load_bundled,
    load_questions,
    to_frame,
    write_questions_csv,
)
from tagwatch.settings import BUNDLED_DATA, Settings
from tests.tagwatch.data.support import BUNDLED_SMALL, TITLE_ONLY


def test_iter_questions_streams_in_file_order_and_fills_the_report() -> None:
    report = LoadReport(source="x")
    stream = iter_questions(BUNDLED_SMALL, report=report)
    first = next(stream)
    assert first.id == "100"
    assert report.rows_read == 1
    rest = list(stream)
    assert [q.id for q in rest][:3] == ["9", "7", "h:0123456789abcdef"]
    assert report.rows_kept == 1 + len(rest) == 7


def test_duplicate_ids_of_every_kind_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "dups.csv"
    big = str(1 << 40)  # beyond the bitmap of the duplicate check
    rows = ["5", big, "h:0123456789abcdef", "0005", big, "h:0123456789abcdef", "80000000", "6"]
    path.write_text("id,created_at,title,body,tags\n" + "".join(f"{i},,T,,python\n" for i in rows))
    questions, report = load_questions(path)
    assert report.rejected == {DUPLICATE_ID: 3}
    assert [q.id for q in questions] == ["5", "6", "80000000", big, "h:0123456789abcdef"]
    assert questions[0].body_format == "none"  # detected: the file has no body_format column


def test_load_bundled_follows_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", data_path=BUNDLED_SMALL)
    questions, report = load_bundled(settings)
    assert report.rows_kept == len(questions) == 7
    assert load_bundled(BUNDLED_SMALL)[0] == questions


# --- the real bundled data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def main_file() -> tuple[list[Question], LoadReport, float]:
    started = time.perf_counter()
    questions, report = load_bundled(BUNDLED_DATA)
    return questions, report, time.perf_counter() - started


def check_bundled(
    path: Path, questions: list[Question], report: LoadReport, *, rows: int, dated: int, real_ids: int
) -> None:
    assert report.rows_read == report.rows_kept == len(questions) == rows
    assert report.rejected == {}
    assert sum(q.created_at is not None for q in questions) == dated
    assert sum(not q.id.startswith("h:") for q in questions) == real_ids
    assert all(q.tags and 1 <= len(q.tags) <= 5 for q in questions)
    # The file is already in time order, which the loader reproduces.
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        file_ids = [row["id"] for row in csv.DictReader(f)]
    assert [q.id for q in questions] == file_ids


def test_main_bundled_file_matches_its_readme(main_file: tuple[list[Question], LoadReport, float]) -> None:
    questions, report, elapsed = main_file
    print(f"{BUNDLED_DATA.name}: {len(questions)} questions in {elapsed:.1f} s")
    check_bundled(BUNDLED_DATA, questions, report, rows=46_345, dated=45_444, real_ids=45_669)
    dates = [q.created_at for q in questions if q.created_at is not None]
    assert min(dates).date().isoformat() == "2008-07-31"
    assert max(dates).date().isoformat() == "2025-01-29"
    formats = pd.Series([q.body_format for q in questions]).value_counts().to_dict()
    assert formats == {"html": 42_084, "markdown": 2_561, "text": 1_700}
    assert sum(q.score is not None for q in questions) == 46_185
    assert len({t for q in questions for t in q.tags}) == 13_895
    assert elapsed < 60  # a few seconds normally; generous for a busy CI machine


def test_title_only_file_matches_its_readme() -> None:
    started = time.perf_counter()
    questions, report = load_questions(TITLE_ONLY)
    elapsed = time.perf_counter() - started
    print(f"{TITLE_ONLY.name}: {len(questions)} questions in {elapsed:.1f} s")
    check_bundled(TITLE_ONLY, questions, report, rows=79_963, dated=40_622, real_ids=69_917)
    assert {q.body_format for q in questions} == {"none"}
    assert elapsed < 60


def test_main_bundled_file_survives_a_frame_and_csv_round_trip(
    main_file: tuple[list[Question], LoadReport, float], tmp_path: Path
) -> None:
    questions = main_file[0][::20]  # every 20th: all formats and both kinds of id, in a second or two
    assert from_frame(to_frame(questions)) == questions
    write_questions_csv(questions, tmp_path / "sample.csv.gz")
    assert load_questions(tmp_path / "sample.csv.gz")[0] == questions

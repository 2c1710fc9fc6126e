"""Questions written as a bundled-format CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tagwatch.data import load_questions, question_order_key, write_questions_csv
from tests.tagwatch.data.support import POSTS_XML, all_fixture_questions


@pytest.mark.parametrize("name", ["window.csv", "window.csv.gz"])
def test_write_questions_csv_round_trip(tmp_path: Path, name: str) -> None:
    questions = all_fixture_questions()
    path = tmp_path / "sub" / name
    assert write_questions_csv(questions, path, source="test") == len(questions)
    again, report = load_questions(path)
    assert report.rejected == {}
    assert again == sorted(questions, key=question_order_key)
    with path.open("rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")
    # Same questions, same bytes (no timestamp in the gzip header): samples can be compared by hash.
    copy = tmp_path / f"copy-{name}"
    write_questions_csv(questions, copy, source="test")
    assert copy.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [name]  # no temporary file left behind


def test_written_file_is_plain_bundled_csv(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    write_questions_csv(load_questions(POSTS_XML)[0], path, source="dump")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["created_at"] == "2008-07-31T21:42:52.667000Z"
    assert rows[0]["tags"] == "c# winforms type-conversion decimal opacity"
    assert rows[0]["source"] == "dump"
    assert rows[0]["body_format"] == "html"

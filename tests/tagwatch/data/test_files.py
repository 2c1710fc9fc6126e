"""File plumbing: format detection, compressed files, CSV quoting and encoding, files refused whole."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from tagwatch.data import detect_file_format, iter_questions, load_questions
from tagwatch.settings import BUNDLED_DATA
from tests.tagwatch.data.support import BUNDLED_SMALL, FIXTURES, POSTS_XML, SEDE_ANGLE, SEDE_PIPE, STACKSAMPLE


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (BUNDLED_SMALL, "bundled"),
        (BUNDLED_DATA, "bundled"),
        (SEDE_ANGLE, "sede"),
        (SEDE_PIPE, "sede"),
        (POSTS_XML, "posts_xml"),
        (STACKSAMPLE, "stacksample"),
    ],
)
def test_detect_file_format(path: Path, fmt: str) -> None:
    assert detect_file_format(path) == fmt


def test_detection_looks_at_content_not_name(tmp_path: Path) -> None:
    # A gzip-compressed Posts.xml named like a CSV is still found to be a Posts.xml.
    odd = tmp_path / "export.csv"
    odd.write_bytes(gzip.compress(POSTS_XML.read_bytes()))
    assert detect_file_format(odd) == "posts_xml"
    questions, _ = load_questions(odd)
    assert [q.id for q in questions] == ["4", "6"]


def test_unknown_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,value\na,1\n")
    with pytest.raises(ValueError, match="unknown question file format"):
        load_questions(path)


def test_stacksample_questions_without_tags_file_are_refused(tmp_path: Path) -> None:
    shutil.copy(STACKSAMPLE, tmp_path / "Questions.csv")
    with pytest.raises(ValueError, match=r"no Tags\.csv"):
        load_questions(tmp_path / "Questions.csv")


def test_explicit_format_that_does_not_fit_is_refused_before_streaming() -> None:
    # iter_questions refuses at the call, not at the first next(): no half-consumed stream to clean up.
    with pytest.raises(ValueError, match="missing columns"):
        iter_questions(BUNDLED_SMALL, fmt="sede")
    with pytest.raises(ValueError, match="missing columns"):
        iter_questions(BUNDLED_SMALL, tags_path=SEDE_PIPE)  # not a Questions.csv
    with pytest.raises(ValueError, match="missing columns"):
        iter_questions(STACKSAMPLE, tags_path=SEDE_PIPE)  # not a Tags.csv
    with pytest.raises(ValueError, match=r"not a Posts\.xml"):
        iter_questions(BUNDLED_SMALL, fmt="posts_xml")
    with pytest.raises(ValueError, match="XML file"):
        iter_questions(POSTS_XML, fmt="bundled")
    with pytest.raises(ValueError, match="unknown format"):
        load_questions(BUNDLED_SMALL, fmt="json")
    with pytest.raises(FileNotFoundError):
        load_questions(FIXTURES / "missing.csv")


def test_seven_zip_dump_gets_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "stackoverflow.com-Posts.7z"
    path.write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 32)
    with pytest.raises(ValueError, match="extract it first"):
        load_questions(path)


def test_gzipped_bundled_file_reads_the_same(tmp_path: Path) -> None:
    gz = tmp_path / "questions.csv.gz"
    gz.write_bytes(gzip.compress(BUNDLED_SMALL.read_bytes()))
    assert load_questions(gz)[0] == load_questions(BUNDLED_SMALL)[0]


def test_unterminated_quote_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        "id,created_at,title,body,tags,score,source,body_format\n"
        '1,2010-01-01T00:00:00Z,Title,"body never closed,python,1,x,text\n'
        "2,2010-01-01T00:00:00Z,Swallowed,body,python,1,x,text\n"
    )
    with pytest.raises(ValueError, match="unterminated quoted field"):
        load_questions(path)


@pytest.mark.parametrize("good_rows", [0, 2_000], ids=["first-row", "far-into-the-file"])
def test_bundled_format_must_be_utf8(tmp_path: Path, good_rows: int) -> None:
    path = tmp_path / "latin1.csv"
    text = "id,created_at,title,body,tags,score,source,body_format\n"
    text += "".join(f"{i},,Title,body,python,1,x,text\n" for i in range(1, good_rows + 1))
    path.write_bytes(text.encode("utf-8") + "0,,Café,body,python,1,x,text\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        load_questions(path)

"""The reader of each format, on tiny hand-made files (tests/tagwatch/fixtures/)."""

from __future__ import annotations

import shutil
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tagwatch.data import (
    BAD_BODY_FORMAT,
    BAD_DATE,
    BAD_ID,
    BAD_SCORE,
    BAD_TAGS,
    DUPLICATE_ID,
    MALFORMED_ROW,
    NO_TAGS,
    NO_TITLE,
    NOT_A_QUESTION,
    TAGS_FILE_MALFORMED,
    TAGS_FILE_ORPHAN,
    LoadReport,
    Question,
    describe_report,
    detect_file_format,
    iter_questions,
    load_questions,
)
from tests.tagwatch.data.support import BUNDLED_SMALL, POSTS_XML, SEDE_ANGLE, SEDE_PIPE, STACKSAMPLE, by_id, utc

# --- bundled format -----------------------------------------------------------------------------------------


def test_bundled_fixture_keeps_good_rows_and_counts_every_bad_one() -> None:
    questions, report = load_questions(BUNDLED_SMALL)
    assert report.rows_read == 17
    assert report.rows_kept == len(questions) == 7
    assert report.rejected == {
        NO_TITLE: 1,
        NO_TAGS: 1,
        BAD_DATE: 1,
        DUPLICATE_ID: 1,
        BAD_TAGS: 1,
        MALFORMED_ROW: 2,
        BAD_SCORE: 1,
        BAD_ID: 1,
        BAD_BODY_FORMAT: 1,
    }
    assert report.rows_read == report.rows_kept + report.rows_rejected
    # The row after the one with a stray quote is read normally.
    assert "59" in by_id(questions)


def test_bundled_fixture_values() -> None:
    questions, _ = load_questions(BUNDLED_SMALL)
    q = by_id(questions)
    assert q["100"].body == '<p>A body with a comma, a "quote" and\na newline</p>'
    assert q["100"].tags == ("python", "pandas")
    assert q["100"].score == 5
    assert q["9"].tags == ("python", "django")
    assert q["9"].score is None
    assert q["7"].title == "Earliest question"  # the first copy of a duplicate id is kept
    assert q["7"].created_at == utc(2008, 8, 1, 12)
    assert q["1000"].score == -2
    assert q["50"].body_format == "markdown"
    assert q["h:0123456789abcdef"].created_at is None


# --- SEDE ---------------------------------------------------------------------------------------------------


def test_sede_angle_bracket_tags_and_bad_rows() -> None:
    questions, report = load_questions(SEDE_ANGLE)
    assert report.rows_read == 6
    assert report.rejected == {BAD_DATE: 1, NO_TAGS: 1, BAD_TAGS: 1}
    assert [q.id for q in questions] == ["1002", "1001", "1005"]
    q = by_id(questions)
    assert q["1001"].title == 'Pandas, groupby "sum"'
    assert q["1001"].body == (
        '<p>I have a frame:</p>\n<pre><code>df.groupby("a").sum()\n</code></pre>\n<p>Why, oh why?</p>'
    )
    assert q["1001"].tags == ("python", "pandas")
    assert q["1001"].created_at == utc(2014, 3, 2, 17, 5, 12)
    assert q["1001"].body_format == "html"
    assert q["1001"].score == 3
    assert q["1005"].body == ""
    assert q["1005"].body_format == "none"
    assert q["1005"].score is None


def test_sede_pipe_tags_without_score_skips_answers() -> None:
    questions, report = load_questions(SEDE_PIPE)
    assert report.rejected == {NOT_A_QUESTION: 1}
    assert [(q.id, q.tags, q.score) for q in questions] == [
        ("2003", ("r",), None),
        ("2001", ("python", "python-polars"), None),
    ]


# --- StackSample --------------------------------------------------------------------------------------------


def check_stacksample(questions: list[Question], report: LoadReport) -> None:
    assert report.rows_read == 6
    assert report.rows_kept == 3
    assert report.rejected == {
        NO_TAGS: 1,
        NO_TITLE: 1,
        BAD_TAGS: 1,
        TAGS_FILE_MALFORMED: 1,
        TAGS_FILE_ORPHAN: 1,
    }
    q = by_id(questions)
    assert [x.id for x in questions] == ["80", "90", "120"]
    assert q["80"].tags == ("flex", "actionscript-3", "air")
    # Tags.csv lists 120 before 90: each question still gets its own tags, in file order.
    assert q["90"].tags == ("svn", "tortoisesvn", "branch", "branching-and-merging")
    assert q["120"].tags == ("sql", "asp.net", "sitemap")
    assert q["90"].body == "<p>Café résumé naïve ½</p>"
    assert q["80"].body.startswith("<p>I've written a database generation script in <a href=\"http://en.wiki")
    assert "\r\n\r\n<pre><code>Create Table tRole (" in q["80"].body
    assert q["80"].created_at == utc(2008, 8, 1, 13, 57, 7)
    assert q["80"].score == 26
    assert q["80"].body_format == "html"


def test_stacksample_latin1_pair_found_beside_each_other() -> None:
    assert b"Caf\xe9" in STACKSAMPLE.read_bytes()  # the fixture really is Latin-1
    check_stacksample(*load_questions(STACKSAMPLE))


def test_stacksample_utf8_and_explicit_tags_path(tmp_path: Path) -> None:
    questions_file = tmp_path / "q" / "questions-utf8.csv"
    questions_file.parent.mkdir()
    questions_file.write_bytes(STACKSAMPLE.read_bytes().decode("latin-1").encode("utf-8"))
    tags_file = tmp_path / "tags-elsewhere.csv"
    shutil.copy(STACKSAMPLE.with_name("Tags.csv"), tags_file)
    assert detect_file_format(questions_file, tags_path=tags_file) == "stacksample"
    check_stacksample(*load_questions(questions_file, tags_path=tags_file))


def test_stacksample_mixed_encodings_in_one_file(tmp_path: Path) -> None:
    # A UTF-8 file with one Latin-1 line: each line is read as what it is.
    shutil.copy(STACKSAMPLE.with_name("Tags.csv"), tmp_path / "Tags.csv")
    accented = "Café résumé naïve ½"
    data = STACKSAMPLE.read_bytes().decode("latin-1").replace("ASP.NET Site", "ÄSP.NET Site").encode("utf-8")
    data = data.replace(accented.encode("utf-8"), accented.encode("latin-1"))
    (tmp_path / "Questions.csv").write_bytes(data)
    q = by_id(load_questions(tmp_path / "Questions.csv")[0])
    assert q["90"].body == "<p>Café résumé naïve ½</p>"
    assert q["120"].title == "ÄSP.NET Site Maps"


# --- Posts.xml ----------------------------------------------------------------------------------------------


def test_posts_xml_questions_only() -> None:
    questions, report = load_questions(POSTS_XML)
    assert report.rows_read == 7
    assert report.rejected == {NOT_A_QUESTION: 2, NO_TITLE: 1, BAD_DATE: 1, MALFORMED_ROW: 1}
    assert [q.id for q in questions] == ["4", "6"]
    q4, q6 = questions
    assert q4.created_at == utc(2008, 7, 31, 21, 42, 52, 667000)
    assert q4.tags == ("c#", "winforms", "type-conversion", "decimal", "opacity")
    assert q4.body == (
        "<p>I want to use a track-bar to change a form's opacity, &quot;fast&quot;.</p>\n\n"
        "<pre><code>decimal trans = trackBar1.Value / 5000;\n</code></pre>\n"
    )
    assert q4.title == "When setting a form's opacity should I use a decimal or a double?"
    assert q4.score == 573
    assert q6.tags == ("html", "css", "internet-explorer-7")  # the newer "|a|b|" syntax
    assert "not a question: 2" in describe_report(report)


def test_posts_xml_of_another_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Users.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<users><row Id="1" DisplayName="x" /></users>\n')
    with pytest.raises(ValueError, match=r"not a Posts\.xml \(root element <users>\)"):
        iter_questions(path)
    path.write_text("<>posts</>")
    with pytest.raises(ValueError, match="not well-formed"):
        iter_questions(path)


def write_posts(path: Path, n: int, *, body_chars: int, truncated: bool = False) -> None:
    body = "&lt;p&gt;" + "lorem ipsum " * (body_chars // 12) + "&lt;/p&gt;"
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for i in range(1, n + 1):
            kind = 1 if i % 3 else 2  # every third post an answer
            f.write(
                f'  <row Id="{i}" PostTypeId="{kind}" CreationDate="2010-01-01T00:00:{i % 60:02d}.000" '
                f'Score="1" Body="{body}" Title="Question {i}" '
                f'Tags="&lt;python&gt;&lt;t{i % 50}&gt;" />\n'
            )
        if truncated:
            f.write('  <row Id="0" PostTypeId="1" Title="cut off')
        else:
            f.write("</posts>\n")


def test_posts_xml_is_streamed_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "Posts.xml"
    write_posts(path, 6_000, body_chars=1_000)
    size = path.stat().st_size
    assert size > 6_000_000
    count = 0
    tracemalloc.start()
    try:
        for q in iter_questions(path):
            count += 1
            assert q.tags[0] == "python"
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        # The control: a parse that builds the whole tree does exceed the bound used below.
        tree = ET.parse(path)
        _, tree_peak = tracemalloc.get_traced_memory()
        del tree
    finally:
        tracemalloc.stop()
    assert count == 4_000
    assert tree_peak > size / 5
    assert streamed_peak < size / 20, f"peak {streamed_peak} bytes for a {size}-byte file"


def test_posts_xml_yields_questions_before_reading_the_end(tmp_path: Path) -> None:
    # A dump cut off mid-row: the questions before the cut are delivered before the file turns out broken,
    # which a loader that parses the whole document first could not do.
    path = tmp_path / "Posts.xml"
    write_posts(path, 3_000, body_chars=200, truncated=True)
    stream = iter_questions(path)
    first = [next(stream) for _ in range(100)]
    assert [q.id for q in first[:3]] == ["1", "2", "4"]
    with pytest.raises(ValueError, match="not well-formed"):
        list(stream)

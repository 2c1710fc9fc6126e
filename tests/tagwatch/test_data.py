"""Loaders of every supported format, on tiny hand-made files (fixtures/) and on the bundled data."""

from __future__ import annotations

import csv
import gzip
import shutil
import time
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tagwatch.data import (
    BAD_BODY_FORMAT,
    BAD_DATE,
    BAD_ID,
    BAD_SCORE,
    BAD_TAGS,
    DUPLICATE_ID,
    FRAME_COLUMNS,
    MALFORMED_ROW,
    NO_TAGS,
    NO_TITLE,
    NOT_A_QUESTION,
    TAGS_FILE_MALFORMED,
    TAGS_FILE_ORPHAN,
    LoadReport,
    Question,
    RowRejected,
    describe_report,
    detect_file_format,
    from_frame,
    iter_questions,
    load_bundled,
    load_questions,
    parse_date,
    parse_tags,
    question_order_key,
    to_frame,
    write_questions_csv,
)
from tagwatch.settings import BUNDLED_DATA, Settings

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLED_SMALL = FIXTURES / "bundled_small.csv"
SEDE_ANGLE = FIXTURES / "sede_angle.csv"
SEDE_PIPE = FIXTURES / "sede_pipe.csv"
POSTS_XML = FIXTURES / "Posts.xml"
STACKSAMPLE = FIXTURES / "stacksample" / "Questions.csv"
TITLE_ONLY = BUNDLED_DATA.with_name("questions_title_only.csv.gz")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def by_id(questions: list[Question]) -> dict[str, Question]:
    return {q.id: q for q in questions}


# --- field parsers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2014-03-02T17:05:12Z", utc(2014, 3, 2, 17, 5, 12)),
        ("2014-03-02 17:05:12", utc(2014, 3, 2, 17, 5, 12)),  # SEDE
        ("2008-07-31T21:42:52.667", utc(2008, 7, 31, 21, 42, 52, 667000)),  # data dump
        ("2008-07-31T21:42:52.6671234", utc(2008, 7, 31, 21, 42, 52, 667123)),  # beyond microseconds
        ("2014-03-02T19:05:12+02:00", utc(2014, 3, 2, 17, 5, 12)),
        ("2014-03-02", utc(2014, 3, 2)),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_parse_date_gives_aware_utc(raw: str | None, expected: datetime | None) -> None:
    parsed = parse_date(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("raw", ["03/02/2014 17:05", "yesterday", "2014-13-01", "2014-02-30T10:00:00Z", "1393779912"])
def test_parse_date_rejects_what_it_would_have_to_guess(raw: str) -> None:
    with pytest.raises(RowRejected) as info:
        parse_date(raw)
    assert info.value.reason == BAD_DATE


@pytest.mark.parametrize(
    ("raw", "syntax", "expected"),
    [
        ("python pandas", "space", ("python", "pandas")),
        ("  Python  python   C# ", "space", ("python", "c#")),
        ("<python><pandas>", "markup", ("python", "pandas")),
        ("|python|pandas|", "markup", ("python", "pandas")),
        ("<C++><.NET><c++>", "markup", ("c++", ".net")),
        ("|asp.net-mvc-3|node.js|", "markup", ("asp.net-mvc-3", "node.js")),
    ],
)
def test_parse_tags_lowercases_and_deduplicates_in_order(raw: str, syntax: str, expected: tuple[str, ...]) -> None:
    assert parse_tags(raw, syntax=syntax) == expected


@pytest.mark.parametrize(
    ("raw", "syntax", "reason"),
    [
        ("", "space", NO_TAGS),
        ("", "markup", NO_TAGS),
        ("<python><pandas>", "space", BAD_TAGS),
        ("python pandas", "markup", BAD_TAGS),
        ("<python><pandas", "markup", BAD_TAGS),
        ("<python>|pandas|", "markup", BAD_TAGS),
        ("<>", "markup", BAD_TAGS),
        ("|python||", "markup", BAD_TAGS),
        ("<two words>", "markup", BAD_TAGS),
        ("python,pandas", "space", BAD_TAGS),
        ("a" * 36, "space", BAD_TAGS),
    ],
)
def test_parse_tags_rejects_wrong_syntax(raw: str, syntax: str, reason: str) -> None:
    with pytest.raises(RowRejected) as info:
        parse_tags(raw, syntax=syntax)
    assert info.value.reason == reason


# --- format detection ---------------------------------------------------------------------------------------


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


def test_time_order_dated_then_undated_numeric_ids_then_hash_ids() -> None:
    questions, _ = load_questions(BUNDLED_SMALL)
    # 9 before 100 at the same instant (numeric, not string order); undated last: 50 < 1000 < h:…
    assert [q.id for q in questions] == ["7", "9", "100", "59", "50", "1000", "h:0123456789abcdef"]
    assert questions == sorted(questions, key=question_order_key)


def test_iter_questions_streams_in_file_order_and_fills_the_report() -> None:
    report = LoadReport(source="x")
    stream = iter_questions(BUNDLED_SMALL, report=report)
    first = next(stream)
    assert first.id == "100"
    assert report.rows_read == 1
    rest = list(stream)
    assert [q.id for q in rest][:3] == ["9", "7", "h:0123456789abcdef"]
    assert report.rows_kept == 1 + len(rest) == 7


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


# --- frames and files ---------------------------------------------------------------------------------------


def all_fixture_questions() -> list[Question]:
    out: list[Question] = []
    for path in (BUNDLED_SMALL, SEDE_ANGLE, SEDE_PIPE, POSTS_XML, STACKSAMPLE):
        out.extend(load_questions(path)[0])
    return out


def test_frame_round_trip() -> None:
    questions = all_fixture_questions()
    df = to_frame(questions)
    assert list(df.columns) == list(FRAME_COLUMNS)
    assert str(df["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(df["score"].dtype) == "Int64"
    assert df.loc[df["id"] == "100", "tags"].item() == "python pandas"
    assert int(df["created_at"].isna().sum()) == sum(q.created_at is None for q in questions)
    assert from_frame(df) == questions


def test_from_frame_accepts_string_dates_and_refuses_nonsense() -> None:
    df = pd.DataFrame(
        {
            "id": ["1"],
            "created_at": ["2014-03-02T17:05:12Z"],
            "title": ["t"],
            "body": [""],
            "tags": ["Python"],
            "score": [3.0],
        }
    )
    [q] = from_frame(df)
    assert q.created_at == utc(2014, 3, 2, 17, 5, 12)
    assert q.tags == ("python",)
    assert q.score == 3
    assert q.body_format == "none"
    with pytest.raises(ValueError, match="row 0"):
        from_frame(df.assign(score=[2.5]))
    with pytest.raises(ValueError, match="lacks columns"):
        from_frame(df.drop(columns=["tags"]))


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

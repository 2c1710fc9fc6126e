"""Field parsers (dates, tags) and the time order of questions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tagwatch.data import (
    BAD_DATE,
    BAD_TAGS,
    NO_TAGS,
    RowRejected,
    load_questions,
    parse_date,
    parse_tags,
    question_order_key,
)
from tests.tagwatch.data.support import BUNDLED_SMALL, utc


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


def test_time_order_dated_then_undated_numeric_ids_then_hash_ids() -> None:
    questions, _ = load_questions(BUNDLED_SMALL)
    # 9 before 100 at the same instant (numeric, not string order); undated last: 50 < 1000 < h:…
    assert [q.id for q in questions] == ["7", "9", "100", "59", "50", "1000", "h:0123456789abcdef"]
    assert questions == sorted(questions, key=question_order_key)

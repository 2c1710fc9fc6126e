"""Paths of the hand-made data fixtures and small helpers shared by the data tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tagwatch.data import Question, load_questions
from tagwatch.settings import BUNDLED_DATA

FIXTURES = Path(__file__).parents[1] / "fixtures"
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


def all_fixture_questions() -> list[Question]:
    out: list[Question] = []
    for path in (BUNDLED_SMALL, SEDE_ANGLE, SEDE_PIPE, POSTS_XML, STACKSAMPLE):
        out.extend(load_questions(path)[0])
    return out

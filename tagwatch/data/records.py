"""The question record every stage shares, the load report, and the reasons a row is rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    created_at: datetime | None  # timezone-aware UTC
    title: str
    body: str
    body_format: str  # html | markdown | text | none
    tags: tuple[str, ...]
    score: int | None = None


@dataclass
class LoadReport:
    """What a loader read, kept and rejected (with a count per reason)."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())


class RowRejected(ValueError):
    """A field that makes its row unusable; ``reason`` is the LoadReport key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Every reader is a streaming reader that turns one record of its format into a ``Question`` or into the
# reason it was rejected; ``iter_questions`` counts both in a ``LoadReport``. Decisions on bad rows:
#
# * rejected (counted under the reason, never kept): no title, no tags, tags in the wrong syntax for the
#   format, a missing or malformed id, a duplicate id (the first copy is kept), a malformed CSV row (wrong
#   number of fields, broken quoting), an unknown body_format, an unparseable score, and a non-empty date
#   that does not parse. The date case is a rejection rather than ``created_at=None``: an undated question
#   sorts last and falls out of every time window, so keeping it would silently move it from its period into
#   "no date"; and a garbled date is usually the sign of a shifted, malformed row. Ambiguous day/month forms
#   (``3/2/2014``) are not guessed.
# * kept: an empty date (``created_at=None``; the bundled file has 901 such rows), an empty score (None), an
#   empty body (``body_format='none'`` for the HTML formats).
# * skipped, not bad: Posts.xml (and SEDE exports with a PostTypeId column) rows that are not questions are
#   counted under ``"not a question"`` (see ``SKIP_REASONS``).
# * StackSample's Tags.csv: its rows are not questions, so its problems are counted under reasons prefixed
#   ``"tags file: "`` (malformed rows, tags whose question is not in Questions.csv); they do not count in
#   ``rows_read``. A question whose tag rows include an invalid tag is rejected as "bad tag syntax".
# * file-level problems raise ValueError instead: unknown format or missing columns, XML that is not
#   well-formed, a quote left open to the end of a CSV, invalid UTF-8 in a bundled-format file.

NO_TITLE = "no title"
NO_TAGS = "no tags"
BAD_TAGS = "bad tag syntax"
BAD_DATE = "unparseable date"
BAD_SCORE = "unparseable score"
MISSING_ID = "missing id"
BAD_ID = "bad id"
DUPLICATE_ID = "duplicate id"
MALFORMED_ROW = "malformed row"
BAD_BODY_FORMAT = "unknown body_format"
NOT_A_QUESTION = "not a question"
TAGS_FILE_MALFORMED = "tags file: malformed row"
TAGS_FILE_ORPHAN = "tags file: no such question"
# Reasons that are expected filtering, not defects of the input.
SKIP_REASONS = frozenset({NOT_A_QUESTION})

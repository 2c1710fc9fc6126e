"""Field parsers shared by every format (tags, dates, ids, scores) and the time order of questions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from tagwatch.data.records import BAD_DATE, BAD_ID, BAD_SCORE, BAD_TAGS, MISSING_ID, NO_TAGS, Question, RowRejected

# Stack Overflow tag names: lower-case letters, digits and + # . - (unicode letters for other SE sites), at
# most 35 characters.
TAG_NAME = re.compile(r"[\w#+.\-]{1,35}")
NUMERIC_ID = re.compile(r"[0-9]+")
_ANGLE_TAGS = re.compile(r"(?:<[^<>]*>)+")
_PIPE_TAGS = re.compile(r"\|(?:[^|]*\|)+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_HASH_ID = re.compile(r"h:[0-9a-f]{16}")
# Questions that came through the service: "r:" + the request id (a retrain's hold-out becomes a reference sample).
_REQUEST_ID = re.compile(r"r:[0-9a-f]{32}")
_SCORE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_MIN_DATE = datetime.min.replace(tzinfo=UTC)


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Lower-case, check and de-duplicate tag names, keeping their order."""
    out: dict[str, None] = {}
    for tag in tags:
        t = tag.strip().lower()
        if not TAG_NAME.fullmatch(t):
            raise RowRejected(BAD_TAGS, repr(tag))
        out[t] = None
    if not out:
        raise RowRejected(NO_TAGS)
    return tuple(out)


def parse_tags(raw: str, *, syntax: str = "space") -> tuple[str, ...]:
    """Tags of one question, ``space`` ("python pandas") or ``markup`` ("<python><pandas>", "|python|")."""
    raw = raw.strip()
    if not raw:
        raise RowRejected(NO_TAGS)
    if syntax == "space":
        if "<" in raw or "|" in raw:
            raise RowRejected(BAD_TAGS, repr(raw))
        return normalize_tags(raw.split())
    if syntax != "markup":
        raise ValueError(f"unknown tag syntax {syntax!r}")
    if _ANGLE_TAGS.fullmatch(raw):
        return normalize_tags(raw[1:-1].split("><"))
    if _PIPE_TAGS.fullmatch(raw):
        return normalize_tags(raw[1:-1].split("|"))
    raise RowRejected(BAD_TAGS, repr(raw))


def parse_date(raw: str | None) -> datetime | None:
    """An ISO-8601-style date (``2014-03-02T17:05:12Z``, ``2014-03-02 17:05:12``, ``…:52.667``) as aware UTC.

    Empty means "no date" (None). Dates without a zone are UTC, as all Stack Exchange exports are.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    if not _DATE.fullmatch(raw):
        raise RowRejected(BAD_DATE, repr(raw))
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", raw))
    except ValueError as exc:  # e.g. month 13
        raise RowRejected(BAD_DATE, repr(raw)) from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_date(dt: datetime | None) -> str:
    """The bundled file's date form (``2014-03-02T17:05:12Z``, fractions kept when present)."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        raise ValueError(f"created_at {dt!r} has no time zone: it must be timezone-aware (UTC)")
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def parse_score(raw: str | None) -> int | None:
    """A vote score; empty means none. "12.0" from float-typed exports is fine; "12.5" or "NA" is not."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    if not _SCORE.fullmatch(raw):
        raise RowRejected(BAD_SCORE, repr(raw))
    return int(raw.split(".")[0])


def parse_id(raw: str, *, allow_hash: bool) -> str:
    """A question id: a number without leading zeros, or (``allow_hash``) an ``h:``/``r:`` id of our own."""
    raw = raw.strip()
    if not raw:
        raise RowRejected(MISSING_ID)
    if NUMERIC_ID.fullmatch(raw):
        return str(int(raw))  # canonical: no leading zeros
    if allow_hash and (_HASH_ID.fullmatch(raw) or _REQUEST_ID.fullmatch(raw)):
        return raw
    raise RowRejected(BAD_ID, repr(raw))


def question_order_key(q: Question) -> tuple[int, datetime, int, int, str]:
    """Time order: created_at, then id; undated last. Numeric ids compare as numbers, ``h:`` ids after."""
    if NUMERIC_ID.fullmatch(q.id):
        kind, number, text = 0, int(q.id), ""
    else:
        kind, number, text = 1, 0, q.id
    if q.created_at is None:
        return (1, _MIN_DATE, kind, number, text)
    return (0, q.created_at, kind, number, text)


def sort_questions(questions: Iterable[Question]) -> list[Question]:
    return sorted(questions, key=question_order_key)

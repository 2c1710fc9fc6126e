"""Questions: the record every stage shares, and loaders for the bundled data and public formats."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import os
import re
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from tagwatch.settings import Settings, get_settings
from tagwatch.text import BODY_FORMATS, detect_format

if TYPE_CHECKING:
    import pandas as pd


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


# --- loaders ------------------------------------------------------------------------------------------------
#
# Every loader is a streaming reader that turns one record of its format into a ``Question`` or into the
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

FORMATS = ("bundled", "sede", "stacksample", "posts_xml")
BUNDLED_COLUMNS = ("id", "created_at", "title", "body", "tags", "score", "source", "body_format")
FRAME_COLUMNS = ("id", "created_at", "title", "body", "body_format", "tags", "score")
_BUNDLED_REQUIRED = ("id", "created_at", "title", "body", "tags")
_SEDE_REQUIRED = ("id", "creationdate", "title", "body", "tags")
_STACKSAMPLE_REQUIRED = ("id", "creationdate", "title", "body")

# Stack Overflow tag names: lower-case letters, digits and + # . - (unicode letters for other SE sites), at
# most 35 characters.
_TAG = re.compile(r"[\w#+.\-]{1,35}")
_ANGLE_TAGS = re.compile(r"(?:<[^<>]*>)+")
_PIPE_TAGS = re.compile(r"\|(?:[^|]*\|)+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_NUMERIC_ID = re.compile(r"[0-9]+")
_HASH_ID = re.compile(r"h:[0-9a-f]{16}")
# Questions that came through the service: "r:" + the request id (a retrain's hold-out becomes a reference sample).
_REQUEST_ID = re.compile(r"r:[0-9a-f]{32}")
_SCORE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_MIN_DATE = datetime.min.replace(tzinfo=UTC)

log = logging.getLogger(__name__)


class RowRejected(ValueError):
    """A field that makes its row unusable; ``reason`` is the LoadReport key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Lower-case, check and de-duplicate tag names, keeping their order."""
    out: dict[str, None] = {}
    for tag in tags:
        t = tag.strip().lower()
        if not _TAG.fullmatch(t):
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


def _parse_score(raw: str | None) -> int | None:
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    if not _SCORE.fullmatch(raw):  # "12.0" from float-typed exports is fine; "12.5" or "NA" is not a score
        raise RowRejected(BAD_SCORE, repr(raw))
    return int(raw.split(".")[0])


def _parse_id(raw: str, *, allow_hash: bool) -> str:
    raw = raw.strip()
    if not raw:
        raise RowRejected(MISSING_ID)
    if _NUMERIC_ID.fullmatch(raw):
        return str(int(raw))  # canonical: no leading zeros
    if allow_hash and (_HASH_ID.fullmatch(raw) or _REQUEST_ID.fullmatch(raw)):
        return raw
    raise RowRejected(BAD_ID, repr(raw))


def question_order_key(q: Question) -> tuple[int, datetime, int, int, str]:
    """Time order: created_at, then id; undated last. Numeric ids compare as numbers, ``h:`` ids after."""
    if _NUMERIC_ID.fullmatch(q.id):
        kind, number, text = 0, int(q.id), ""
    else:
        kind, number, text = 1, 0, q.id
    if q.created_at is None:
        return (1, _MIN_DATE, kind, number, text)
    return (0, q.created_at, kind, number, text)


def sort_questions(questions: Iterable[Question]) -> list[Question]:
    return sorted(questions, key=question_order_key)


# --- file access --------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, gzip/bzip2 decompressed if it is compressed (judged by content, not name)."""
    with open(path, "rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        if magic.startswith(_7Z_MAGIC):
            raise ValueError(f"{path}: a 7-Zip archive (as the Stack Exchange dumps ship); extract it first")
        if magic.startswith(_GZIP_MAGIC):
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield cast(IO[bytes], gz)
        elif magic.startswith(_BZIP2_MAGIC):
            with bz2.BZ2File(raw, mode="rb") as bz:
                yield cast(IO[bytes], bz)
        else:
            yield raw


class _Lines:
    """Decoded lines of a CSV: UTF-8 where a line is valid UTF-8, Latin-1 otherwise.

    Per line, because StackSample-style files are Latin-1 "in the wild" while others are UTF-8, and a file can
    only be known to be Latin-1 once a non-UTF-8 byte shows up, possibly gigabytes in. Latin-1 never fails, so
    nothing is dropped; a Latin-1 line that happens to be valid UTF-8 would be misread (rare in practice).
    """

    def __init__(self, binary: IO[bytes]) -> None:
        self.binary = binary
        self.latin1_lines = 0

    def __iter__(self) -> Iterator[str]:
        first = True
        for line in self.binary:
            if first:
                first = False
                line = line.removeprefix(b"\xef\xbb\xbf")
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                self.latin1_lines += 1
                yield line.decode("latin-1")


def _csv_records(reader: Iterator[list[str]], path: Path) -> Iterator[list[str] | None]:
    """CSV records; None for a record the csv module could not parse (it resumes at the next line)."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                # A quote opened and never closed: everything after it was read as one field, so an unknown
                # number of rows is gone. That is not one bad row; refuse the file.
                raise ValueError(f"{path}: unterminated quoted field running to the end of the file") from exc
            yield None
            continue
        yield row


@contextmanager
def _open_csv(path: Path, *, lenient_encoding: bool) -> Iterator[tuple[list[str], Iterator[list[str] | None]]]:
    """Header (as given) and record iterator of a CSV file."""
    with _open_binary(path) as binary:
        lines: Iterable[str]
        if lenient_encoding:
            decoded = _Lines(binary)
            lines = decoded
        else:
            lines = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        # strict: a stray quote inside an unquoted field is an error (a malformed row), not silently accepted.
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file (no header)") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: unreadable CSV header: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not valid UTF-8 ({exc}); this format must be UTF-8") from exc
        try:
            yield header, _csv_records(reader, path)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not valid UTF-8 ({exc}); this format must be UTF-8") from exc
        if lenient_encoding and decoded.latin1_lines:
            log.info("%s: %d lines were not UTF-8 and were read as Latin-1", path, decoded.latin1_lines)


def _column_index(header: list[str], required: Sequence[str], path: Path, fmt: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip().lower(), i)
    missing = [c for c in required if c not in index]
    if missing:
        raise ValueError(f"{path}: not a {fmt} file: missing columns {missing} (has {header})")
    return index


def _read_header(path: Path) -> list[str] | None:
    """The CSV header of a file, or None if it is XML."""
    with _open_binary(path) as binary:
        head = binary.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return None
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return next(csv.reader([first]), [])


def _find_tags_file(path: Path) -> Path | None:
    for name in ("Tags.csv", "tags.csv", "Tags.csv.gz", "tags.csv.gz"):
        candidate = path.parent / name
        if candidate.is_file() and candidate.resolve() != path.resolve():
            return candidate
    return None


def detect_file_format(path: Path | str, *, tags_path: Path | str | None = None) -> str:
    """Which of ``FORMATS`` a file is, from its content (XML root or CSV columns) and a Tags.csv beside it."""
    path = Path(path)
    if tags_path is not None:
        return "stacksample"
    header = _read_header(path)
    if header is None:
        return "posts_xml"
    columns = {c.strip().lower() for c in header}
    if set(_BUNDLED_REQUIRED) <= columns:
        return "bundled"
    if set(_SEDE_REQUIRED) <= columns:
        return "sede"
    if set(_STACKSAMPLE_REQUIRED) <= columns:
        if _find_tags_file(path) is not None:
            return "stacksample"
        raise ValueError(
            f"{path}: looks like a StackSample Questions.csv (no Tags column) but there is no "
            "Tags.csv beside it; pass tags_path"
        )
    raise ValueError(f"{path}: unknown question file format (columns {header}); expected one of {FORMATS}")


# --- readers: one record in, a Question or a rejection reason out -------------------------------------------


def _question(
    raw_id: str,
    *,
    allow_hash: bool,
    date: str | None,
    title: str,
    body: str,
    body_format: str,
    tags: tuple[str, ...] | str,
    tag_syntax: str,
    score: str | None,
) -> Question:
    qid = _parse_id(raw_id, allow_hash=allow_hash)
    if not title.strip():
        raise RowRejected(NO_TITLE)
    parsed_tags = tags if isinstance(tags, tuple) else parse_tags(tags, syntax=tag_syntax)
    return Question(
        id=qid,
        created_at=parse_date(date),
        title=title,
        body=body,
        body_format=body_format,
        tags=parsed_tags,
        score=_parse_score(score),
    )


def _html_format(body: str) -> str:
    return "html" if body.strip() else "none"


def _bundled_records(path: Path) -> Iterator[Question | str]:
    with _open_csv(path, lenient_encoding=False) as (header, records):
        col = _column_index(header, _BUNDLED_REQUIRED, path, "bundled")
        i_id, i_date, i_title, i_body, i_tags = (col[c] for c in _BUNDLED_REQUIRED)
        i_score, i_fmt = col.get("score"), col.get("body_format")
        width = len(header)
        for row in records:
            if row is None or len(row) != width:
                yield MALFORMED_ROW
                continue
            body = row[i_body]
            body_format = row[i_fmt].strip() if i_fmt is not None else detect_format(body)
            if body_format not in BODY_FORMATS:
                yield BAD_BODY_FORMAT
                continue
            try:
                yield _question(
                    row[i_id],
                    allow_hash=True,
                    date=row[i_date],
                    title=row[i_title],
                    body=body,
                    body_format=body_format,
                    tags=row[i_tags],
                    tag_syntax="space",
                    score=row[i_score] if i_score is not None else None,
                )
            except RowRejected as rej:
                yield rej.reason


def _sede_records(path: Path) -> Iterator[Question | str]:
    with _open_csv(path, lenient_encoding=True) as (header, records):
        col = _column_index(header, _SEDE_REQUIRED, path, "SEDE")
        i_id, i_date, i_title, i_body, i_tags = (col[c] for c in _SEDE_REQUIRED)
        i_score, i_type = col.get("score"), col.get("posttypeid")
        width = len(header)
        for row in records:
            if row is None or len(row) != width:
                yield MALFORMED_ROW
                continue
            if i_type is not None and row[i_type].strip() != "1":
                yield NOT_A_QUESTION
                continue
            body = row[i_body]
            try:
                yield _question(
                    row[i_id],
                    allow_hash=False,
                    date=row[i_date],
                    title=row[i_title],
                    body=body,
                    body_format=_html_format(body),
                    tags=row[i_tags],
                    tag_syntax="markup",
                    score=row[i_score] if i_score is not None else None,
                )
            except RowRejected as rej:
                yield rej.reason


class _TagTable:
    """StackSample's Tags.csv as two compact arrays (question id, tag number) sorted by id.

    About 12 bytes per tag row instead of a dict of lists (~150 bytes per question); the real file has 3.75M
    rows.
    """

    def __init__(self, path: Path, report: LoadReport) -> None:
        import numpy as np

        ids = array("q")
        tag_numbers = array("i")
        numbers: dict[str, int] = {}
        self.names: list[str] = []
        with _open_csv(path, lenient_encoding=True) as (header, records):
            col = _column_index(header, ("id", "tag"), path, "StackSample Tags.csv")
            i_id, i_tag, width = col["id"], col["tag"], len(header)
            for row in records:
                # An id must fit the int64 array (18 digits do; Stack Overflow's have 8).
                if (
                    row is None
                    or len(row) != width
                    or not _NUMERIC_ID.fullmatch(row[i_id].strip())
                    or len(row[i_id].strip()) > 18
                ):
                    report.reject(TAGS_FILE_MALFORMED)
                    continue
                tag = row[i_tag].strip().lower()
                number = numbers.get(tag)
                if number is None:
                    # An invalid name is recorded too (as -1): its question is rejected, not mis-tagged.
                    number = len(self.names) if _TAG.fullmatch(tag) else -1
                    numbers[tag] = number
                    if number >= 0:
                        self.names.append(tag)
                ids.append(int(row[i_id]))
                tag_numbers.append(number)
        id_array = np.frombuffer(ids, dtype=np.int64) if ids else np.zeros(0, dtype=np.int64)
        tag_array = np.frombuffer(tag_numbers, dtype=np.int32) if tag_numbers else np.zeros(0, dtype=np.int32)
        if id_array.size and not bool(np.all(id_array[1:] >= id_array[:-1])):
            order = np.argsort(id_array, kind="stable")  # stable: a question's tags keep their file order
            id_array, tag_array = id_array[order], tag_array[order]
        self.ids = id_array
        self.tags = tag_array
        self.used = np.zeros(id_array.size, dtype=bool)

    def lookup(self, qid: str) -> tuple[str, ...]:
        key = int(qid)
        if key >= 1 << 63:
            raise RowRejected(NO_TAGS)  # no tag row can have it (see __init__)
        lo = int(self.ids.searchsorted(key, side="left"))
        hi = int(self.ids.searchsorted(key, side="right"))
        if lo == hi:
            raise RowRejected(NO_TAGS)
        self.used[lo:hi] = True
        numbers = self.tags[lo:hi].tolist()
        if -1 in numbers:
            raise RowRejected(BAD_TAGS)
        return normalize_tags(self.names[n] for n in numbers)

    def unused(self) -> int:
        return int(self.used.size - int(self.used.sum()))


def _stacksample_records(path: Path, tags_path: Path, report: LoadReport) -> Iterator[Question | str]:
    table = _TagTable(tags_path, report)
    with _open_csv(path, lenient_encoding=True) as (header, records):
        col = _column_index(header, _STACKSAMPLE_REQUIRED, path, "StackSample Questions.csv")
        i_id, i_date, i_title, i_body = (col[c] for c in _STACKSAMPLE_REQUIRED)
        i_score = col.get("score")
        width = len(header)
        for row in records:
            if row is None or len(row) != width:
                yield MALFORMED_ROW
                continue
            body = row[i_body]
            try:
                qid = _parse_id(row[i_id], allow_hash=False)
                # Look the tags up even if the row is rejected later, so that its tag rows count as used (only
                # tags of questions missing from Questions.csv are orphans); but report the title first, as
                # the other formats do.
                try:
                    tags: tuple[str, ...] | str = table.lookup(qid)
                except RowRejected as rej:
                    tags = rej.reason
                if not row[i_title].strip():
                    raise RowRejected(NO_TITLE)
                if isinstance(tags, str):
                    raise RowRejected(tags)
                yield _question(
                    qid,
                    allow_hash=False,
                    date=row[i_date],
                    title=row[i_title],
                    body=body,
                    body_format=_html_format(body),
                    tags=tags,
                    tag_syntax="space",
                    score=row[i_score] if i_score is not None else None,
                )
            except RowRejected as rej:
                yield rej.reason
    orphans = table.unused()
    if orphans:
        report.rejected[TAGS_FILE_ORPHAN] = report.rejected.get(TAGS_FILE_ORPHAN, 0) + orphans


def _posts_xml_records(path: Path) -> Iterator[Question | str]:
    # Streamed: iterparse builds one <row> at a time and the root is cleared after each, so memory stays flat
    # whatever the size of the dump (the full Stack Overflow Posts.xml is ~100 GB).
    with _open_binary(path) as binary:
        root: ET.Element | None = None
        depth = 0
        try:
            for event, elem in ET.iterparse(binary, events=("start", "end")):
                if event == "start":
                    if root is None:
                        if elem.tag != "posts":
                            raise ValueError(f"{path}: not a Posts.xml (root element <{elem.tag}>)")
                        root = elem
                    depth += 1
                    continue
                depth -= 1
                if depth != 1:  # the root itself, or something nested inside a row
                    continue
                if elem.tag != "row":
                    yield MALFORMED_ROW
                else:
                    yield _post(elem.attrib)
                assert root is not None
                root.clear()
        except ET.ParseError as exc:
            raise ValueError(f"{path}: XML is not well-formed: {exc}") from exc


def _post(attrib: dict[str, str]) -> Question | str:
    post_type = attrib.get("PostTypeId")
    if post_type is None:
        return MALFORMED_ROW
    if post_type.strip() != "1":
        return NOT_A_QUESTION
    body = attrib.get("Body", "")
    try:
        return _question(
            attrib.get("Id", ""),
            allow_hash=False,
            date=attrib.get("CreationDate"),
            title=attrib.get("Title", ""),
            body=body,
            body_format=_html_format(body),
            tags=attrib.get("Tags", ""),
            tag_syntax="markup",
            score=attrib.get("Score"),
        )
    except RowRejected as rej:
        return rej.reason


# --- public loaders -----------------------------------------------------------------------------------------


class _SeenIds:
    """The duplicate-id check of a stream: a bitmap for numeric ids, a set for the rest.

    A set of ints costs ~70 bytes per question (1.7 GB for the 24M questions of a full Stack Overflow dump);
    the bitmap costs one bit per possible id (~10 MB for today's ids), whatever the number of questions.
    """

    # Larger numeric ids (never seen on Stack Exchange) go to the set: the bitmap stays below 128 MiB.
    BITMAP_LIMIT = 1 << 30

    def __init__(self) -> None:
        self.bits = bytearray()
        self.others: set[str] = set()

    def add(self, qid: str) -> bool:
        """Record an id; False if it was seen before."""
        if _NUMERIC_ID.fullmatch(qid) and (number := int(qid)) < self.BITMAP_LIMIT:
            byte, bit = number >> 3, 1 << (number & 7)
            if byte >= len(self.bits):
                # Grow at least by doubling, so a stream of rising ids costs amortised O(1) per id.
                self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))
            if self.bits[byte] & bit:
                return False
            self.bits[byte] |= bit
            return True
        if qid in self.others:
            return False
        self.others.add(qid)
        return True


_REQUIRED_COLUMNS = {
    "bundled": _BUNDLED_REQUIRED,
    "sede": _SEDE_REQUIRED,
    "stacksample": _STACKSAMPLE_REQUIRED,
    "stacksample tags": ("id", "tag"),
}


def _check_file(path: Path, fmt: str) -> None:
    """Refuse a file that cannot be of ``fmt`` now, rather than at the first ``next()`` of the stream."""
    header = _read_header(path)
    if fmt == "posts_xml":
        if header is not None:
            raise ValueError(f"{path}: not a Posts.xml (not XML)")
        with _open_binary(path) as binary:
            try:
                _, root = next(iter(ET.iterparse(binary, events=("start",))))
            except (ET.ParseError, StopIteration) as exc:
                raise ValueError(f"{path}: XML is not well-formed: {exc}") from exc
        if root.tag != "posts":
            raise ValueError(f"{path}: not a Posts.xml (root element <{root.tag}>)")
        return
    if header is None:
        raise ValueError(f"{path}: an XML file, not a {fmt} CSV")
    _column_index(header, _REQUIRED_COLUMNS[fmt], path, fmt)


def iter_questions(
    path: Path | str,
    *,
    fmt: str | None = None,
    tags_path: Path | str | None = None,
    report: LoadReport | None = None,
) -> Iterator[Question]:
    """Stream the questions of a file in file order, counting reads, keeps and rejections in ``report``.

    The format is detected unless ``fmt`` (one of ``FORMATS``) is given. Format and columns are checked before
    this returns; row problems are counted, file problems (unknown format, broken XML, an unterminated quote,
    invalid UTF-8 in a bundled file) raise ValueError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no question file at {path}")
    fmt = fmt or detect_file_format(path, tags_path=tags_path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    _check_file(path, fmt)
    rep = report if report is not None else LoadReport(source=str(path))
    records: Iterator[Question | str]
    if fmt == "stacksample":
        tags_file = Path(tags_path) if tags_path is not None else _find_tags_file(path)
        if tags_file is None or not tags_file.is_file():
            raise ValueError(f"{path}: StackSample needs its Tags.csv (none beside it; pass tags_path)")
        _check_file(tags_file, "stacksample tags")
        records = _stacksample_records(path, tags_file, rep)
    elif fmt == "posts_xml":
        records = _posts_xml_records(path)
    else:
        records = _bundled_records(path) if fmt == "bundled" else _sede_records(path)
    return _counted(records, rep)


def _counted(records: Iterator[Question | str], report: LoadReport) -> Iterator[Question]:
    seen = _SeenIds()
    for item in records:
        report.rows_read += 1
        if isinstance(item, str):
            report.reject(item)
            continue
        if not seen.add(item.id):
            report.reject(DUPLICATE_ID)
            continue
        report.rows_kept += 1
        yield item


def describe_report(report: LoadReport) -> str:
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.rejected.items()))
    return f"{report.source}: read {report.rows_read}, kept {report.rows_kept}, rejected {report.rows_rejected}" + (
        f" ({reasons})" if reasons else ""
    )


def load_questions(
    path: Path | str, *, fmt: str | None = None, tags_path: Path | str | None = None
) -> tuple[list[Question], LoadReport]:
    """All questions of a file in time order (see ``question_order_key``), with what was read and rejected."""
    source = str(path) if tags_path is None else f"{path} + {tags_path}"
    report = LoadReport(source=source)
    questions = sort_questions(iter_questions(path, fmt=fmt, tags_path=tags_path, report=report))
    bad = {r: n for r, n in report.rejected.items() if r not in SKIP_REASONS}
    if bad:
        log.warning("%s", describe_report(report))
    else:
        log.info("%s", describe_report(report))
    return questions, report


def load_bundled(source: Settings | Path | str | None = None) -> tuple[list[Question], LoadReport]:
    """The bundled questions: from ``settings.data_path``, a path, or the configured default."""
    if source is None:
        source = get_settings()
    path = source.data_path if isinstance(source, Settings) else Path(source)
    return load_questions(path, fmt="bundled")


# --- frames and files ---------------------------------------------------------------------------------------


def to_frame(questions: Iterable[Question]) -> pd.DataFrame:
    """Questions as a DataFrame (``FRAME_COLUMNS``).

    created_at as UTC datetimes (NaT if none), tags space-joined, score as nullable Int64.
    """
    import pandas as pd

    qs = list(questions)
    return pd.DataFrame(
        {
            "id": pd.Series([q.id for q in qs], dtype=object),
            "created_at": pd.to_datetime(pd.Series([q.created_at for q in qs], dtype=object), utc=True),
            "title": pd.Series([q.title for q in qs], dtype=object),
            "body": pd.Series([q.body for q in qs], dtype=object),
            "body_format": pd.Series([q.body_format for q in qs], dtype=object),
            "tags": pd.Series([" ".join(q.tags) for q in qs], dtype=object),
            "score": pd.Series([q.score for q in qs], dtype="Int64"),
        }
    )


def _frame_date(value: object) -> datetime | None:
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return parse_date(value)
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        if value.tzinfo is None:
            raise ValueError(f"naive created_at {value!r}: expected UTC-aware datetimes")
        return (value.to_pydatetime() if isinstance(value, pd.Timestamp) else value).astimezone(UTC)
    raise ValueError(f"created_at {value!r} is not a date")


def _frame_score(value: object) -> int | None:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, int | float | str) or hasattr(value, "__int__"):
        number = float(value)  # type: ignore[arg-type]
        if number != int(number):
            raise ValueError(f"score {value!r} is not an integer")
        return int(number)
    raise ValueError(f"score {value!r} is not a number")


def from_frame(df: pd.DataFrame) -> list[Question]:
    """The inverse of ``to_frame``: one Question per row, in row order. Values that do not convert raise."""
    missing = [c for c in ("id", "created_at", "title", "body", "tags") if c not in df.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    n = len(df)
    formats = df["body_format"].tolist() if "body_format" in df.columns else [None] * n
    scores = df["score"].astype(object).tolist() if "score" in df.columns else [None] * n
    out: list[Question] = []
    rows = zip(
        df["id"].tolist(),
        df["created_at"].astype(object).tolist(),
        df["title"].tolist(),
        df["body"].tolist(),
        formats,
        df["tags"].tolist(),
        scores,
        strict=True,
    )
    for i, (qid, created, title, body, body_format, tags, score) in enumerate(rows):
        try:
            tag_list = tags.split() if isinstance(tags, str) else list(tags)
            body = "" if body is None or (isinstance(body, float) and body != body) else str(body)
            out.append(
                Question(
                    id=str(qid),
                    created_at=_frame_date(created),
                    title=str(title),
                    body=body,
                    body_format=str(body_format) if body_format is not None else detect_format(body),
                    tags=normalize_tags(tag_list) if tag_list else (),
                    score=_frame_score(score),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"frame row {i} (id {qid!r}): {exc}") from exc
    return out


def write_questions_csv(questions: Iterable[Question], path: Path | str, *, source: str = "") -> int:
    """Write questions in the bundled format (gzip if the name ends in .gz), in the given order.

    Returns the number written. Written to a temporary file and renamed, so a reader never sees half a file.
    The gzip header carries no timestamp, so the same questions always give the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as raw:
            binary: IO[bytes] = raw
            gz = None
            if path.name.endswith(".gz"):
                gz = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
                binary = cast(IO[bytes], gz)
            with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
                writer = csv.writer(text)
                writer.writerow(BUNDLED_COLUMNS)
                for q in questions:
                    writer.writerow(
                        [
                            q.id,
                            format_date(q.created_at),
                            q.title,
                            q.body,
                            " ".join(q.tags),
                            "" if q.score is None else q.score,
                            source,
                            q.body_format,
                        ]
                    )
                    count += 1
                if gz is not None:
                    text.flush()
                    gz.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count

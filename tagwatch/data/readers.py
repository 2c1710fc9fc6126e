"""One streaming reader per format: a record in, a ``Question`` or the reason it was rejected out.

The formats: bundled (our own CSV), SEDE (Stack Exchange Data Explorer CSV exports), StackSample (Kaggle's
Questions.csv with its Tags.csv) and Posts.xml (the Stack Exchange data dump). What is rejected, kept or skipped
is described beside the reasons in ``tagwatch.data.records``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from array import array
from collections.abc import Iterator
from pathlib import Path

from tagwatch.data.files import (
    BUNDLED_REQUIRED,
    SEDE_REQUIRED,
    STACKSAMPLE_REQUIRED,
    STACKSAMPLE_TAGS_REQUIRED,
    column_index,
    open_binary,
    open_csv,
)
from tagwatch.data.parse import NUMERIC_ID, TAG_NAME, normalize_tags, parse_date, parse_id, parse_score, parse_tags
from tagwatch.data.records import (
    BAD_BODY_FORMAT,
    BAD_TAGS,
    MALFORMED_ROW,
    NO_TAGS,
    NO_TITLE,
    NOT_A_QUESTION,
    TAGS_FILE_MALFORMED,
    TAGS_FILE_ORPHAN,
    LoadReport,
    Question,
    RowRejected,
)
from tagwatch.text import BODY_FORMATS, detect_format

Records = Iterator[Question | str]


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
    qid = parse_id(raw_id, allow_hash=allow_hash)
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
        score=parse_score(score),
    )


def _html_format(body: str) -> str:
    return "html" if body.strip() else "none"


# --- bundled ------------------------------------------------------------------------------------------------


def bundled_records(path: Path) -> Records:
    with open_csv(path, lenient_encoding=False) as (header, records):
        col = column_index(header, BUNDLED_REQUIRED, path, "bundled")
        i_id, i_date, i_title, i_body, i_tags = (col[c] for c in BUNDLED_REQUIRED)
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


# --- SEDE ---------------------------------------------------------------------------------------------------


def sede_records(path: Path) -> Records:
    with open_csv(path, lenient_encoding=True) as (header, records):
        col = column_index(header, SEDE_REQUIRED, path, "SEDE")
        i_id, i_date, i_title, i_body, i_tags = (col[c] for c in SEDE_REQUIRED)
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


# --- StackSample --------------------------------------------------------------------------------------------


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
        with open_csv(path, lenient_encoding=True) as (header, records):
            col = column_index(header, STACKSAMPLE_TAGS_REQUIRED, path, "StackSample Tags.csv")
            i_id, i_tag, width = col["id"], col["tag"], len(header)
            for row in records:
                # An id must fit the int64 array (18 digits do; Stack Overflow's have 8).
                if (
                    row is None
                    or len(row) != width
                    or not NUMERIC_ID.fullmatch(row[i_id].strip())
                    or len(row[i_id].strip()) > 18
                ):
                    report.reject(TAGS_FILE_MALFORMED)
                    continue
                tag = row[i_tag].strip().lower()
                number = numbers.get(tag)
                if number is None:
                    # An invalid name is recorded too (as -1): its question is rejected, not mis-tagged.
                    number = len(self.names) if TAG_NAME.fullmatch(tag) else -1
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


def stacksample_records(path: Path, tags_path: Path, report: LoadReport) -> Records:
    """Questions.csv joined with its Tags.csv; the tags file's own problems go straight into ``report``."""
    table = _TagTable(tags_path, report)
    with open_csv(path, lenient_encoding=True) as (header, records):
        col = column_index(header, STACKSAMPLE_REQUIRED, path, "StackSample Questions.csv")
        i_id, i_date, i_title, i_body = (col[c] for c in STACKSAMPLE_REQUIRED)
        i_score = col.get("score")
        width = len(header)
        for row in records:
            if row is None or len(row) != width:
                yield MALFORMED_ROW
                continue
            body = row[i_body]
            try:
                qid = parse_id(row[i_id], allow_hash=False)
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


# --- Posts.xml ----------------------------------------------------------------------------------------------


def posts_xml_records(path: Path) -> Records:
    # Streamed: iterparse builds one <row> at a time and the root is cleared after each, so memory stays flat
    # whatever the size of the dump (the full Stack Overflow Posts.xml is ~100 GB).
    with open_binary(path) as binary:
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

"""Reading question files: compressed or not, CSV records and headers, and which format a file is."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

FORMATS = ("bundled", "sede", "stacksample", "posts_xml")
BUNDLED_REQUIRED = ("id", "created_at", "title", "body", "tags")
SEDE_REQUIRED = ("id", "creationdate", "title", "body", "tags")
STACKSAMPLE_REQUIRED = ("id", "creationdate", "title", "body")
STACKSAMPLE_TAGS_REQUIRED = ("id", "tag")
_REQUIRED_COLUMNS = {
    "bundled": BUNDLED_REQUIRED,
    "sede": SEDE_REQUIRED,
    "stacksample": STACKSAMPLE_REQUIRED,
    "stacksample tags": STACKSAMPLE_TAGS_REQUIRED,
}

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"

log = logging.getLogger(__name__)

CsvRecords = Iterator[list[str] | None]


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
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


def _csv_records(reader: Iterator[list[str]], path: Path) -> CsvRecords:
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
def open_csv(path: Path, *, lenient_encoding: bool) -> Iterator[tuple[list[str], CsvRecords]]:
    """Header (as given) and record iterator of a CSV file.

    ``lenient_encoding``: read each line as UTF-8, or Latin-1 where it is not; otherwise the file must be UTF-8.
    """
    with open_binary(path) as binary:
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


def column_index(header: list[str], required: Sequence[str], path: Path, fmt: str) -> dict[str, int]:
    """Position of each column by its lower-cased name (the first of duplicates); refuse missing ``required``."""
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip().lower(), i)
    missing = [c for c in required if c not in index]
    if missing:
        raise ValueError(f"{path}: not a {fmt} file: missing columns {missing} (has {header})")
    return index


def read_header(path: Path) -> list[str] | None:
    """The CSV header of a file, or None if it is XML."""
    with open_binary(path) as binary:
        head = binary.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return None
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return next(csv.reader([first]), [])


def find_tags_file(path: Path) -> Path | None:
    """The StackSample Tags.csv beside a Questions.csv, if there is one."""
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
    header = read_header(path)
    if header is None:
        return "posts_xml"
    columns = {c.strip().lower() for c in header}
    if set(BUNDLED_REQUIRED) <= columns:
        return "bundled"
    if set(SEDE_REQUIRED) <= columns:
        return "sede"
    if set(STACKSAMPLE_REQUIRED) <= columns:
        if find_tags_file(path) is not None:
            return "stacksample"
        raise ValueError(
            f"{path}: looks like a StackSample Questions.csv (no Tags column) but there is no "
            "Tags.csv beside it; pass tags_path"
        )
    raise ValueError(f"{path}: unknown question file format (columns {header}); expected one of {FORMATS}")


def check_file(path: Path, fmt: str) -> None:
    """Refuse a file that cannot be of ``fmt`` (one of ``FORMATS`` or "stacksample tags") before streaming it."""
    header = read_header(path)
    if fmt == "posts_xml":
        if header is not None:
            raise ValueError(f"{path}: not a Posts.xml (not XML)")
        with open_binary(path) as binary:
            try:
                _, root = next(iter(ET.iterparse(binary, events=("start",))))
            except (ET.ParseError, StopIteration) as exc:
                raise ValueError(f"{path}: XML is not well-formed: {exc}") from exc
        if root.tag != "posts":
            raise ValueError(f"{path}: not a Posts.xml (root element <{root.tag}>)")
        return
    if header is None:
        raise ValueError(f"{path}: an XML file, not a {fmt} CSV")
    column_index(header, _REQUIRED_COLUMNS[fmt], path, fmt)

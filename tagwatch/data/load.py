"""Loading a question file: pick its reader, drop duplicate ids, count everything in a ``LoadReport``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from tagwatch.data.files import FORMATS, check_file, detect_file_format, find_tags_file
from tagwatch.data.parse import NUMERIC_ID, sort_questions
from tagwatch.data.readers import Records, bundled_records, posts_xml_records, sede_records, stacksample_records
from tagwatch.data.records import DUPLICATE_ID, SKIP_REASONS, LoadReport, Question
from tagwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)


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
        if NUMERIC_ID.fullmatch(qid) and (number := int(qid)) < self.BITMAP_LIMIT:
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
    check_file(path, fmt)
    rep = report if report is not None else LoadReport(source=str(path))
    records: Records
    if fmt == "stacksample":
        tags_file = Path(tags_path) if tags_path is not None else find_tags_file(path)
        if tags_file is None or not tags_file.is_file():
            raise ValueError(f"{path}: StackSample needs its Tags.csv (none beside it; pass tags_path)")
        check_file(tags_file, "stacksample tags")
        records = stacksample_records(path, tags_file, rep)
    elif fmt == "posts_xml":
        records = posts_xml_records(path)
    else:
        records = bundled_records(path) if fmt == "bundled" else sede_records(path)
    return _counted(records, rep)


def _counted(records: Records, report: LoadReport) -> Iterator[Question]:
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

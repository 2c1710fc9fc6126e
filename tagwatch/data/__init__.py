"""Questions: the record every stage shares, and loaders for the bundled data and public formats.

- ``records``: ``Question``, ``LoadReport``, ``RowRejected`` and the rejection reasons;
- ``parse``: field parsers (tags, dates, ids, scores) and the time order of questions;
- ``files``: compressed files, CSV plumbing, format detection and column checks;
- ``readers``: one streaming reader per format (bundled, SEDE, StackSample, Posts.xml);
- ``load``: ``iter_questions`` / ``load_questions`` / ``load_bundled``, with the duplicate-id check;
- ``frames``: questions as a pandas DataFrame and back (pandas imported on use);
- ``writer``: questions written as a bundled-format CSV.
"""

from tagwatch.data.files import FORMATS, detect_file_format
from tagwatch.data.frames import FRAME_COLUMNS, from_frame, to_frame
from tagwatch.data.load import describe_report, iter_questions, load_bundled, load_questions
from tagwatch.data.parse import format_date, normalize_tags, parse_date, parse_tags, question_order_key, sort_questions
from tagwatch.data.records import (
    BAD_BODY_FORMAT,
    BAD_DATE,
    BAD_ID,
    BAD_SCORE,
    BAD_TAGS,
    DUPLICATE_ID,
    MALFORMED_ROW,
    MISSING_ID,
    NO_TAGS,
    NO_TITLE,
    NOT_A_QUESTION,
    SKIP_REASONS,
    TAGS_FILE_MALFORMED,
    TAGS_FILE_ORPHAN,
    LoadReport,
    Question,
    RowRejected,
)
from tagwatch.data.writer import BUNDLED_COLUMNS, write_questions_csv

__all__ = [
    "BAD_BODY_FORMAT",
    "BAD_DATE",
    "BAD_ID",
    "BAD_SCORE",
    "BAD_TAGS",
    "BUNDLED_COLUMNS",
    "DUPLICATE_ID",
    "FORMATS",
    "FRAME_COLUMNS",
    "MALFORMED_ROW",
    "MISSING_ID",
    "NOT_A_QUESTION",
    "NO_TAGS",
    "NO_TITLE",
    "SKIP_REASONS",
    "TAGS_FILE_MALFORMED",
    "TAGS_FILE_ORPHAN",
    "LoadReport",
    "Question",
    "RowRejected",
    "describe_report",
    "detect_file_format",
    "format_date",
    "from_frame",
    "iter_questions",
    "load_bundled",
    "load_questions",
    "normalize_tags",
    "parse_date",
    "parse_tags",
    "question_order_key",
    "sort_questions",
    "to_frame",
    "write_questions_csv",
]
